"""The feature library: price, k-bar (Alpha158-style), cross-sectional and alternative-data families.

Every function sees only the panel it is given (a window ending at the target
day) and returns that day's values: nothing here can look past the window.
Lookbacks count sessions (alternative data: UTC calendar days, see ALT_DAYS).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.ingest.sources.base import ALT_LAG, PRICE_LAG

EPS = 1e-12
PRICE_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")
ALT_FIELDS = ("tweet_count", "unique_users", "sentiment")


def _last(frame: pd.DataFrame) -> pd.Series:
    return frame.iloc[-1]


# --- price family -----------------------------------------------------------------------------


def log_return(panel, window: int) -> pd.Series:
    """log(adj_close_t / adj_close_{t-window})."""
    px = panel["adj_close"]
    return np.log(px.iloc[-1] / px.iloc[-1 - window])


def volatility(panel, window: int) -> pd.Series:
    """Sample std (ddof=1) of the last ``window`` daily log returns."""
    rets = np.log(panel["adj_close"]).diff().iloc[-window:]
    return rets.std(ddof=1)


def rsi(panel, window: int) -> pd.Series:
    """Cutler's RSI: 100 - 100 / (1 + mean gain / mean loss) over ``window`` daily changes."""
    change = panel["adj_close"].diff().iloc[-window:]
    gain = change.clip(lower=0).mean()
    loss = (-change.clip(upper=0)).mean()
    out = 100 - 100 / (1 + gain / loss.replace(0, np.nan))
    return out.where(loss > 0, 100.0).where(change.notna().all())


def volume_ratio(panel, short: int, long: int) -> pd.Series:
    """Mean volume over ``short`` days over mean volume over ``long`` days."""
    vol = panel["volume"]
    return vol.iloc[-short:].mean() / vol.iloc[-long:].mean().replace(0, np.nan)


def ma_gap(panel, window: int) -> pd.Series:
    """adj_close / simple moving average of ``window`` days - 1."""
    px = panel["adj_close"]
    return px.iloc[-1] / px.iloc[-window:].mean() - 1


def hl_range(panel, window: int) -> pd.Series:
    """Mean of (high - low) / close over ``window`` days."""
    return ((panel["high"] - panel["low"]) / panel["close"]).iloc[-window:].mean()


# --- k-bar family (Alpha158): shape of the day's candle, scale-free ----------------------------


_KBAR = {
    "KMID": lambda o, h, lo, c: (c - o) / o,
    "KLEN": lambda o, h, lo, c: (h - lo) / o,
    "KMID2": lambda o, h, lo, c: (c - o) / (h - lo + EPS),
    "KUP": lambda o, h, lo, c: (h - np.maximum(o, c)) / o,
    "KUP2": lambda o, h, lo, c: (h - np.maximum(o, c)) / (h - lo + EPS),
    "KLOW": lambda o, h, lo, c: (np.minimum(o, c) - lo) / o,
    "KLOW2": lambda o, h, lo, c: (np.minimum(o, c) - lo) / (h - lo + EPS),
    "KSFT": lambda o, h, lo, c: (2 * c - h - lo) / o,
    "KSFT2": lambda o, h, lo, c: (2 * c - h - lo) / (h - lo + EPS),
}


def kbar(panel, kind: str) -> pd.Series:
    """Alpha158 KMID/KLEN/KMID2/KUP/KUP2/KLOW/KLOW2/KSFT/KSFT2 of the last bar (see _KBAR)."""
    return _KBAR[kind](*(_last(panel[k]) for k in ("open", "high", "low", "close")))


# --- cross-sectional: the day's values of another feature across tickers ------------------------


def cs_rank(panel, base: str) -> pd.Series:
    """Percentile rank in (0, 1] of ``base`` across the day's tickers (NaN stays NaN)."""
    return panel[base].rank(pct=True)


def cs_zscore(panel, base: str) -> pd.Series:
    """(x - cross-sectional mean) / cross-sectional std (ddof=1) of ``base``."""
    x = panel[base]
    return (x - x.mean()) / x.std(ddof=1)


# --- alternative data: per UTC calendar day, missing days are days without tweets --------------


def tweet_volume_z(panel, window: int) -> pd.Series:
    """Today's tweet count against the ``window`` days before it: (n - mean) / std."""
    counts = panel["tweet_count"].fillna(0)
    hist = counts.iloc[-1 - window : -1]
    return (counts.iloc[-1] - hist.mean()) / hist.std(ddof=1).replace(0, np.nan)


def sentiment_mean(panel, window: int) -> pd.Series:
    """Tweet-weighted mean lexicon sentiment over the last ``window`` days."""
    n = panel["tweet_count"].fillna(0).iloc[-window:]
    s = panel["sentiment"].fillna(0).iloc[-window:]
    return (n * s).sum() / n.sum().replace(0, np.nan)


def sentiment_momentum(panel, short: int, long: int) -> pd.Series:
    """Short-window weighted sentiment minus long-window weighted sentiment."""
    return sentiment_mean(panel, short) - sentiment_mean(panel, long)


def user_breadth(panel, window: int) -> pd.Series:
    """Unique users per tweet over the last ``window`` days (1 = every tweet a new voice)."""
    n = panel["tweet_count"].fillna(0).iloc[-window:].sum()
    return panel["unique_users"].fillna(0).iloc[-window:].sum() / n.replace(0, np.nan)


# --- the catalog --------------------------------------------------------------------------------


def _price(name, fn, description, lookback, **params) -> FeatureDef:
    return FeatureDef(name, "price", fn, description, ("raw_prices",), lookback, PRICE_LAG, params=params)


def _alt(name, fn, description, lookback, **params) -> FeatureDef:
    return FeatureDef(name, "alt", fn, description, ("alt_data",), lookback, ALT_LAG, params=params)


def _cs(name, fn, base: FeatureDef, family: str) -> FeatureDef:
    return FeatureDef(
        name,
        family,
        fn,
        f"{fn.__doc__.split(' of ')[0]} of {base.name}",
        base.inputs,
        base.lookback,
        base.lag,
        params={"base": base.name},
        depends_on=(base,),
    )


RET = {
    k: _price(f"ret_{k}", log_return, f"{k}-day log return of adjusted close", k + 1, window=k) for k in (1, 5, 20, 60)
}
VOL = {k: _price(f"vol_{k}", volatility, f"{k}-day volatility of daily log returns", k + 1, window=k) for k in (20, 60)}
RSI14 = _price("rsi_14", rsi, "14-day RSI (Cutler, simple means) of adjusted close", 15, window=14)
VOLR = _price("volume_ratio_5_20", volume_ratio, "5-day over 20-day mean volume", 20, short=5, long=20)
MAGAP = {
    k: _price(f"ma_gap_{k}", ma_gap, f"adjusted close over its {k}-day mean, minus 1", k, window=k) for k in (5, 20, 60)
}
HL = {k: _price(f"hl_range_{k}", hl_range, f"{k}-day mean of (high - low) / close", k, window=k) for k in (1, 20)}
KBAR = [
    _price(k.lower(), kbar, f"Alpha158 {k} of the day's bar", 1, kind=k)
    for k in ("KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2")
]
PRICE_BASE = [*RET.values(), *VOL.values(), RSI14, VOLR, *MAGAP.values(), *HL.values(), *KBAR]
PRICE_CS = [
    *[_cs(f"cs_rank_{f.name}", cs_rank, f, "price") for f in (RET[5], RET[20], VOL[20], RSI14)],
    *[_cs(f"cs_z_{f.name}", cs_zscore, f, "price") for f in (RET[1], RET[5], VOLR)],
]

ALT_DAYS = 21
TWEET_Z = _alt(
    "tweet_volume_z_20", tweet_volume_z, "today's tweet count, z-scored on the 20 days before", 21, window=20
)
SENT = {
    k: _alt(f"sentiment_{k}", sentiment_mean, f"{k}-day tweet-weighted lexicon sentiment", k, window=k) for k in (1, 5)
}
SENT_MOM = _alt("sentiment_mom_5_20", sentiment_momentum, "5-day minus 20-day weighted sentiment", 20, short=5, long=20)
BREADTH = _alt("user_breadth_5", user_breadth, "unique users per tweet over 5 days", 5, window=5)
ALT_BASE = [TWEET_Z, *SENT.values(), SENT_MOM, BREADTH]
ALT_CS = [_cs("cs_rank_sentiment_1", cs_rank, SENT[1], "alt"), _cs("cs_z_tweet_volume_z_20", cs_zscore, TWEET_Z, "alt")]

PRICE_FAMILY = FeatureFamily(
    "price",
    "raw_prices",
    PRICE_FIELDS,
    tuple(PRICE_BASE + PRICE_CS),
    "Returns, volatility, RSI, volume ratio, moving-average gaps, ranges, k-bars and their cross-sectional "
    "ranks and z-scores, from daily bars up to the session close (known at close + 15 min).",
    max_stale_sessions=0,  # yesterday's bar or no prediction: a stale price is no basis for a trade
    required=True,
)
ALT_FAMILY = FeatureFamily(
    "alt",
    "alt_data",
    ALT_FIELDS,
    tuple(ALT_BASE + ALT_CS),
    "Tweet volume z-score, sentiment level and momentum and user breadth, per UTC day up to the end of the "
    "session's UTC day (known at +30 min).",
    max_stale_sessions=4,  # a name without tweets for a few days keeps its last values; a longer gap is missing
    required=False,
)
FAMILIES = {f.name: f for f in (PRICE_FAMILY, ALT_FAMILY)}
ALL_FEATURES = {f.name: f for fam in FAMILIES.values() for f in fam.features}

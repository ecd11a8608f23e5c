"""A seeded synthetic equity market with a planted signal and a regime change.

Model (per ticker i, session index n, half-step grid k = 2n for the open and
2n+1 for the close; all noise is keyed by (seed, stream, index), never drawn
sequentially, so any day can be produced alone and in any order):

    log O_n = p_i + mu*n + beta_i*M(2n)   + S_sec(2n)   + s_i*X_i(2n)   + g*z_{i,n-2} - h*v_{i,n-1}
    log C_n = p_i + mu*n + beta_i*M(2n+1) + S_sec(2n+1) + s_i*X_i(2n+1) + g*z_{i,n-2} - h*v_{i,n}

M, S and X are Brownian motions built by Brownian-bridge (Levy) construction
over a fixed horizon, so a level costs O(log horizon) draws, not O(history):
the cost of a day does not grow with the history before it.

The planted signal, with g = G*s_i and h = H*s_i:
- alternative data: the tweet sentiment of session n-1 is ``tanh((z + e)/2)``
  with z the latent above and e ~ N(0, 1) measurement noise; the open-to-open
  return from n to n+1 carries ``+g*z_{n-1} - g*z_{n-2}``, both known by the
  decision time of n.
- prices: a close dislocation ``-h*v`` that is undone by the next-but-one
  open: yesterday's close-to-close return predicts today's label negatively
  (short-term reversal).
Theoretical cross-sectional IC of the oracle predictor: see ``theoretical_ic``.

Regime change (``regime_change``, a session): from that day on G falls to
G_POST (the alternative-data signal decays), H to H_POST, idiosyncratic
volatility rises by VOL_SHIFT, tweet volumes by TWEET_SHIFT and sentiment
gains a mean shift of SENTIMENT_SHIFT: feature distributions move.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.ingest.sources.base import RawBatch

LEVELS = 16  # bridge horizon: 2**16 half-steps, about 130 years of sessions
HORIZON = 2**LEVELS
N_SECTORS = 10
MU = 0.0002
G_PRE, G_POST = 0.15, 0.015
H_PRE, H_POST = 0.20, 0.10
SENTIMENT_NOISE = 1.0
VOL_SHIFT = 1.5
TWEET_SHIFT = 2.0
SENTIMENT_SHIFT = 0.3
DEFAULT_REGIME_CHANGE = dt.date(2024, 7, 1)


def theoretical_ic(g: float = G_PRE, h: float = H_PRE, noise: float = SENTIMENT_NOISE) -> dict[str, float]:
    """Idiosyncratic IC of each planted signal against the open-to-open label.

    In units of s_i the label carries ``g*z_{n-1} - g*z_{n-2} + h*v_{n-1} - h*v_n``
    plus unit Brownian noise, so Var(label) = 1 + 2g^2 + 2h^2 (as for a
    close-to-close return). The observed sentiment of n-1 is z_{n-1} plus
    N(0, noise^2) (before the monotone tanh); minus yesterday's close-to-close
    return carries +h*v_{n-1}. Factors are left out: they only lower the
    cross-sectional figure.
    """
    var = 1 + 2 * g**2 + 2 * h**2
    sentiment = g / np.sqrt((1 + noise**2) * var)
    reversal = h**2 / var
    return {
        "sentiment": float(sentiment),
        "reversal": float(reversal),
        "combined": float(np.hypot(sentiment, reversal)),
    }


def _key(seed: int, stream: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{stream}:{index}".encode()).digest()
    return int.from_bytes(digest[:16], "little")


@lru_cache(maxsize=1 << 17)
def _normals(seed: int, stream: str, index: int, size: int) -> np.ndarray:
    gen = np.random.Generator(np.random.Philox(key=_key(seed, stream, index)))
    out = gen.standard_normal(size)
    out.setflags(write=False)
    return out


def _bridge(seed: int, stream: str, k: int, size: int) -> np.ndarray:
    """Brownian motion at half-step k (unit variance per half-step), O(LEVELS)."""
    if not 0 <= k <= HORIZON:
        raise ValueError(f"half-step {k} beyond the synthetic horizon {HORIZON}")
    a, b = 0, HORIZON
    wa = np.zeros(size)
    wb = np.sqrt(HORIZON) * _normals(seed, stream, HORIZON, size)
    while k not in (a, b):
        m = (a + b) // 2
        wm = (wa + wb) / 2 + np.sqrt((b - a) / 4) * _normals(seed, stream, m, size)
        if k < m:
            b, wb = m, wm
        else:
            a, wa = m, wm
    return wa if k == a else wb


class SyntheticMarket:
    """Deterministic bars and tweet aggregates for any NYSE session."""

    def __init__(self, seed: int = 42, n_tickers: int = 200, regime_change: dt.date | str = DEFAULT_REGIME_CHANGE):
        if n_tickers < 1:
            raise ValueError("n_tickers must be at least 1")
        self.seed = int(seed)
        self.n = int(n_tickers)
        self.regime_change = sessions.require_session(regime_change)
        self.name = f"synthetic(seed={self.seed},n={self.n})"
        self.tickers = np.array([f"SYN{i:03d}" for i in range(self.n)])

    def universe(self) -> frozenset[str]:
        return frozenset(self.tickers.tolist())

    @cached_property
    def _static(self) -> dict[str, np.ndarray]:
        gen = np.random.Generator(np.random.Philox(key=_key(self.seed, "static", 0)))
        return {
            "log_p0": np.log(gen.uniform(10, 300, self.n)),
            "beta": gen.uniform(0.5, 1.5, self.n),
            "sector": gen.integers(0, N_SECTORS, self.n),
            "vol": gen.uniform(0.01, 0.03, self.n),
            "tweet_rate": np.exp(gen.normal(np.log(30), 0.6, self.n)),
            "user_share": gen.uniform(0.5, 0.95, self.n),
            "volume": np.exp(gen.normal(np.log(2e6), 0.5, self.n)),
        }

    @cached_property
    def _regime_index(self) -> int:
        return sessions.session_index(self.regime_change)

    def _post(self, n: int) -> bool:
        return n >= self._regime_index

    def _idio(self, k: int) -> np.ndarray:
        """Idiosyncratic Brownian level (daily variance 1), scaled up after the regime change."""
        kr = 2 * self._regime_index
        x = _bridge(self.seed, "idio", min(k, kr), self.n)
        if k > kr:
            x = x + VOL_SHIFT * (_bridge(self.seed, "idio", k, self.n) - _bridge(self.seed, "idio", kr, self.n))
        return x / np.sqrt(2)

    def _log_price(self, n: int, k: int, z_lag2: np.ndarray, v: np.ndarray) -> np.ndarray:
        st = self._static
        factors = _bridge(self.seed, "factors", k, 1 + N_SECTORS) / np.sqrt(2)
        market, sectors = 0.01 * factors[0], 0.005 * factors[1:]
        g = (G_POST if self._post(n) else G_PRE) * st["vol"]
        h = (H_POST if self._post(n) else H_PRE) * st["vol"]
        return (
            st["log_p0"]
            + MU * n
            + st["beta"] * market
            + sectors[st["sector"]]
            + st["vol"] * self._idio(k)
            + g * z_lag2
            - h * v
        )

    def _z(self, n: int) -> np.ndarray:
        """Latent sentiment of session n (what tweets about that day carry)."""
        return _normals(self.seed, "z", n, self.n)

    def _v(self, n: int) -> np.ndarray:
        return _normals(self.seed, "v", n, self.n)

    def bars(self, session: dt.date) -> pd.DataFrame:
        n = sessions.session_index(session)
        if n < 2:
            raise ValueError("the synthetic market starts on its third session")
        st = self._static
        log_o = self._log_price(n, 2 * n, self._z(n - 2), self._v(n - 1))
        log_c = self._log_price(n, 2 * n + 1, self._z(n - 2), self._v(n))
        log_c_prev = self._log_price(n - 1, 2 * n - 1, self._z(n - 3), self._v(n - 1))
        wick = np.abs(_normals(self.seed, "wick", n, 2 * self.n).reshape(2, self.n)) * 0.3 * st["vol"]
        o, c = np.exp(log_o), np.exp(log_c)
        high = np.maximum(o, c) * np.exp(wick[0])
        low = np.minimum(o, c) * np.exp(-wick[1])
        shift = 1.3 if self._post(n) else 1.0
        activity = 1 + 20 * np.abs(log_c - log_c_prev)
        noise = np.exp(0.3 * _normals(self.seed, "volume", n, self.n))
        volume = np.floor(st["volume"] * activity * noise * shift)
        close = np.round(c, 4)
        return pd.DataFrame(
            {
                "ticker": self.tickers,
                "date": session.isoformat(),
                "open": np.round(o, 4),
                "high": np.round(high, 4),
                "low": np.round(low, 4),
                "close": close,
                "adj_close": close,
                "volume": volume.astype("int64"),
            }
        )

    def prices(self, session: dt.date) -> RawBatch:
        df = self.bars(session)
        return RawBatch(df.assign(source_file=self.name, source_line=pd.NA, raw=pd.NA))

    def tweets_for_day(self, day: dt.date) -> pd.DataFrame:
        """Daily tweet aggregates for one UTC calendar day."""
        st = self._static
        is_session = sessions.is_session(day)
        n = sessions.session_index(day) if is_session else sessions.session_index(sessions.session_on_or_after(day))
        post = self._post(n)
        ordinal = day.toordinal()
        noise = _normals(self.seed, "sentiment_noise", ordinal, self.n) * SENTIMENT_NOISE
        latent = self._z(n) if is_session else _normals(self.seed, "weekend_z", ordinal, self.n)
        level = latent + noise * (VOL_SHIFT if post else 1.0) + (SENTIMENT_SHIFT if post else 0.0)
        gen = np.random.Generator(np.random.Philox(key=_key(self.seed, "tweets", ordinal)))
        rate = st["tweet_rate"] * (1 + 0.5 * np.abs(latent)) * (1.0 if is_session else 0.5)
        count = gen.poisson(rate * (TWEET_SHIFT if post else 1.0))
        users = gen.binomial(count, st["user_share"])
        sentiment = np.tanh(level / 2)
        words = gen.poisson(count * 0.8)
        pos = gen.binomial(words, (1 + sentiment) / 2)
        return pd.DataFrame(
            {
                "ticker": self.tickers,
                "day": day.isoformat(),
                "tweet_count": count,
                "unique_users": users,
                "pos_words": pos,
                "neg_words": words - pos,
                "sentiment": np.where(count > 0, np.round(sentiment, 6), np.nan),
            }
        )

    def alt(self, session: dt.date) -> RawBatch:
        frames = [self.tweets_for_day(d) for d in sessions.owned_calendar_days(session)]
        df = pd.concat(frames, ignore_index=True)
        return RawBatch(df.assign(source_file=self.name, source_line=pd.NA, raw=pd.NA))

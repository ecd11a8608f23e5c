"""Row-level validation: every record is either clean or quarantined with a reason.

A validator never drops a record silently and never fails a batch because of
one bad record: it returns ``(clean, rejects)`` where ``rejects`` follows
``REJECT_COLUMNS`` and names the source file and line of each bad record.
Rules are applied in order; a record gets the reason of the first rule it fails.
Every text that leaves here in a reject is valid UTF-8 (see ``utf8_safe``), so a
quarantine row can always be written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.storage import lake

REJECT_COLUMNS = ["ticker", "source_file", "source_line", "reason", "detail", "raw"]
PRICE_FIELDS = ["open", "high", "low", "close", "adj_close"]
ALT_COUNT_FIELDS = ["tweet_count", "unique_users", "pos_words", "neg_words"]

# Reasons for records that are valid but deliberately left out, not damaged: a tweet delivered days
# after its day (in a later day's file) cannot join its day's aggregate without being visible before the
# file that delivered it existed. They stay quarantined with their reason and are reported, but do not
# count in the blocking quarantine share, which measures damage.
EXCLUDED_REASONS = frozenset({"created_long_before_file_date"})

Rule = tuple[str, Callable[[pd.DataFrame], pd.Series], Callable[[pd.DataFrame], pd.Series] | str]


_EMPTY_REJECTS = pd.DataFrame(
    {
        "ticker": pd.Series(dtype="string"),
        "source_file": pd.Series(dtype="string"),
        "source_line": pd.Series(dtype="Int64"),
        "reason": pd.Series(dtype="string"),
        "detail": pd.Series(dtype="string"),
        "raw": pd.Series(dtype="string"),
    }
)


def empty_rejects() -> pd.DataFrame:
    return _EMPTY_REJECTS.copy()  # building typed empty columns costs more than copying them


def make_rejects(records: pd.DataFrame, reason: str, detail: pd.Series | str) -> pd.DataFrame:
    """Quarantine rows for ``records`` (which carry ticker/source_file/source_line/raw).

    Built as objects, then typed by ``coerce_rejects``: a detail naming a path with undecodable bytes
    must not fail the frame's construction (a ``str`` column refuses such text).
    """
    if records.empty:
        return empty_rejects()
    out = pd.DataFrame(
        {
            "ticker": records.get("ticker", pd.Series(pd.NA, index=records.index)),
            "source_file": records["source_file"],
            "source_line": records["source_line"],
            "reason": reason,
            "detail": detail,
            "raw": records.get("raw", pd.Series(pd.NA, index=records.index)),
        },
        index=records.index,
        dtype=object,
    )
    return coerce_rejects(out)


def utf8_safe(text):
    """``text`` with every character that cannot be written as UTF-8 shown as an escape.

    A file name with undecodable bytes (surrogate-escaped by the OS layer) shows those bytes as ``\\xff``;
    any other lone UTF-16 surrogate (a JSON ``"\\ud800"``) as ``\\ud800``. Parquet writers raise on such
    strings, so nothing else may reach them. Missing values pass through.
    """
    if not isinstance(text, str):
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def coerce_rejects(df: pd.DataFrame) -> pd.DataFrame:
    """Rejects in the quarantine's column order and types, every text made UTF-8-safe.

    Frames of rejects are built with object columns (see ``make_rejects``) and typed only here.
    """
    if df.empty:
        return empty_rejects()
    out = df[REJECT_COLUMNS].reset_index(drop=True)
    for col in ("ticker", "source_file", "reason", "detail", "raw"):
        out[col] = pd.array([utf8_safe(v) for v in out[col].to_numpy(dtype=object)], dtype="string")
    out["source_line"] = out["source_line"].astype("Int64")
    return out


def concat_rejects(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    return coerce_rejects(pd.concat(parts, ignore_index=True)) if parts else empty_rejects()


def apply_rules(df: pd.DataFrame, rules: list[Rule]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` by ordered rules of (reason, failing-mask, detail)."""
    remaining = df
    rejected = []
    for reason, failing, detail in rules:
        if remaining.empty:
            break
        mask = failing(remaining).fillna(True).astype(bool)
        if mask.any():
            bad = remaining[mask]
            text = detail if isinstance(detail, str) else detail(bad).astype("string")
            rejected.append(make_rejects(bad, reason, text))
            remaining = remaining[~mask]
    return remaining, concat_rejects(rejected)


def _parse_numeric(df: pd.DataFrame, cols: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coerce text columns to numbers; a blank or non-number quarantines the row (by its first such column).

    Decided on masks and cut once: a copy of the frame per column cost more than the parsing. A column the source
    already typed as numbers has no text to strip, so its blanks are its missing values."""
    alive = np.ones(len(df), dtype=bool)
    parsed_cols, rejected = {}, []
    for col in cols:
        raw = df[col]
        parsed = pd.to_numeric(raw, errors="coerce")
        blank = (
            raw.isna()
            if pd.api.types.is_numeric_dtype(raw.dtype)
            else raw.isna() | (raw.astype("string").str.strip() == "")
        )
        missing = blank.to_numpy(dtype=bool) & alive
        not_number = (parsed.isna().to_numpy() | ~np.isfinite(parsed.to_numpy(dtype=float))) & ~missing & alive
        if missing.any():
            rejected.append(make_rejects(df[missing], "missing_value", f"{col} is empty"))
        if not_number.any():
            bad = df[not_number]
            rejected.append(make_rejects(bad, "not_a_number", f"{col}=" + bad[col].astype("string")))
        alive &= ~(missing | not_number)
        parsed_cols[col] = parsed
    out = df[alive] if not alive.all() else df.copy()
    for col in cols:
        out[col] = parsed_cols[col][alive].astype(float)
    return out, concat_rejects(rejected)


def _parse_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values.astype("string"), format="%Y-%m-%d", errors="coerce")


def _duplicates(df: pd.DataFrame, key: list[str], value_cols: list[str]):
    """Exact repeats keep their first copy; conflicting copies of a key are all rejected. A batch whose keys are
    all distinct (nearly every one) is returned as it is: two ``duplicated`` calls cost more than the rest of it."""
    if lake.distinct_keys(df, key):
        return df, empty_rejects()
    exact = df.duplicated(key + value_cols, keep="first")
    rest = df[~exact]
    conflict = rest.duplicated(key, keep=False)
    rejects = concat_rejects(
        [
            make_rejects(df[exact], "duplicate_row", "exact repeat of an earlier record"),
            make_rejects(
                rest[conflict],
                "duplicate_key_conflict",
                "same " + "/".join(key) + " with different values",
            ),
        ]
    )
    return rest[~conflict], rejects


@dataclass(frozen=True)
class PriceLimits:
    """What a daily bar may plausibly be, alone and against the ticker's previous stored bar.

    Bounds catch finite but absurd values (a price of 1e308 parses as a number); the step check catches
    units and split errors (a 1000x jump that reverts the next day), after Qlib's data health check:
    a move of ``adj_close`` beyond ``step_reject`` (a factor, either way) is quarantined; a move beyond
    ``step_flag`` in ``adj_close`` or ``volume_flag`` in volume is kept and flagged. Defaults: the
    highest US share price is under 1e6 (BRK-A), the busiest single-stock day under 1e10 shares; Qlib
    flags 50% price moves. Volume moves 10x in a day rarely (62 bars on StockNet 2014-2015, mostly two
    micro-caps), where Qlib's 3x would flag hundreds of ordinary earnings days.
    """

    max_price: float = 1e7
    max_volume: float = 1e11
    step_reject: float = 10.0
    step_flag: float = 1.5
    volume_flag: float = 10.0
    lookback: int = 5  # sessions searched back for the previous stored bar

    def __post_init__(self):
        factors = (self.step_reject, self.step_flag, self.volume_flag)
        if not (self.max_price > 0 and self.max_volume > 0 and all(f > 1 for f in factors) and self.lookback >= 1):
            raise ValueError(f"price limits need positive bounds, step factors > 1 and lookback >= 1: {self}")


DEFAULT_LIMITS = PriceLimits()


def unknown_ticker_rule(universe: frozenset[str]) -> Rule:
    """The one rule for records of a ticker outside the universe (bars, aggregates, single tweets)."""
    return ("unknown_ticker", lambda d: ~_each(d["ticker"], universe.__contains__), lambda d: d["ticker"])


def _each(column: pd.Series, test: Callable[[object], bool]) -> pd.Series:
    """``test`` of every value, as a boolean Series on the column's index: for a few hundred values a Python loop
    costs a tenth of a pandas ``isin`` or ``map``."""
    return pd.Series([test(v) for v in column.to_numpy(dtype=object)], index=column.index, dtype=bool)


def _price_structure_rules(session: dt.date, universe: frozenset[str]) -> list[Rule]:
    return [
        unknown_ticker_rule(universe),
        ("bad_date", lambda d: d["date_parsed"].isna(), lambda d: "date=" + d["date"].astype("string")),
        (
            "not_a_trading_day",
            lambda d: pd.Series(~sessions.are_sessions(d["date_parsed"].to_numpy()), index=d.index),
            lambda d: d["date_parsed"].dt.strftime("%Y-%m-%d") + " is not an NYSE session",
        ),
        (
            "wrong_partition",
            lambda d: d["date_parsed"].dt.date != session,
            lambda d: d["date_parsed"].dt.strftime("%Y-%m-%d") + f" offered for partition {session}",
        ),
    ]


def _any_row(mask: np.ndarray, d: pd.DataFrame) -> pd.Series:
    """Rows of ``d`` where any column of ``mask`` holds (the frame's ``any(axis=1)`` costs ten times more)."""
    return pd.Series(mask.any(axis=1), index=d.index)


def _ohlc_inconsistent(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, d: pd.DataFrame) -> pd.Series:
    """A low above the open or close, a high below either, or a high below the low."""
    return pd.Series((lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (h < lo), index=d.index)


def _price_value_rules(limits: PriceLimits) -> list[Rule]:
    return [
        (
            "non_positive_price",
            lambda d: _any_row(d[PRICE_FIELDS].to_numpy() <= 0, d),
            lambda d: d[PRICE_FIELDS].min(axis=1).map(lambda v: f"min price {v}"),
        ),
        (
            "implausible_price",
            lambda d: _any_row(d[PRICE_FIELDS].to_numpy() > limits.max_price, d),
            lambda d: d[PRICE_FIELDS].max(axis=1).map(lambda v: f"max price {v} above {limits.max_price:g}"),
        ),
        (
            "ohlc_inconsistent",
            lambda d: _ohlc_inconsistent(*(d[c].to_numpy() for c in ("open", "high", "low", "close")), d),
            lambda d: "open/high/low/close = " + d[["open", "high", "low", "close"]].astype(str).agg("/".join, axis=1),
        ),
        ("negative_volume", lambda d: d["volume"] < 0, lambda d: "volume=" + d["volume"].astype(str)),
        (
            "volume_out_of_range",
            lambda d: d["volume"] >= 2.0**63,
            lambda d: "volume=" + d["volume"].astype(str) + " does not fit in int64",
        ),
        (
            "implausible_volume",
            lambda d: d["volume"] > limits.max_volume,
            lambda d: "volume=" + d["volume"].astype(str) + f" above {limits.max_volume:g}",
        ),
        (
            "fractional_volume",
            lambda d: d["volume"] != np.floor(d["volume"]),
            lambda d: "volume=" + d["volume"].astype(str),
        ),
    ]


def validate_prices(
    raw: pd.DataFrame, session: dt.date, universe: frozenset[str], limits: PriceLimits = DEFAULT_LIMITS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate daily bars offered for ``session``.

    ``raw`` has ticker, date, the OHLC fields, volume (text or numbers),
    source_file, source_line and raw. Returns clean bars typed as floats with
    a ``date`` column, and the rejects.
    """
    if raw.empty:
        return raw.assign(date=pd.Series(dtype="object")), empty_rejects()
    df = raw.copy()
    df["date_parsed"] = _parse_dates(df["date"])
    df, structural = apply_rules(df, _price_structure_rules(session, universe))
    df, numeric = _parse_numeric(df, PRICE_FIELDS + ["volume"])
    df, semantic = apply_rules(df, _price_value_rules(limits))
    df, dups = _duplicates(df, ["ticker", "date_parsed"], PRICE_FIELDS + ["volume"])
    clean = df.assign(date=df["date_parsed"].dt.date, volume=df["volume"].astype("int64"))
    clean = clean.drop(columns=["date_parsed"])
    return clean.reset_index(drop=True), concat_rejects([structural, numeric, semantic, dups])


STEP_FLAG_COLUMNS = ["ticker", "date", "field", "previous_date", "previous", "value", "ratio", "note"]


def check_steps(
    bars: pd.DataFrame, session: dt.date, history: pd.DataFrame, limits: PriceLimits = DEFAULT_LIMITS
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Step check of clean ``bars`` of ``session`` against each ticker's previous stored bars.

    ``history`` holds earlier bars only (ticker, date, adj_close, volume; any number per ticker, the
    nearest earlier ones are used), so the decision for a session never depends on a later one. Returns
    (kept bars, rejects, flags): an ``adj_close`` move beyond ``limits.step_reject`` is quarantined as
    ``implausible_step`` with both values; a move beyond the flag factors is kept and listed in flags
    (``STEP_FLAG_COLUMNS``), whose note is ``reverted`` when it undoes a flagged jump of the previous bar.
    A ticker without an earlier bar is not checked.
    """
    no_flags = pd.DataFrame(columns=STEP_FLAG_COLUMNS)
    if bars.empty or history.empty:
        return bars, empty_rejects(), no_flags
    prev = _previous_aligned(history, bars["ticker"])
    adj = bars["adj_close"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        hard = np.abs(np.log(adj / prev["adj_close_1"])) > np.log(limits.step_reject)
    rejects = empty_rejects()
    if hard.any():
        detail = [
            f"adj_close {v} vs {p} on {d}: x{v / p:.6g} (limit {limits.step_reject:g}x either way)"
            for v, p, d in zip(adj[hard], prev["adj_close_1"][hard], prev["date_1"][hard], strict=True)
        ]
        rejects = make_rejects(bars[hard], "implausible_step", pd.Series(detail, index=bars.index[hard], dtype=object))
    current = {"adj_close": adj, "volume": bars["volume"].to_numpy(dtype=float)}
    fields = (("adj_close", limits.step_flag), ("volume", limits.volume_flag))
    flags = [_step_flags(bars, current[f], prev, f, k, ~hard, session) for f, k in fields]
    flags = [f for f in flags if not f.empty]
    return bars[~hard], rejects, pd.concat(flags, ignore_index=True) if flags else no_flags


def _previous_aligned(history: pd.DataFrame, tickers: pd.Series) -> dict[str, np.ndarray]:
    """For each of ``tickers``: the nearest earlier bar's date, adj_close and volume (suffix _1) and the
    one before it (suffix _2), as arrays aligned with ``tickers`` (NaN / None where there is none)."""
    ordered = history.sort_values("date", ascending=False, kind="mergesort").reset_index(drop=True)
    first = ordered.drop_duplicates("ticker")
    second = ordered.drop(first.index).drop_duplicates("ticker")
    out = {}
    for suffix, bars in (("_1", first), ("_2", second)):
        at = pd.Index(bars["ticker"].to_numpy(dtype=object)).get_indexer(tickers.to_numpy(dtype=object))
        # -1 (no such bar) picks the sentinel appended last
        for col in ("adj_close", "volume"):
            out[col + suffix] = np.append(bars[col].to_numpy(dtype=float), np.nan)[at]
        out["date" + suffix] = np.append(bars["date"].to_numpy(dtype=object), None)[at]
    return out


def _step_flags(
    bars: pd.DataFrame,
    value: np.ndarray,
    prev: dict[str, np.ndarray],
    field: str,
    factor: float,
    keep: np.ndarray,
    session: dt.date,
) -> pd.DataFrame:
    """Kept bars whose ``field`` moved beyond ``factor`` either way since the previous bar; ``reverted``
    when the previous bar was itself such a jump the other way and this one returns within the factor of
    the bar before it."""
    before, before2 = prev[f"{field}_1"], prev[f"{field}_2"]
    limit = np.log(factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = value / before
        step, earlier, net = np.log(ratio), np.log(before / before2), np.log(value / before2)
    flagged = keep & (value > 0) & (before > 0) & (np.abs(step) > limit)
    if not flagged.any():
        return pd.DataFrame(columns=STEP_FLAG_COLUMNS)
    reverted = (np.abs(earlier) > limit) & (np.sign(step) != np.sign(earlier)) & (np.abs(net) <= limit)
    return pd.DataFrame(
        {
            "ticker": bars["ticker"].to_numpy(dtype=object)[flagged],
            "date": session,
            "field": field,
            "previous_date": prev["date_1"][flagged],
            "previous": before[flagged],
            "value": value[flagged],
            "ratio": ratio[flagged],
            "note": np.where(reverted[flagged], "reverted", "jump"),
        },
        columns=STEP_FLAG_COLUMNS,
    )


def validate_alt(raw: pd.DataFrame, days: list[dt.date], universe: frozenset[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate daily alternative-data aggregates offered for a partition's ``days``."""
    if raw.empty:
        return raw, empty_rejects()
    owned = set(days)
    df = raw.copy()
    df["day_parsed"] = _parse_dates(df["day"])
    df, structural = apply_rules(
        df,
        [
            unknown_ticker_rule(universe),
            ("bad_date", lambda d: d["day_parsed"].isna(), lambda d: "day=" + d["day"].astype("string")),
            (
                "wrong_partition",
                lambda d: ~d["day_parsed"].dt.date.isin(owned),
                lambda d: d["day_parsed"].dt.strftime("%Y-%m-%d") + f" not in {min(owned)}..{max(owned)}",
            ),
        ],
    )
    df, numeric = _parse_numeric(df, ALT_COUNT_FIELDS)
    df["sentiment"] = pd.to_numeric(df["sentiment"], errors="coerce")
    df, semantic = apply_rules(
        df,
        [
            (
                "negative_count",
                lambda d: (d[ALT_COUNT_FIELDS] < 0).any(axis=1),
                lambda d: d[ALT_COUNT_FIELDS].min(axis=1).map(lambda v: f"min count {v}"),
            ),
            (
                "fractional_count",
                lambda d: (d[ALT_COUNT_FIELDS] != np.floor(d[ALT_COUNT_FIELDS])).any(axis=1),
                "counts must be whole numbers",
            ),
            (
                "users_exceed_tweets",
                lambda d: d["unique_users"] > d["tweet_count"],
                lambda d: d["unique_users"].astype(str) + " users > " + d["tweet_count"].astype(str) + " tweets",
            ),
            (
                "sentiment_out_of_range",
                lambda d: ~d["sentiment"].between(-1.0, 1.0) & (d["tweet_count"] > 0),
                lambda d: "sentiment=" + d["sentiment"].astype(str),
            ),
        ],
    )
    df, dups = _duplicates(df, ["ticker", "day_parsed"], ALT_COUNT_FIELDS + ["sentiment"])
    clean = df.assign(day=df["day_parsed"].dt.date).drop(columns=["day_parsed"])
    for col in ALT_COUNT_FIELDS:
        clean[col] = clean[col].astype("int64")
    return clean.reset_index(drop=True), concat_rejects([structural, numeric, semantic, dups])


TWEET_TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"


def _is_token_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(t, str) for t in value)


def _is_user_id(value) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def validate_tweets(records: pd.DataFrame, universe: frozenset[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate single tweets (ticker, file_date, created_at, user_id, text, source_*).

    Tweets of a ticker outside ``universe`` (when given) are quarantined one by one, so the quarantine
    counts tweets like every other tweet reason.

    Returns clean tweets with ``created_utc`` and their UTC ``day``. A tweet
    dated after its file's date, or more than one day before it, is
    quarantined: the files hold a tweet on its own UTC day or in the evening
    before, nothing else is trustworthy.
    """
    if records.empty:
        return records, empty_rejects()
    df = records.copy()
    df["created_utc"] = pd.to_datetime(
        df["created_at"].astype("string"), format=TWEET_TIME_FORMAT, errors="coerce", utc=True
    )
    blank = lambda col: lambda d: d[col].isna() | (d[col].astype("string").str.strip() == "")  # noqa: E731
    df, rejects = apply_rules(
        df,
        ([unknown_ticker_rule(universe)] if universe is not None else [])
        + [
            ("missing_timestamp", blank("created_at"), "tweet has no created_at"),
            (
                "bad_timestamp",
                lambda d: d["created_utc"].isna(),
                lambda d: "created_at=" + d["created_at"].astype("string"),
            ),
            ("missing_user", blank("user_id"), "tweet has no user_id_str"),
            ("bad_user", lambda d: ~d["user_id"].map(_is_user_id), "user_id_str is not a string or integer"),
            ("bad_text", lambda d: ~d["text"].map(_is_token_list), "text is not a list of tokens"),
        ],
    )
    df["user_id"] = df["user_id"].astype(str)  # 123 and "123" are the same user
    df["day"] = df["created_utc"].dt.date
    lag_days = (pd.to_datetime(df["file_date"]) - pd.to_datetime(df["day"])).dt.days
    df, timing = apply_rules(
        df.assign(lag_days=lag_days),
        [
            (
                "created_after_file_date",
                lambda d: d["lag_days"] < 0,
                lambda d: "created " + d["day"].astype(str) + " in file for " + d["file_date"].astype(str),
            ),
            (
                "created_long_before_file_date",
                lambda d: d["lag_days"] > 1,
                lambda d: "created " + d["day"].astype(str) + " in file for " + d["file_date"].astype(str),
            ),
        ],
    )
    df = df.assign(text_key=df["text"].map(" ".join))
    dup = df.duplicated(["ticker", "created_utc", "user_id", "text_key"], keep="first")
    dups = make_rejects(df[dup], "duplicate_tweet", "same ticker, time, user and text as an earlier tweet")
    clean = df[~dup].drop(columns=["text_key", "lag_days"]).reset_index(drop=True)
    return clean, concat_rejects([rejects, timing, dups])

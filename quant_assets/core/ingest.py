"""One partition's ingest: source -> validation -> lake (+ quarantine) -> report.

Time stamps follow DESIGN.md: ``event_time`` is the business time (a bar's
session close, a daily aggregate's end of UTC day); ``ingest_time`` is when the
value became known: event_time + the dataset's availability lag in historical
backfills, the wall clock in live runs. A corrected value is a new row with a
later ingest_time.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa

from quant_assets.core import lake
from quant_assets.core import time as qtime
from quant_assets.core.sources.base import ALT_LAG, PRICE_LAG, AltSource, PriceSource
from quant_assets.core.validate import ALT_COUNT_FIELDS, PRICE_FIELDS, validate_alt, validate_prices

Clock = Literal["backfill", "live"]
PRICES = "raw_prices"
ALT = "alt_data"
KEY = ["ticker", "event_time"]
PRICE_VALUES = PRICE_FIELDS + ["volume"]
ALT_VALUES = ALT_COUNT_FIELDS + ["sentiment"]


_TS = pa.timestamp("us", tz="UTC")
PRICE_SCHEMA = pa.schema(
    [("ticker", pa.string()), ("event_time", _TS)]
    + [(c, pa.float64()) for c in PRICE_FIELDS]
    + [
        ("volume", pa.int64()),
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("ingest_time", _TS),
    ]
)
ALT_SCHEMA = pa.schema(
    [("ticker", pa.string()), ("event_time", _TS), ("day", pa.date32())]
    + [(c, pa.int64()) for c in ALT_COUNT_FIELDS]
    + [("sentiment", pa.float64()), ("source", pa.string()), ("source_file", pa.string()), ("ingest_time", _TS)]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
    ]
)


class NotYetAvailable(RuntimeError):
    """A live ingest asked for data before its event time plus availability lag."""


@dataclass
class IngestReport:
    dataset: str
    partition: dt.date
    rows_offered: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    rows_written: int = 0
    quarantine_written: int = 0
    tickers: int = 0
    first_event: pd.Timestamp | None = None
    last_event: pd.Timestamp | None = None
    reasons: Counter = field(default_factory=Counter)
    preview: pd.DataFrame = field(default_factory=pd.DataFrame)
    schema: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bad_share(self) -> float:
        total = self.rows_clean + self.rows_quarantined
        return self.rows_quarantined / total if total else 0.0


def _stamp(df: pd.DataFrame, lag: pd.Timedelta, clock: Clock, now: pd.Timestamp) -> pd.Series:
    available = df["event_time"] + lag
    if clock == "backfill":
        return available
    if (available > now).any():
        first = available[available > now].min()
        raise NotYetAvailable(f"data is not available until {first.isoformat()} (now {now.isoformat()})")
    return pd.Series(now, index=df.index)


def _finish(
    report: IngestReport,
    root: Path,
    day: dt.date,
    rows: pd.DataFrame,
    rejects: pd.DataFrame,
    value_cols: list[str],
    now: pd.Timestamp,
    schema: pa.Schema,
) -> IngestReport:
    written = lake.append_new_versions(root, report.dataset, day, rows, KEY, value_cols, now, schema)
    quarantined = lake.append_quarantine(root, report.dataset, day, rejects, QUARANTINE_SCHEMA)
    report.rows_clean = len(rows)
    report.rows_quarantined = len(rejects)
    report.rows_offered = len(rows) + len(rejects)
    report.rows_written = written.rows_written
    report.quarantine_written = quarantined.rows_written
    report.reasons = Counter(rejects["reason"].astype(str)) if not rejects.empty else Counter()
    if not rows.empty:
        report.tickers = rows["ticker"].nunique()
        report.first_event = rows["event_time"].min()
        report.last_event = rows["event_time"].max()
        report.preview = rows.head(5)
        report.schema = [(f.name, str(f.type)) for f in schema]
    return report


def ingest_prices(
    source: PriceSource, session: dt.date, root: Path, clock: Clock = "backfill", now: pd.Timestamp | None = None
) -> IngestReport:
    session = qtime.require_session(session)
    now = now or pd.Timestamp.now(tz="UTC")
    batch = source.prices(session)
    clean, rejects = validate_prices(batch.records, session, source.universe())
    rows = pd.DataFrame(
        {
            "ticker": clean["ticker"].astype("string"),
            "event_time": pd.Series(qtime.session_close(session), index=clean.index),
            **{c: clean[c].astype("float64") for c in PRICE_FIELDS},
            "volume": clean["volume"].astype("int64"),
            "source": source.name,
            "source_file": clean["source_file"].astype("string"),
            "source_line": clean["source_line"].astype("Int64"),
        }
    )
    rows["ingest_time"] = _stamp(rows, PRICE_LAG, clock, now)
    all_rejects = pd.concat([batch.rejects, rejects], ignore_index=True) if not batch.rejects.empty else rejects
    return _finish(IngestReport(PRICES, session), root, session, rows, all_rejects, PRICE_VALUES, now, PRICE_SCHEMA)


def ingest_alt(
    source: AltSource, session: dt.date, root: Path, clock: Clock = "backfill", now: pd.Timestamp | None = None
) -> IngestReport:
    session = qtime.require_session(session)
    now = now or pd.Timestamp.now(tz="UTC")
    days = qtime.owned_calendar_days(session)
    batch = source.alt(session)
    clean, rejects = validate_alt(batch.records, days, source.universe())
    ends = pd.to_datetime(clean["day"].map(lambda d: d + dt.timedelta(days=1))) if not clean.empty else None
    rows = pd.DataFrame(
        {
            "ticker": clean["ticker"].astype("string"),
            "event_time": ends.dt.tz_localize("UTC") if ends is not None else pd.Series(dtype="datetime64[ns, UTC]"),
            "day": clean["day"],
            **{c: clean[c].astype("int64") for c in ALT_COUNT_FIELDS},
            "sentiment": clean["sentiment"].astype("float64"),
            "source": source.name,
            "source_file": clean["source_file"].astype("string"),
        }
    )
    rows["ingest_time"] = _stamp(rows, ALT_LAG, clock, now)
    all_rejects = pd.concat([batch.rejects, rejects], ignore_index=True) if not batch.rejects.empty else rejects
    return _finish(IngestReport(ALT, session), root, session, rows, all_rejects, ALT_VALUES, now, ALT_SCHEMA)

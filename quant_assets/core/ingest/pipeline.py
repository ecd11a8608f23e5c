"""One partition's ingest: source -> validation -> lake (+ quarantine) -> report.

Time stamps follow DESIGN.md: ``event_time`` is the business time (a bar's
session close, a daily aggregate's end of UTC day); ``ingest_time`` is when the
value became known: event_time + the dataset's availability lag in historical
backfills, the wall clock in live runs. A corrected value is a new row with a
later ingest_time.

The report's ``bad_share`` compares like with like: damaged records quarantined
over records read from the source (CSV lines, tweet lines, synthetic rows);
records excluded on purpose (``validate.EXCLUDED_REASONS``) are quarantined and
reported but are not damage.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from quant_assets.core import sessions
from quant_assets.core.ingest import receipts
from quant_assets.core.ingest.report import IngestReport
from quant_assets.core.ingest.sources.base import ALT_LAG, PRICE_LAG, AltSource, PriceSource, RawBatch, known_by_close
from quant_assets.core.ingest.validate import (
    ALT_COUNT_FIELDS,
    DEFAULT_LIMITS,
    EXCLUDED_REASONS,
    PRICE_FIELDS,
    PriceLimits,
    check_steps,
    concat_rejects,
    empty_rejects,
    make_rejects,
    validate_alt,
    validate_prices,
)
from quant_assets.core.storage import lake
from quant_assets.core.storage.fs import Location

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
        *lake.PROVENANCE_FIELDS,
    ]
)
ALT_SCHEMA = pa.schema(
    [("ticker", pa.string()), ("event_time", _TS), ("day", pa.date32())]
    + [(c, pa.int64()) for c in ALT_COUNT_FIELDS]
    + [("sentiment", pa.float64()), ("source", pa.string()), ("source_file", pa.string()), ("ingest_time", _TS)]
    + lake.PROVENANCE_FIELDS
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
        *lake.PROVENANCE_FIELDS,
    ]
)


class NotYetAvailable(RuntimeError):
    """A live ingest asked for data before its event time plus availability lag."""


def _available(
    df: pd.DataFrame, event_time: pd.Series, lag: pd.Timedelta, clock: Clock, now: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """(rows known by ``now``, rejects, their ingest_time): backfill stamps event_time + lag, live ``now``.

    Under the backfill clock a row whose event_time + lag is after ``now`` (today's bar before the close)
    would claim to be known before it could exist: it is quarantined as ``not_yet_available``, and a later
    run ingests it. The live clock refuses such a partition as a whole (NotYetAvailable): a live run is
    scheduled after its data's availability, so an early one is an operator's mistake to see.
    """
    available = event_time + lag
    early = (available > now).to_numpy()
    if clock == "live":
        if early.any():
            first = available[early].min()
            raise NotYetAvailable(f"data is not available until {first.isoformat()} (now {now.isoformat()})")
        return df, empty_rejects(), pd.Series(now, index=df.index)
    detail = available[early].map(lambda t: f"available at {t.isoformat()}: offered before it could be known")
    return df[~early], make_rejects(df[early], "not_yet_available", detail), available[~early]


_HISTORY_COLUMNS = [*KEY, "adj_close", "volume", "ingest_time"]  # what the step check reads of a stored bar


def previous_bars(root: Location, session: dt.date, tickers, lookback: int, known_at: pd.Timestamp) -> pd.DataFrame:
    """The (up to) two nearest stored bars per ticker before ``session``, within ``lookback`` sessions.

    Each is the latest version ingested by ``known_at``; columns ticker, date, adj_close, volume. Reads
    one partition at a time, newest first, and stops once every ticker has two: the cost follows the
    day's work, not the length of the history. Nothing of ``session`` or later is read.
    """
    wanted = pd.Index(pd.unique(np.asarray(tickers, dtype=object)))
    found, frames = np.zeros(len(wanted), dtype=int), []
    index = sessions.session_index(session)
    for i in range(index - 1, max(index - 1 - lookback, -1), -1):
        if (found >= 2).all():
            break
        stored = lake.read_partition(root, PRICES, sessions.session_at(i), _HISTORY_COLUMNS)
        if stored.empty:
            continue
        latest = lake.latest_versions(stored[stored["ingest_time"] <= known_at], KEY)
        names = latest["ticker"].to_numpy(dtype=object)
        frames.append(
            pd.DataFrame(
                {
                    "ticker": names,
                    "date": sessions.session_at(i),
                    "adj_close": latest["adj_close"],
                    "volume": latest["volume"],
                }
            )
        )
        hits = wanted.get_indexer(names)
        found[hits[hits >= 0]] += 1
    columns = ["ticker", "date", "adj_close", "volume"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _finish(
    report: IngestReport,
    root: Location,
    day: dt.date,
    rows: pd.DataFrame,
    rejects: pd.DataFrame,
    value_cols: list[str],
    now: pd.Timestamp,
    schema: pa.Schema,
    provenance: Mapping[str, str] | None,
) -> IngestReport:
    """Store the rows and rejects, stamped with ``provenance`` (the report, and so the receipt, names no run: a
    rerun of the same delivery finds the same receipt), and fill in the report."""
    written = lake.append_new_versions(root, report.dataset, day, rows, KEY, value_cols, now, schema, provenance)
    quarantined = lake.append_quarantine(root, report.dataset, day, rejects, QUARANTINE_SCHEMA, provenance)
    report.rows_clean = len(rows)
    report.rows_quarantined = len(rejects)
    report.rows_excluded = int(rejects["reason"].isin(EXCLUDED_REASONS).sum())
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
    source: PriceSource,
    session: dt.date,
    root: Location,
    clock: Clock = "backfill",
    now: pd.Timestamp | None = None,
    limits: PriceLimits = DEFAULT_LIMITS,
    provenance: Mapping[str, str] | None = None,
) -> IngestReport:
    """Validate one session's bars (rows, bounds, availability, then steps against the stored bars before
    it) and append them to the lake; every rejected record goes to the quarantine with its reason. Rows and
    rejects written carry ``provenance`` (``lake.PROVENANCE``: the asset, code version and run). The same
    delivery onto the same stored bars again returns the receipt's report (``receipts``)."""
    session = sessions.require_session(session)
    batch = source.prices(session)
    index = sessions.session_index(session)
    looked_back = [sessions.session_at(i) for i in range(max(index - limits.lookback, 0), index)]
    settings = {"clock": clock, "limits": repr(limits), "universe": sorted(source.universe()), "source": source.name}
    work = functools.partial(_prices, source.name, batch, source.universe(), session, root, clock, limits, provenance)
    return _receipted(root, PRICES, session, batch, settings, looked_back, lambda: work(now or _now()))


def _prices(
    name: str, batch: RawBatch, universe, session: dt.date, root: Location, clock: Clock, limits: PriceLimits,
    provenance: Mapping[str, str] | None, now: pd.Timestamp,
) -> IngestReport:  # fmt: skip
    clean, rejects = validate_prices(batch.records, session, universe, limits)
    close = pd.Series(sessions.session_close(session), index=clean.index)
    clean, late, ingest_time = _available(clean, close, PRICE_LAG, clock, now)
    # the bars known when this session's became available (backfill) or now (live): the same decision
    # however late a backfill runs, whatever was restated since
    known_at = now if clock == "live" else known_by_close(session)
    history = previous_bars(root, session, clean["ticker"], limits.lookback, known_at)
    clean, steps, flags = check_steps(clean, session, history, limits)
    rows = pd.DataFrame(
        {
            "ticker": clean["ticker"].astype("string"),
            "event_time": close[clean.index],
            **{c: clean[c].astype("float64") for c in PRICE_FIELDS},
            "volume": clean["volume"].astype("int64"),
            "source": name,
            "source_file": clean["source_file"].astype("string"),
            "source_line": clean["source_line"].astype("Int64"),
            "ingest_time": ingest_time[clean.index],
        }
    )
    report = IngestReport(PRICES, session, records_read=batch.read_count(), notices=batch.notices, step_flags=flags)
    all_rejects = concat_rejects([batch.rejects, rejects, late, steps])
    return _finish(report, root, session, rows, all_rejects, PRICE_VALUES, now, PRICE_SCHEMA, provenance)


def ingest_alt(
    source: AltSource,
    session: dt.date,
    root: Location,
    clock: Clock = "backfill",
    now: pd.Timestamp | None = None,
    provenance: Mapping[str, str] | None = None,
) -> IngestReport:
    """Validate one session's alternative data (the calendar days it owns) and append it to the lake, as
    ``ingest_prices`` does (no step check: nothing before the partition is read)."""
    session = sessions.require_session(session)
    batch = source.alt(session)
    settings = {"clock": clock, "universe": sorted(source.universe()), "source": source.name}
    work = functools.partial(_alt, source.name, batch, source.universe(), session, root, clock, provenance)
    return _receipted(root, ALT, session, batch, settings, [], lambda: work(now or _now()))


def _alt(
    name: str, batch: RawBatch, universe, session: dt.date, root: Location, clock: Clock,
    provenance: Mapping[str, str] | None, now: pd.Timestamp,
) -> IngestReport:  # fmt: skip
    clean, rejects = validate_alt(batch.records, sessions.owned_calendar_days(session), universe)
    ends = pd.to_datetime(clean["day"].map(lambda d: d + dt.timedelta(days=1))) if not clean.empty else None
    event = ends.dt.tz_localize("UTC") if ends is not None else pd.Series(dtype="datetime64[ns, UTC]")
    clean, late, ingest_time = _available(clean, event, ALT_LAG, clock, now)
    rows = pd.DataFrame(
        {
            "ticker": clean["ticker"].astype("string"),
            "event_time": event[clean.index],
            "day": clean["day"],
            **{c: clean[c].astype("int64") for c in ALT_COUNT_FIELDS},
            "sentiment": clean["sentiment"].astype("float64"),
            "source": name,
            "source_file": clean["source_file"].astype("string"),
            "ingest_time": ingest_time,
        }
    )
    report = IngestReport(ALT, session, records_read=batch.read_count(), notices=batch.notices)
    all_rejects = concat_rejects([batch.rejects, rejects, late])
    return _finish(report, root, session, rows, all_rejects, ALT_VALUES, now, ALT_SCHEMA, provenance)


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _receipted(
    root: Location,
    dataset: str,
    session: dt.date,
    batch: RawBatch,
    settings: dict,
    looked_back: list[dt.date],
    work: Callable[[], IngestReport],
) -> IngestReport:
    """``work``'s report, or under the backfill clock the receipt's when this delivery was ingested onto what is
    stored now: the key reads the partition, its quarantine and the partitions ``looked_back`` on (``receipts``)."""
    reads = [
        lake.partition_dir(root, dataset, session),
        lake.partition_dir(root, f"quarantine/{dataset}", session),
        *(lake.partition_dir(root, dataset, d) for d in looked_back),
    ]
    if settings["clock"] != "backfill":
        return work()
    digest = receipts.delivery_digest(batch, {"dataset": dataset, "session": session.isoformat(), **settings})
    found = receipts.find(root, dataset, session, digest, reads)
    if found is not None:
        return found
    report = work()
    receipts.keep(root, dataset, session, digest, reads, report)
    return report

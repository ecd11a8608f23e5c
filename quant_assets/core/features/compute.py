"""Compute a feature family for one day, bitemporally.

For target day X the family reads every stored version of its input rows in
the lookback window. It computes the features once for each *knowledge time*
t: the first time X's own inputs were known, then every later ingest time in
the window (a restatement). At t it sees only input versions with
``ingest_time <= t``, and the resulting row is stamped ``ingest_time = t``;
a row is emitted only when the values differ from the previous knowledge
time. So a feature row never depends on anything known after its
ingest_time, and a corrected bar yields a new row instead of rewriting one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.storage import lake
from quant_assets.core.storage.equality import nan_equal
from quant_assets.core.storage.fs import Location

META = ["entity_key", "event_time", "ingest_time"]


def window_axis(family: FeatureFamily, day: dt.date) -> list[dt.date]:
    """The panel's row labels: the lookback's sessions (prices) or UTC calendar days (alt data)."""
    if family.source == "alt_data":
        return [day - dt.timedelta(days=k) for k in range(family.lookback - 1, -1, -1)]
    end = sessions.session_index(day)
    return [sessions.session_at(i) for i in range(max(0, end - family.lookback + 1), end + 1)]


def window_partitions(family: FeatureFamily, day: dt.date) -> list[dt.date]:
    """Raw partitions holding the window: the cost of a day is bounded by the lookback."""
    axis = window_axis(family, day)
    if family.source == "alt_data":
        return sessions.sessions_between(sessions.session_on_or_after(axis[0]), day)
    return axis


def target_event_time(family: FeatureFamily, day: dt.date) -> pd.Timestamp:
    return sessions.utc_day_end(day) if family.source == "alt_data" else sessions.session_close(day)


def partition_span(family: FeatureFamily) -> int:
    """Upper bound on how many raw partitions before the day the window reaches (for lineage)."""
    return family.lookback - 1 if family.source != "alt_data" else family.lookback * 5 // 7 + 2


def input_parts(root: Location, family: FeatureFamily, days: list[dt.date]) -> dict[dt.date, list[Location]]:
    """The raw parts of every partition the windows of ``days`` read, one listing per partition: what a run plans
    with (their names fingerprint its inputs: ``units.plan``) and then reads, listed once."""
    first = window_partitions(family, days[0])[0]
    return {
        p: lake.partition_files(lake.partition_dir(root, family.source, p))
        for p in sessions.sessions_between(first, days[-1])
    }


def load_inputs(
    root: Location, family: FeatureFamily, days: list[dt.date], parts: dict[dt.date, list[Location]] | None = None
) -> pd.DataFrame:
    """Every stored version of the family's input rows for the windows of ``days`` (one read for a range), from
    ``parts`` (an ``input_parts`` listing covering them, cut to them) or a listing of their own."""
    parts = input_parts(root, family, days) if parts is None else parts
    first = window_partitions(family, days[0])[0]
    return _read(family, [f for p, found in parts.items() if first <= p <= days[-1] for f in found])


def window_rows(family: FeatureFamily, rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The slice of loaded inputs inside ``day``'s window (rows sorted by day, as the loaders return them).

    A binary search, so a range backfill costs the same per day however long the loaded range is: over the
    ``day`` column's dates as they are (converting the whole column to datetime64 first cost time in proportion
    to the range, on every day of it).
    """
    lo, hi = _window(family, rows["day"].to_numpy(), day)
    return rows.iloc[lo:hi]


def _window(family: FeatureFamily, days: np.ndarray, day: dt.date) -> tuple[int, int]:
    """The positions [lo, hi) of ``day``'s window in ``days``: sorted dates, or their ordinals (``_Rows``)."""
    first = window_axis(family, day)[0]
    if days.dtype.kind == "i":
        first, day = first.toordinal(), day.toordinal()
    return int(np.searchsorted(days, first, "left")), int(np.searchsorted(days, day, "right"))


def load_window(root: Location, family: FeatureFamily, day: dt.date) -> pd.DataFrame:
    """Every stored version of the family's input rows in the window of ``day``."""
    return window_rows(family, load_inputs(root, family, [day]), day)


def _read(family: FeatureFamily, files: list[Location]) -> pd.DataFrame:
    """The parts' rows (``lake.read_frame``), sorted by day (a price bar's day: its session, from its event time)."""
    cols = ["ticker", "event_time", "ingest_time", *(["day"] if family.source == "alt_data" else []), *family.fields]
    if not files:
        return pd.DataFrame(columns=list(dict.fromkeys([*cols, "day"])))
    rows = lake.read_frame(files, cols)
    if family.source != "alt_data":
        rows["day"] = sessions.exchange_dates(rows["event_time"])
    return rows.sort_values("day", kind="mergesort").reset_index(drop=True)


@dataclass(frozen=True)
class _Rows:
    """Input rows as arrays, converted once per call (a backfill's or a candidate's whole range): pandas' cost per
    operation on a window's few hundred rows was most of a day's cost, for every day and knowledge time."""

    tickers: pd.Index  # the rows' distinct tickers, sorted: the panels' columns are taken from it
    code: np.ndarray  # each row's position in ``tickers``
    event: np.ndarray  # event_time, int64 ns
    ingest: np.ndarray  # ingest_time, int64 ns
    ingest_times: pd.api.extensions.ExtensionArray  # ingest_time as stored (a row's stamp is one of these)
    day: np.ndarray  # the row's day, as an ordinal
    values: np.ndarray  # rows x the family's fields, float64


def _rows(family: FeatureFamily, rows: pd.DataFrame) -> _Rows:
    code, tickers = pd.factorize(rows["ticker"], sort=True)
    day, days = pd.factorize(rows["day"])
    fields = [rows[f].to_numpy(dtype="float64", na_value=np.nan) for f in family.fields]
    return _Rows(
        pd.Index(tickers, name="ticker"),
        code,
        _ns(rows["event_time"]),
        _ns(rows["ingest_time"]),
        rows["ingest_time"].array,
        np.array([d.toordinal() for d in days], dtype="int64")[day],
        np.column_stack(fields) if fields else np.empty((len(rows), 0)),
    )


def _ns(times) -> np.ndarray:
    """Timezone-aware times as int64 nanoseconds since the epoch (UTC), whatever their stored unit."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def _ns1(time: pd.Timestamp) -> int:
    """One time as ``_ns`` gives it."""
    return pd.Timestamp(time).as_unit("ns").value


def _latest(rows: _Rows, visible: np.ndarray) -> np.ndarray:
    """Positions of the latest version of each visible (ticker, event_time), in ingest order: the rows
    ``lake.latest_versions`` keeps (the last of each key once stably sorted by ingest_time), in its order."""
    order = visible[np.argsort(rows.ingest[visible], kind="stable")]
    code, event = rows.code[order], rows.event[order]
    by_key = np.lexsort((np.arange(len(order)), event, code))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (code[by_key][1:] != code[by_key][:-1]) | (event[by_key][1:] != event[by_key][:-1])
    return order[np.sort(by_key[last])]


def _panel(rows: _Rows, family: FeatureFamily, latest: np.ndarray, axis: list[dt.date]) -> dict[str, pd.DataFrame]:
    """One wide frame per field (rows: ``axis``, columns: the sorted tickers of ``latest``) of those versions.

    What ``pivot(...).reindex(axis)`` gives, built by placing each field's values straight into a float grid (a
    later version of the same cell overwrites an earlier one, in ingest order): the pivot's multi-level columns
    cost more than the features themselves, and this runs for every day and knowledge time of a backfill, of
    every guard's recompute and of a research candidate's evaluation.
    """
    columns = np.unique(rows.code[latest])
    ordinals = np.array([d.toordinal() for d in axis], dtype="int64")
    row = np.minimum(np.searchsorted(ordinals, rows.day[latest]), len(axis) - 1)
    inside = ordinals[row] == rows.day[latest]
    row, col, latest = row[inside], np.searchsorted(columns, rows.code[latest[inside]]), latest[inside]
    # every ticker's column (the usual window): the one Index object, which pandas aligns on without comparing
    tickers = rows.tickers if len(columns) == len(rows.tickers) else rows.tickers[columns]
    index = pd.Index(axis, name="day")
    out = {}
    for j, field in enumerate(family.fields):
        grid = np.full((len(index), len(tickers)), np.nan)
        grid[row, col] = rows.values[latest, j]
        out[field] = pd.DataFrame(grid, index=index, columns=tickers, copy=False)
    return out


def compute_at(family: FeatureFamily, rows: pd.DataFrame, day: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:
    """Features of ``day`` from the input versions known at ``as_of`` (tickers x features)."""
    if rows.empty:
        return pd.DataFrame(columns=[f.name for f in family.features])
    return _compute_at(family, _rows(family, rows), np.arange(len(rows)), day, as_of)


def _compute_at(family: FeatureFamily, rows: _Rows, window: np.ndarray, day: dt.date, as_of) -> pd.DataFrame:
    """``compute_at`` on the rows at positions ``window`` (the day's window, or any rows) of the converted
    inputs: the one computation of a day's features as known at a time."""
    known = window[(rows.ingest[window] <= _ns1(as_of)) & (rows.day[window] <= day.toordinal())]
    target = _ns1(target_event_time(family, day))
    present = np.unique(rows.code[known[rows.event[known] == target]])
    if len(present) == 0:
        return pd.DataFrame(columns=[f.name for f in family.features])
    panel = _panel(rows, family, _latest(rows, known), window_axis(family, day))
    computed: dict[str, pd.Series] = {}
    for feature in family.ordered():
        computed[feature.name] = feature.compute({**panel, **computed})
    out = pd.DataFrame(computed)[[f.name for f in family.features]]
    return out.loc[rows.tickers[present]].astype("float64")


def _knowledge_times(family: FeatureFamily, rows: _Rows, window: np.ndarray, day: dt.date) -> np.ndarray:
    """When the day's feature values could change: its first arrival, then every later ingest in its window (as
    positions in ``rows``, whose stored ingest times stamp the day's rows)."""
    own = window[rows.event[window] == _ns1(target_event_time(family, day))]
    if len(own) == 0:
        return own
    first = own[np.argmin(rows.ingest[own])]
    later = window[(rows.ingest[window] > rows.ingest[first]) & (rows.day[window] <= day.toordinal())]
    return np.concatenate([[first], later[np.unique(rows.ingest[later], return_index=True)[1]]])


def compute_days(family: FeatureFamily, inputs: pd.DataFrame, days: list[dt.date]) -> Iterator[pd.DataFrame]:
    """``compute_day`` of each of ``days`` in turn, each from its window of ``inputs`` (``load_inputs``' rows,
    sorted by day): the inputs are converted to arrays once for the range (``_Rows``), not once per day. One day
    at a time, so a caller can write, check or name each day as it comes."""
    rows = _rows(family, inputs) if not inputs.empty else None
    for day in days:
        window = np.arange(*_window(family, rows.day, day)) if rows is not None else np.arange(0)
        yield _bitemporal(family, rows, window, day)


def compute_day(family: FeatureFamily, rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """All bitemporal feature rows for ``day`` from its window's ``rows`` (``window_rows``): entity_key,
    event_time, ingest_time, one column per feature. The one-day case of ``compute_days``."""
    return next(compute_days(family, rows, [day]))


def _bitemporal(family: FeatureFamily, rows: _Rows | None, window: np.ndarray, day: dt.date) -> pd.DataFrame:
    """The day's rows: its features at each knowledge time, a ticker's row emitted only when its values differ
    from those it last had (NaN equal to NaN)."""
    emitted, stamps = [], []
    if rows is None:
        return _emitted(family, rows, day, emitted, stamps)
    last = np.full((len(rows.tickers), len(family.features)), np.nan)
    seen = np.zeros(len(rows.tickers), dtype=bool)
    for t in _knowledge_times(family, rows, window, day):
        values = _compute_at(family, rows, window, day, rows.ingest_times[t])
        code, grid = rows.tickers.get_indexer(values.index), values.to_numpy()
        changed = ~seen[code] | ~nan_equal(grid, last[code]).all(axis=1)
        last[code], seen[code] = grid, True
        emitted.append((code[changed], grid[changed]))
        stamps.append(np.full(changed.sum(), t))
    return _emitted(family, rows, day, emitted, stamps)


def _emitted(family: FeatureFamily, rows: _Rows | None, day: dt.date, emitted: list, stamps: list) -> pd.DataFrame:
    """The emitted (ticker codes, values) of each knowledge time as one frame, ``stamps`` the positions of their
    ingest times."""
    names = [f.name for f in family.features]
    if sum(len(code) for code, _ in emitted) == 0:
        return pd.DataFrame(columns=META + names)
    values = np.concatenate([grid for _, grid in emitted])
    columns = {
        "entity_key": rows.tickers[np.concatenate([code for code, _ in emitted])],
        "event_time": target_event_time(family, day),
        "ingest_time": rows.ingest_times.take(np.concatenate(stamps)),
    }
    return pd.DataFrame({**columns, **{name: values[:, j] for j, name in enumerate(names)}})

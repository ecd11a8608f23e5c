"""Compute a feature family for a range of days, each bitemporally (one day: the range's one-day case).

For target day X the family reads every stored version of its input rows in
the lookback window. It computes the features once for each *knowledge time*
t: the first time X's own inputs were known, then every later ingest time in
the window (a restatement). At t it sees only input versions with
``ingest_time <= t``, and the resulting row is stamped ``ingest_time = t``;
a row is emitted only when the values differ from the previous knowledge
time. So a feature row never depends on anything known after its
ingest_time, and a corrected bar yields a new row instead of rewriting one.

A range (``compute_days``: a backfill, a research candidate) converts its inputs to arrays once, and computes a
family whose features each read only their own column of the panel for many (day, knowledge time) panels side
by side in one call, verified against their own computations (``_stacked``); every row is the one the day alone
gives (quant_assets_tests/core/features/test_compute_range.py).
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


def window_axis(family: FeatureFamily, day: dt.date, lookback: int | None = None) -> list[dt.date]:
    """The panel's row labels: the lookback's sessions (prices) or UTC calendar days (alt data); ``lookback``
    other than the family's own: a longer window, such as the one a stored directory's markers hash
    (``units.py``)."""
    length = family.lookback if lookback is None else lookback
    if family.source == "alt_data":
        return [day - dt.timedelta(days=k) for k in range(length - 1, -1, -1)]
    end = sessions.session_index(day)
    return [sessions.session_at(i) for i in range(max(0, end - length + 1), end + 1)]


def window_partitions(family: FeatureFamily, day: dt.date, lookback: int | None = None) -> list[dt.date]:
    """Raw partitions holding the window: the cost of a day is bounded by the lookback."""
    axis = window_axis(family, day, lookback)
    if family.source == "alt_data":
        return sessions.sessions_between(sessions.session_on_or_after(axis[0]), day)
    return axis


def target_event_time(family: FeatureFamily, day: dt.date) -> pd.Timestamp:
    return sessions.utc_day_end(day) if family.source == "alt_data" else sessions.session_close(day)


def partition_span(family: FeatureFamily) -> int:
    """Upper bound on how many raw partitions before the day the window reaches (for lineage)."""
    return family.lookback - 1 if family.source != "alt_data" else family.lookback * 5 // 7 + 2


def input_parts(
    root: Location, family: FeatureFamily, days: list[dt.date], lookback: int | None = None
) -> dict[dt.date, list[Location]]:
    """The raw parts of every partition the windows of ``days`` read (windows of ``lookback``, if longer), one
    listing per partition: what a run plans with (their names fingerprint its inputs: ``units.plan``) and then
    reads, listed once."""
    first = window_partitions(family, days[0], lookback)[0]
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
    lo, hi = _window(rows["day"].to_numpy(), window_axis(family, day)[0], day)
    return rows.iloc[lo:hi]


def _window(days: np.ndarray, first: dt.date, day: dt.date) -> tuple[int, int]:
    """The positions [lo, hi) of the window ``first``..``day`` in ``days``: sorted dates, or their ordinals."""
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
    """``rows`` (as the loaders return them) converted (``_Rows``)."""
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


@dataclass(frozen=True)
class _Day:
    """What a day's computation asks of the calendar, asked once: its window's axis and its target event time."""

    day: dt.date
    axis: list[dt.date]
    ordinals: np.ndarray  # the axis as ordinals
    target: pd.Timestamp
    target_ns: int


def _day(family: FeatureFamily, day: dt.date) -> _Day:
    axis, target = window_axis(family, day), target_event_time(family, day)
    return _Day(day, axis, np.array([d.toordinal() for d in axis], dtype="int64"), target, _ns1(target))


@dataclass(frozen=True, eq=False)
class _Block:
    """A day's inputs as known at one time: the versions its panel holds and the tickers that get a row."""

    present: np.ndarray  # codes of the tickers whose own input of the day is known
    columns: np.ndarray  # codes of the panel's tickers (every ticker with a known version in the window), sorted
    latest: np.ndarray  # positions of the versions the panel holds, in ingest order
    row: np.ndarray  # each version's row in the panel: its day's place on the axis
    axis: list[dt.date]


def _block(rows: _Rows, window: np.ndarray, day: _Day, as_of: int) -> _Block | None:
    """The rows at positions ``window`` known at ``as_of`` (ns) for ``day``'s features; None when none of the
    day's own inputs is known then (no row)."""
    known = window[(rows.ingest[window] <= as_of) & (rows.day[window] <= day.day.toordinal())]
    present = np.unique(rows.code[known[rows.event[known] == day.target_ns]])
    if len(present) == 0:
        return None
    latest = _latest(rows, known)
    row = np.minimum(np.searchsorted(day.ordinals, rows.day[latest]), len(day.axis) - 1)
    inside = day.ordinals[row] == rows.day[latest]
    return _Block(present, np.unique(rows.code[latest]), latest[inside], row[inside], day.axis)


def _grids(rows: _Rows, family: FeatureFamily, blocks: list[_Block]) -> list[np.ndarray]:
    """Each field's values of ``blocks`` (of one axis length) side by side: axis rows x each block's columns in
    turn, NaN where a ticker has no version of that day. Placed straight into a float grid (a later version of
    the same cell overwrites an earlier one, in ingest order), as ``pivot(...).reindex(axis)`` would give them:
    the pivot's multi-level columns cost more than the features themselves."""
    offsets = np.cumsum([0, *[len(b.columns) for b in blocks]])
    row = np.concatenate([b.row for b in blocks])
    col = np.concatenate(
        [o + np.searchsorted(b.columns, rows.code[b.latest]) for o, b in zip(offsets[:-1], blocks, strict=True)]
    )
    latest = np.concatenate([b.latest for b in blocks])
    grids = []
    for j in range(len(family.fields)):
        grid = np.full((len(blocks[0].axis), offsets[-1]), np.nan)
        grid[row, col] = rows.values[latest, j]
        grids.append(grid)
    return grids


def _frames(family: FeatureFamily, grids: list[np.ndarray], index: pd.Index, columns: pd.Index) -> dict:
    """The panel: field -> its grid as a wide frame (rows ``index``, columns ``columns``), not copied."""
    return {
        f: pd.DataFrame(g, index=index, columns=columns, copy=False) for f, g in zip(family.fields, grids, strict=True)
    }


def _features(family: FeatureFamily, panel: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The family's features of ``panel`` (one column each), dependencies first."""
    computed: dict[str, pd.Series] = {}
    for feature in family.ordered():
        computed[feature.name] = feature.compute({**panel, **computed})
    return pd.DataFrame(computed)[[f.name for f in family.features]]


def _at(family: FeatureFamily, rows: _Rows, block: _Block) -> pd.DataFrame:
    """The features of one block (present tickers x features): its panel is one wide frame per field, rows its
    axis's dates, columns its sorted tickers."""
    # every ticker's column (the usual window): the one Index object, which pandas aligns on without comparing
    tickers = rows.tickers if len(block.columns) == len(rows.tickers) else rows.tickers[block.columns]
    panel = _frames(family, _grids(rows, family, [block]), pd.Index(block.axis, name="day"), tickers)
    return _features(family, panel).loc[rows.tickers[block.present]].astype("float64")


def compute_at(family: FeatureFamily, rows: pd.DataFrame, day: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:
    """Features of ``day`` from the input versions known at ``as_of`` (tickers x features)."""
    converted = _rows(family, rows) if not rows.empty else None
    block = _block(converted, np.arange(len(rows)), _day(family, day), _ns1(as_of)) if converted is not None else None
    return (
        _at(family, converted, block) if block is not None else pd.DataFrame(columns=[f.name for f in family.features])
    )


def _knowledge_times(rows: _Rows, window: np.ndarray, day: _Day) -> np.ndarray:
    """When the day's feature values could change: its first arrival, then every later ingest in its window (as
    positions in ``rows``, whose stored ingest times stamp the day's rows)."""
    own = window[rows.event[window] == day.target_ns]
    if len(own) == 0:
        return own
    first = own[np.argmin(rows.ingest[own])]
    later = window[(rows.ingest[window] > rows.ingest[first]) & (rows.day[window] <= day.day.toordinal())]
    return np.concatenate([[first], later[np.unique(rows.ingest[later], return_index=True)[1]]])


RANGE_DAYS = 128  # days whose blocks are held at once
STACK_CELLS = 1 << 21  # cells of one field in one stacked call (memory: 16 MB a field)
STACK_MIN = 8  # blocks worth a stacked call and its verification


def compute_days(family: FeatureFamily, inputs: pd.DataFrame, days: list[dt.date]) -> Iterator[pd.DataFrame]:
    """``compute_day`` of each of ``days`` in turn, each from its window of ``inputs`` (``load_inputs``' rows,
    sorted by day): the inputs converted to arrays once for the range (``_Rows``), and the blocks of a family
    computed column by column stacked into few calls (``_stacked``), ``RANGE_DAYS`` days at a time (what a chunk
    holds stays bounded however long the range). One day at a time, so a caller can write, check or name each day
    as it comes."""
    if inputs.empty:
        yield from (_emitted(family, None, None, [], []) for _ in days)
        return
    rows = _rows(family, inputs)
    for first in range(0, len(days), RANGE_DAYS):
        calendar, blocks = [_day(family, day) for day in days[first : first + RANGE_DAYS]], []
        for day in calendar:
            window = np.arange(*_window(rows.day, day.axis[0], day.day))
            times = _knowledge_times(rows, window, day)
            blocks.append([(t, _block(rows, window, day, rows.ingest[t])) for t in times])
        stacked = _stacked(family, rows, [b for day in blocks for _, b in day if b is not None])
        for day, known in zip(calendar, blocks, strict=True):
            yield _bitemporal(family, rows, day, known, stacked)


def compute_day(family: FeatureFamily, rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """All bitemporal feature rows for ``day`` from its window's ``rows`` (``window_rows``): entity_key,
    event_time, ingest_time, one column per feature. The one-day case of ``compute_days``."""
    return next(compute_days(family, rows, [day]))


def _bitemporal(family: FeatureFamily, rows: _Rows, day: _Day, blocks: list, stacked: dict) -> pd.DataFrame:
    """The day's rows from its (knowledge time, block) pairs: its features at each time (``stacked``'s, or the
    block's own computation), a ticker's row emitted only when its values differ from those it last had (NaN
    equal to NaN)."""
    last = np.full((len(rows.tickers), len(family.features)), np.nan)
    seen = np.zeros(len(rows.tickers), dtype=bool)
    emitted, stamps = [], []
    for t, block in blocks:
        if block is None:
            continue
        code = block.present
        grid = stacked[block] if block in stacked else _at(family, rows, block).to_numpy()
        changed = ~seen[code] | ~nan_equal(grid, last[code]).all(axis=1)
        last[code], seen[code] = grid, True
        emitted.append((code[changed], grid[changed]))
        stamps.append(np.full(changed.sum(), t))
    return _emitted(family, rows, day, emitted, stamps)


def _stacked(family: FeatureFamily, rows: _Rows, blocks: list[_Block]) -> dict[_Block, np.ndarray]:
    """Each block's features (present tickers x features) from few calls of the family's functions, for a
    family whose features are each computed column by column (a ticker's value from its own column of the
    panel): the blocks' panels side by side as one (``_side_by_side``), in chunks of one axis length.

    A cross-sectional feature is not: the library's list ``depends_on`` (a family with one is left out), and
    ``_side_by_side`` keeps only the chunks whose result it verifies. Every other block is computed alone."""
    if any(f.depends_on for f in family.ordered()):
        return {}
    out: dict[_Block, np.ndarray] = {}
    for length in sorted({len(b.axis) for b in blocks}):
        chunk, cells = [], 0
        for block in [b for b in blocks if len(b.axis) == length] + [None]:
            if block is None or (chunk and cells + length * len(block.columns) > STACK_CELLS):
                out.update(_side_by_side(family, rows, chunk) if len(chunk) >= STACK_MIN else {})
                chunk, cells = [], 0
            if block is not None:
                chunk.append(block)
                cells += length * len(block.columns)
    return out


def _side_by_side(family: FeatureFamily, rows: _Rows, blocks: list[_Block]) -> dict[_Block, np.ndarray]:
    """The blocks' features from one panel holding theirs side by side (rows: positions on the axis, columns:
    positions), if the family computes them column by column: the result must be the same from each half of the
    blocks alone (a value depending on other columns changes with them) and, for the first and last block, the
    same as the block's own computation (which gives its panel the axis's dates and the tickers' names). A
    function that fails here is left to the blocks' own computations, which name its error with the day."""
    try:
        whole = _stack_values(family, rows, blocks)
        half = len(blocks) // 2
        halves = _stack_values(family, rows, blocks[:half]) + _stack_values(family, rows, blocks[half:])
        alone = [_at(family, rows, b).to_numpy() for b in (blocks[0], blocks[-1])]
    except Exception:
        return {}
    pairs = [*zip(whole, halves, strict=True), (whole[0], alone[0]), (whole[-1], alone[1])]
    if not all(a.shape == b.shape and nan_equal(a, b).all() for a, b in pairs):
        return {}
    return dict(zip(blocks, whole, strict=True))


def _stack_values(family: FeatureFamily, rows: _Rows, blocks: list[_Block]) -> list[np.ndarray]:
    """Each block's present tickers' features from one call on the blocks' panels side by side."""
    grids = _grids(rows, family, blocks)
    columns = pd.RangeIndex(grids[0].shape[1], name="ticker")
    out = _features(family, _frames(family, grids, pd.RangeIndex(1 - len(blocks[0].axis), 1, name="day"), columns))
    if not out.index.equals(columns):
        raise ValueError("not one value per column of the panel")
    values = out.astype("float64").to_numpy()
    offsets = np.cumsum([0, *[len(b.columns) for b in blocks]])
    return [values[o + np.searchsorted(b.columns, b.present)] for o, b in zip(offsets[:-1], blocks, strict=True)]


def _emitted(family: FeatureFamily, rows: _Rows | None, day: _Day | None, emitted: list, stamps: list) -> pd.DataFrame:
    """The emitted (ticker codes, values) of each knowledge time as one frame, ``stamps`` the positions of their
    ingest times."""
    names = [f.name for f in family.features]
    if sum(len(code) for code, _ in emitted) == 0:
        return pd.DataFrame(columns=META + names)
    values = np.concatenate([grid for _, grid in emitted])
    columns = {
        "entity_key": rows.tickers[np.concatenate([code for code, _ in emitted])],
        "event_time": day.target,
        "ingest_time": rows.ingest_times.take(np.concatenate(stamps)),
    }
    return pd.DataFrame({**columns, **{name: values[:, j] for j, name in enumerate(names)}})

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
    axis = window_axis(family, day)
    days = rows["day"].to_numpy()
    lo = np.searchsorted(days, axis[0], "left")
    hi = np.searchsorted(days, day, "right")
    return rows.iloc[lo:hi]


def load_window(root: Location, family: FeatureFamily, day: dt.date) -> pd.DataFrame:
    """Every stored version of the family's input rows in the window of ``day``."""
    return window_rows(family, load_inputs(root, family, [day]), day)


def _read(family: FeatureFamily, files: list[Location]) -> pd.DataFrame:
    cols = ["ticker", "event_time", "ingest_time", *(["day"] if family.source == "alt_data" else []), *family.fields]
    frames = [t.select(cols).to_pandas() for t in lake.read_parts(files)]
    if not frames:
        return pd.DataFrame(columns=list(dict.fromkeys([*cols, "day"])))
    rows = pd.concat(frames, ignore_index=True)
    if family.source != "alt_data":
        rows["day"] = rows["event_time"].dt.tz_convert(sessions.EXCHANGE_TZ).dt.date
    return rows.sort_values("day", kind="mergesort").reset_index(drop=True)


def _panel(visible: pd.DataFrame, family: FeatureFamily, axis: list[dt.date]) -> dict[str, pd.DataFrame]:
    """One wide frame per field (rows: ``axis``, columns: the sorted tickers) of the latest visible versions.

    What ``pivot(...).reindex(axis)`` gives, built by placing each field's values straight into a float grid: the
    pivot's multi-level columns cost more than the features themselves, and this runs for every day and
    knowledge time of a backfill, of every guard's recompute and of a research candidate's evaluation.
    """
    latest = lake.latest_versions(visible, ["ticker", "event_time"])
    if latest.empty:
        wide = latest.pivot(index="day", columns="ticker", values=list(family.fields)).reindex(axis)
        return {field: wide[field].astype("float64") for field in family.fields}
    tickers = pd.Index(latest["ticker"].unique(), name="ticker").sort_values()
    index = pd.Index(axis, name="day")
    row, col = index.get_indexer(latest["day"]), tickers.get_indexer(latest["ticker"])
    inside = row >= 0
    row, col = row[inside], col[inside]
    out = {}
    for field in family.fields:
        grid = np.full((len(index), len(tickers)), np.nan)
        grid[row, col] = latest[field].to_numpy(dtype="float64", na_value=np.nan)[inside]
        out[field] = pd.DataFrame(grid, index=index, columns=tickers, copy=False)
    return out


def compute_at(family: FeatureFamily, rows: pd.DataFrame, day: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:
    """Features of ``day`` from the input versions known at ``as_of`` (tickers x features)."""
    visible = rows[(rows["ingest_time"] <= as_of) & (rows["day"] <= day)]
    target = target_event_time(family, day)
    present = visible.loc[visible["event_time"] == target, "ticker"].unique()
    if len(present) == 0:
        return pd.DataFrame(columns=[f.name for f in family.features])
    panel = _panel(visible, family, window_axis(family, day))
    computed: dict[str, pd.Series] = {}
    for feature in family.ordered():
        computed[feature.name] = feature.compute({**panel, **computed})
    out = pd.DataFrame(computed)[[f.name for f in family.features]]
    return out.loc[sorted(present)].astype("float64")


def knowledge_times(family: FeatureFamily, rows: pd.DataFrame, day: dt.date) -> list[pd.Timestamp]:
    """When the day's feature values could change: its first arrival, then every later ingest."""
    target = target_event_time(family, day)
    own = rows.loc[rows["event_time"] == target, "ingest_time"]
    if own.empty:
        return []
    first = own.min()
    later = rows.loc[(rows["ingest_time"] > first) & (rows["day"] <= day), "ingest_time"]
    return [first, *sorted(later.unique())]


def compute_day(family: FeatureFamily, rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """All bitemporal feature rows for ``day``: entity_key, event_time, ingest_time, one column per feature."""
    target = target_event_time(family, day)
    emitted: pd.DataFrame | None = None
    out = []
    for t in knowledge_times(family, rows, day):
        values = compute_at(family, rows, day, t)
        if emitted is not None:
            common = values.index.intersection(emitted.index)
            unchanged = pd.Index(common[nan_equal(values.loc[common], emitted.loc[common]).all(axis=1)])
            emitted = pd.concat([emitted.drop(values.index.intersection(emitted.index)), values])
            values = values.drop(unchanged)
        else:
            emitted = values
        if not values.empty:
            out.append(values.rename_axis("entity_key").reset_index().assign(event_time=target, ingest_time=t))
    if not out:
        return pd.DataFrame(columns=META + [f.name for f in family.features])
    frame = pd.concat(out, ignore_index=True)
    return frame[META + [f.name for f in family.features]]

"""The point-in-time feature store: resolves feature names to stored versions and answers queries.

Files and their write path are ``files.py``; which files a query reads (compacted or not) is
``compaction.read_plan`` (read as it is planned: ``read_planned``); the answer itself is the kernel in ``pit.py``.

A feature version retired from its directory (``units.py``: a newer version replaced it, and the directory
receives its other features without it) is read from the files stored with it, and answers as-of times before
its next session's values would have been known. A query at or after that time is refused with the session it
was stored through: answering it would pass the last stored value off as current (or leave it missing with no
reason given), and a model trained on the old version must not be scored that way.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from quant_assets.core.features.compaction import read_planned
from quant_assets.core.features.definitions import FeatureDef
from quant_assets.core.features.files import (
    KEY,
    FeatureStoreError,
    Retirement,
    day_files,
    day_names,
    event_column,
    family_dirs,
    ingest_column,
    months_between,
    partition_day,
    read_manifest,
    retirements,
    within,
)
from quant_assets.core.features.pit import point_in_time
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location

# a directory holding a requested version, with the version's retirement from it (None: it still receives it)
Source = tuple[Location, Retirement | None]


class FeatureStore:
    """Point-in-time reads over every stored feature version."""

    def __init__(self, root: Location, definitions: Mapping[str, FeatureDef], read_cache: Path | None = None):
        """``read_cache``: a local directory for copies of an object store's files (``storage.cache``)."""
        self.root = fs.location(root)
        self.definitions = dict(definitions)
        self.read_cache = read_cache

    # -- resolution -------------------------------------------------------------------------
    def _manifests(self) -> list[tuple[Location, dict]]:
        return [(d, read_manifest(d)) for d in family_dirs(self.root)]

    def resolve(self, feature: str) -> tuple[str, str]:
        """``name`` (the current definition's version) or ``name@version`` -> (name, version)."""
        if "@" in feature:
            name, version = feature.split("@", 1)
            return name, version
        if feature not in self.definitions:
            raise FeatureStoreError(f"unknown feature {feature!r}")
        return feature, self.definitions[feature].version

    def versions(self, name: str) -> list[str]:
        """Every stored version of a feature, retired ones included."""
        return sorted({m["features"][name] for _, m in self._manifests() if name in m["features"]})

    def _groups(self, features: Iterable[str]) -> dict[tuple[Source, ...], list[tuple[str, str]]]:
        """Requested features grouped by the directories that hold them, each with the files to read there (a
        retired version: those stored with it)."""
        manifests = self._manifests()
        retired: dict[Location, dict[str, Retirement]] = {}  # read for the directories holding a requested version
        groups: dict[tuple[Source, ...], list[tuple[str, str]]] = defaultdict(list)
        for requested in features:
            name, version = self.resolve(requested)
            holding = [d for d, m in manifests if m["features"].get(name) == version]
            if not holding:
                raise FeatureStoreError(f"no stored values for {name}@{version}")
            for d in holding:
                retired[d] = retired[d] if d in retired else retirements(d)
            groups[tuple((d, retired[d].get(f"{name}@{version}")) for d in holding)].append((name, requested))
        return groups

    def directories(self, features: Iterable[str]) -> list[Location]:
        """The family version directories holding ``features`` (what a snapshot of them read)."""
        return list(dict.fromkeys(d for sources in self._groups(features) for d, _ in sources))

    def families(self, features: Iterable[str]) -> dict[str, str]:
        """The family name of each requested feature (as stored: ``name`` or ``name@version``)."""
        return {
            requested: sources[0][0].parent.name
            for sources, wanted in self._groups(features).items()
            for _, requested in wanted
        }

    def newest_partitions(self, features: Iterable[str], before: dt.date) -> dict[str, dt.date | None]:
        """Per family of ``features``, its newest stored partition day before ``before`` (None: none)."""
        out: dict[str, dt.date | None] = {}
        for sources in self._groups(features):
            stored = {partition_day(n) for d, r in sources for n in day_names(d) if r is None or n in r.covers}
            newest = max((day for day in stored if day < before.isoformat()), default=None)
            out[sources[0][0].parent.name] = dt.date.fromisoformat(newest) if newest else None
        return out

    def read_inputs(self, features: Iterable[str], windows: Sequence[tuple[dt.date, dt.date]]) -> list[list[str]]:
        """For each (since, until) window, lines naming what ``get_point_in_time`` of ``features`` over it answers
        from, and what ``newest_partitions(features, until)`` says: the original day files of the window in each
        directory holding them (relative to the root; a retired version's: those stored with it, and when its
        answers end), and per group of directories its newest partition before ``until``. Files are
        content-addressed, and a compacted file holds exactly the rows of the originals it covers (``compaction``),
        so equal lines mean an equal answer, however the window is compacted. Each directory is listed once per
        calendar month the windows span (and whole only if a window holds none of its partitions before ``until``:
        the newest is older than the window)."""
        listing = _Listing(sorted({m for since, until in windows for m in months_between(since, until)}))
        out: list[list[str]] = [[] for _ in windows]
        for sources in self._groups(features):
            held = [(fs.relative(d, self.root), r, listing.names(d, r)) for d, r in sources]
            where = ",".join(rel if r is None else f"{rel} (answers until {r.valid_until})" for rel, r, _ in held)
            for lines, (since, until) in zip(out, windows, strict=True):
                lines += [f"{rel}/{n}" for rel, _, names in held for n in within(names, since, until)]
                newest = _newest([names for _, _, names in held], since, until)
                if newest is None:  # none in the window: an older partition, from the whole listing
                    newest = _newest([listing.names(d, r, whole=True) for d, r in sources], None, until)
                lines.append(f"newest in {where}: {newest}")
        return [list(dict.fromkeys(lines)) for lines in out]

    # -- queries ----------------------------------------------------------------------------
    def get_point_in_time(
        self,
        entity_times: pd.DataFrame,
        features: list[str],
        since: dt.date | None = None,
        until: dt.date | None = None,
        ingest_times: bool = False,
    ) -> pd.DataFrame:
        """For each (entity_key, as_of) row, the features as known at as_of: a wide frame in input order.

        A ``known_at`` column in ``entity_times`` separates the two cut-offs: the events up to as_of, as known at
        known_at (a later time: what was learnt since about them, restatements included; ``pit.py``). Each family's
        answering event time is in ``event_time_<family>``, and with ``ingest_times`` its ingest time in
        ``ingest_time_<family>`` (``files.ingest_column``).

        ``since`` reads only partitions from that day on: a daily scorer that needs recent values passes it,
        so its cost does not grow with the history (older rows, restated or not, cannot be the answer
        once a newer event exists). ``until`` skips partitions after that day, which hold only events
        after every query's as-of when no as-of falls after that day's end (a backfill of old days then does
        not read the newer history). A retired version is refused at or after the as-of time it stops answering
        (the module docstring).
        """
        q_time = _epoch_us(entity_times["as_of"])
        q_keys = pa.array(entity_times["entity_key"].astype(str))  # missing keys stay null: they match nothing
        q_known = _epoch_us(entity_times["known_at"]) if "known_at" in entity_times else None
        asked = ["entity_key", "as_of", *(["known_at"] if q_known is not None else [])]
        pieces: list[pd.DataFrame | str] = [entity_times[asked].reset_index(drop=True)]
        event_columns: dict[str, pd.Series] = {}
        for sources, wanted in self._groups(features).items():
            requested = list(dict.fromkeys(r for _, r in wanted))
            _refuse_retired(sources, requested, q_time)
            name_of = dict((r, n) for n, r in wanted)
            values, event_time, ingest_time = point_in_time(
                lambda read, sources=sources: [
                    b
                    for d, r in sources
                    for b in read_planned(d, since, until, read, self.read_cache, None if r is None else r.covers)
                ],
                [name_of[r] for r in requested],
                q_keys,
                q_time,
                q_known,
            )
            pieces.append(pd.DataFrame(values, columns=requested, copy=False))
            family = sources[0][0].parent.name
            times = {event_column(family): event_time, **({ingest_column(family): ingest_time} if ingest_times else {})}
            for column, answered in times.items():
                if column not in event_columns:
                    pieces.append(column)
                event_columns[column] = pd.Series(answered, name=column).dt.tz_localize("UTC")
        return pd.concat([event_columns[p].to_frame() if isinstance(p, str) else p for p in pieces], axis=1)

    def get_latest(
        self,
        entity_keys: Iterable[str],
        features: list[str],
        as_of,
        since: dt.date | None = None,
        until: dt.date | None = None,
        known_at=None,
        ingest_times: bool = False,
    ) -> pd.DataFrame:
        """``get_point_in_time`` of ``entity_keys`` at one as-of (and, given, one knowledge cut-off ``known_at``)."""
        keys = list(entity_keys)
        frame = pd.DataFrame({"entity_key": keys, "as_of": [pd.Timestamp(as_of)] * len(keys)})
        if known_at is not None:
            frame["known_at"] = [pd.Timestamp(known_at)] * len(keys)
        return self.get_point_in_time(frame, features, since, until, ingest_times)

    def feature_events(self, family: str | None = None) -> pd.DataFrame:
        """The logical long ``feature_events`` view (for audits and tests; wide is for speed)."""
        frames = []
        for d, m in self._manifests():
            if family and m["family"] != family:
                continue
            # files written after a retirement lack the retired version's column: each set of columns on its own
            by_columns: dict[tuple[str, ...], list[pa.Table]] = defaultdict(list)
            for table in lake.read_parts(day_files(d)):
                by_columns[tuple(table.column_names)].append(table)
            for tables in by_columns.values():
                wide = pa.concat_tables(tables, promote_options="default").to_pandas()
                long = wide.melt(id_vars=KEY + lake.PROVENANCE, var_name="feature_name", value_name="value")
                long["feature_version"] = long["feature_name"].map(m["features"])
                frames.append(long)
        if not frames:
            return pd.DataFrame(
                columns=[
                    "entity_key",
                    "feature_name",
                    "feature_version",
                    "event_time",
                    "value",
                    "ingest_time",
                    *lake.PROVENANCE,
                ]
            )
        out = pd.concat(frames, ignore_index=True)
        out = out.drop_duplicates(["entity_key", "feature_name", "feature_version", "event_time", "ingest_time"])
        return out[
            ["entity_key", "feature_name", "feature_version", "event_time", "value", "ingest_time", *lake.PROVENANCE]
        ]


def _epoch_us(times: pd.Series) -> np.ndarray:
    """Timestamps as UTC epoch microseconds, the kernel's query times (NaT -> int64 minimum: matches nothing)."""
    utc = pd.to_datetime(times, utc=True).astype("datetime64[us, UTC]")
    return utc.dt.tz_localize(None).to_numpy().view("int64")


def _refuse_retired(sources: tuple[Source, ...], requested: list[str], q_time: np.ndarray) -> None:
    """Refuse queries of a version retired from every directory holding it at or after the as-of time its next
    value would have been known (``q_time``: epoch microseconds, int64 minimum for none): it was stored through
    a session and then replaced, and its last value is not an answer for later times."""
    if any(r is None for _, r in sources):
        return
    ends = [r.valid_until for _, r in sources if r.valid_until is not None]
    limit = max(ends).value // 1000 if ends else np.iinfo(np.int64).min + 1
    late = (q_time >= limit) & (q_time != np.iinfo(np.int64).min)
    if not late.any():
        return
    through = max((r.through for _, r in sources if r.through is not None), default=None)
    stored = f"stored through session {through}" if through else "never stored"
    where = ", ".join(f"features/{d.parent.name}/{d.name}" for d, _ in sources)
    first = pd.Timestamp(int(q_time[late].min()), unit="us", tz="UTC")
    raise FeatureStoreError(
        f"{', '.join(requested)}: retired from {where} ({stored}; a newer version replaced it), so it answers as-of "
        f"times before {max(ends) if ends else 'none'} only; {int(late.sum())} of {len(q_time)} queries ask at or "
        f"after that (the first at {first}). Query those times with the current version, or this one before then."
    )


class _Listing:
    """The day files of family version directories (names relative to each), each listed once: the partitions
    of ``months`` (``YYYY-MM``), or, asked for the whole directory, all of them."""

    def __init__(self, months: list[str]):
        self.months = months
        self._found: dict[tuple[Location, bool], list[str]] = {}

    def names(self, base: Location, retired: Retirement | None, whole: bool = False) -> list[str]:
        """The listed files of ``base`` a read may use: a retired version's, those stored with it."""
        if (base, whole) not in self._found:
            self._found[(base, whole)] = day_names(base, None if whole else self.months)
        found = self._found[(base, whole)]
        return found if retired is None else [n for n in found if n in retired.covers]


def _newest(listings: Iterable[list[str]], since: dt.date | None, before: dt.date) -> str | None:
    """The newest partition day (ISO) of ``listings`` (each sorted, ``day_names``) from ``since`` (None: any) and
    before ``before``."""
    last = before - dt.timedelta(days=1)
    return max((partition_day(found[-1]) for names in listings if (found := within(names, since, last))), default=None)

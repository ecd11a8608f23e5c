"""How a family's features are stored: in units, each a family version directory, and which days of a unit
are done.

A stored directory is named by the feature versions it was created with (``fv=<hash of those versions>``, listed
by its manifest). Each directory keeps receiving those of its features that are still current (their versions
and files unchanged), and the features no directory receives form a unit of their own: when the library gains a
feature, or one feature gets a new version, a backfill computes and stores that feature alone, and a query that
mixes old and new features reads both directories (the store resolves each feature version to the directories
holding it). A new library gives one unit, the whole family, as before.

A version that is no longer current is *retired* from its directory: before the directory receives its first
file without that column, a record (``files.write_retirement``) names the files stored with it. Its values stay
queryable as ``name@version`` from those files, for as-of times before its next value would have been known;
the store refuses a query after that (``FeatureStore``) rather than answer with stale or missing values. A
retirement is for good: should the feature return to that version, it is stored anew, as a unit of its own
(unless the directory stopped receiving anything, when it simply resumes: ``files.retirements``).

A (unit, day) is done when its marker ``date=D/_inputs-<fingerprint>`` exists: the fingerprint hashes the names
of the raw parts in D's window, and parts are content-addressed, so the names are their content. A rerun skips
a done day without reading any input. A restated or late bar adds a part to a partition of the window and
changes the fingerprint, so the days that read it are computed again; a marker lost costs a recomputation that
writes nothing new. A directory's markers hash the window it was created with: after a retirement its features
may need a shorter one, so the unit keeps the directory's window (recovered once from its newest marker and kept
in the retirement record), and its stored days stay done.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import pyarrow.compute as pc

from quant_assets.core.features import compute
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.features.files import (
    family_dir,
    family_dirs,
    partition_day,
    read_manifest,
    retirements,
    write_retirement,
)
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location
from quant_assets.core.storage.hashing import lines_hash

MARK = "_inputs-"


@dataclass(frozen=True)
class Unit:
    """What one directory receives: the features computed into it, and the window its markers hash."""

    family: FeatureFamily  # the features it computes: the directory's still-current ones
    directory: Location
    window: int  # the lookback of its markers: the directory's as it was created (at least the family's)

    @property
    def name(self) -> str:
        return self.directory.name


def units(root: Location, family: FeatureFamily) -> list[Unit]:
    """The family's current features split into storage units: each stored directory receives its features still
    current and not retired from it (largest first, none sharing a feature), then one unit of the features none
    of them receives."""
    current = {f.name: f.version for f in family.features}
    stored = []
    for d in family_dirs(root, family.name):
        held, retired = read_manifest(d)["features"], retirements(d)
        live = sorted(n for n, v in held.items() if current.get(n) == v and f"{n}@{v}" not in retired)
        stored += [(d, held, retired, live)] if live else []
    out: list[Unit] = []
    taken: set[str] = set()
    for d, held, retired, live in sorted(stored, key=lambda s: (-len(s[3]), s[3])):
        if not taken & set(live):
            out.append(_stored_unit(root, family.only(live), d, held, retired))
            taken |= set(live)
    rest = family.only(n for n in current if n not in taken)
    return out + ([Unit(rest, family_dir(root, rest), rest.lookback)] if rest.features else [])


def _stored_unit(root: Location, unit: FeatureFamily, base: Location, held: dict, retired: dict) -> Unit:
    """A stored directory's unit, with the window its markers hash: kept by its retirement records, else recovered
    while it still holds every version it was created with (it receives them all: its own window)."""
    kept = [r.window for r in retired.values() if r.window is not None]
    if kept:
        return Unit(unit, base, max(kept))
    whole = len(held) == len(unit.features)
    return Unit(unit, base, unit.lookback if whole else _stored_window(root, unit, base))


def retire(root: Location, family: FeatureFamily, parts: list[Unit]) -> None:
    """Record in each stored directory of ``family`` the versions it no longer receives, before it receives a file
    without them: those its unit does not compute, or all it holds when it is no unit's (every one replaced)."""
    receiving = {u.directory: u for u in parts}
    for d in family_dirs(root, family.name):
        unit = receiving.get(d)
        live = {f.name for f in unit.family.features} if unit else set()
        retired = retirements(d)
        gone = {n: v for n, v in read_manifest(d)["features"].items() if n not in live and f"{n}@{v}" not in retired}
        if gone:
            write_retirement(d, family, gone, unit.window if unit else None)


def _stored_window(root: Location, unit: FeatureFamily, base: Location) -> int:
    """The lookback ``base``'s markers hash, at least ``unit``'s: the directory was created with features whose
    longest lookback may have been a retiring version's, whose definition is gone. Found from the newest marked
    day, as the shortest window whose raw parts hash to one of its markers (one listing of the raw dataset, once
    per directory: the retirement record keeps it). None matching (its inputs changed since, or no marker): the
    unit's own, and its stored days are computed once more, writing nothing new."""
    marks = fs.names(base, f"date=*/{MARK}*")
    if not marks:
        return unit.lookback
    day = dt.date.fromisoformat(max(partition_day(m) for m in marks))
    seen = {m.rsplit(MARK, 1)[1] for m in marks if partition_day(m) == day.isoformat()}
    names: dict[dt.date, list[str]] = defaultdict(list)
    for name in fs.names(lake.under(root, unit.source), f"date=*/{lake.PART_PREFIX}*.parquet"):
        names[dt.date.fromisoformat(partition_day(name))].append(name.rsplit("/", 1)[1])
    first, lookback = min(names, default=day), unit.lookback
    while True:
        partitions = compute.window_partitions(unit, day, lookback)
        if _fingerprint(day, partitions, names) in seen:
            return lookback
        if partitions[0] <= first:
            return unit.lookback
        lookback += 1


@dataclass
class Plan:
    """Each unit's days still to compute, with the fingerprint each day's marker will carry."""

    inputs: dict[dt.date, list[Location]]  # the raw parts the windows read (``compute.input_parts``), listed once
    pending: dict[str, list[dt.date]] = field(default_factory=dict)  # unit (directory name) -> days
    fingerprints: dict[tuple[str, dt.date], str] = field(default_factory=dict)
    done: int = 0  # (unit, day) pairs skipped: their inputs have not changed since they were computed


def plan(root: Location, family: FeatureFamily, parts: list[Unit], days: list[dt.date]) -> Plan:
    """Which (unit, day) pairs of ``days`` need computing: one listing of the windows' raw partitions (kept for the
    read) and one of each unit's markers per month, whatever the length of the stored history."""
    out = Plan(compute.input_parts(root, family, days, max([family.lookback, *(u.window for u in parts)])))
    names = {p: [f.name for f in found] for p, found in out.inputs.items()}
    for unit in parts:
        marks = _marks(unit.directory, days)
        todo = out.pending.setdefault(unit.name, [])
        for day in days:
            fingerprint = _fingerprint(day, compute.window_partitions(unit.family, day, unit.window), names)
            out.fingerprints[(unit.name, day)] = fingerprint
            if f"date={day.isoformat()}/{MARK}{fingerprint}" in marks:
                out.done += 1
            else:
                todo.append(day)
    return out


def mark(unit: Unit, day: dt.date, fingerprint: str) -> None:
    """Record that ``unit``'s rows of ``day`` are stored for the inputs ``fingerprint`` names."""
    fs.put_once(unit.directory / f"date={day.isoformat()}" / f"{MARK}{fingerprint}", b"")


def _fingerprint(day: dt.date, partitions: list[dt.date], names: Mapping[dt.date, list[str]]) -> str:
    """The hash of the raw part names in a window of ``day`` (its ``partitions``)."""
    return lines_hash([day.isoformat(), *(f"{p.isoformat()}/{n}" for p in partitions for n in names.get(p, []))])


def _marks(base: Location, days: list[dt.date]) -> set[str]:
    """The markers under ``base`` for the months of ``days``."""
    months = sorted({d.isoformat()[:7] for d in days})
    return {n for month in months for n in fs.names(base, f"date={month}*/{MARK}*")}


@dataclass(frozen=True)
class Marked:
    """What one marker of a (unit, day) names: the raw parts its window held when the day was computed (relative
    to the root), and the latest ingest time among them (a feature row stamped at or before it was computable)."""

    marker: str
    through: pd.Timestamp
    parts: list[str]


def unit_of(root: Location, family: FeatureFamily, base: Location) -> Unit:
    """The unit a stored directory of ``family`` is (its markers' window); one no longer receiving anything: the
    family's own window."""
    return next((u for u in units(root, family) if u.directory == base), Unit(family, base, family.lookback))


def marked_inputs(root: Location, unit: Unit, day: dt.date) -> list[Marked]:
    """The raw parts each marker of ``unit``'s partition ``day`` names, in the order the day was computed.

    A marker hashes part names (``_fingerprint``), and parts only ever arrive, so each marker's set is the window's
    parts delivered up to some time: the prefixes of the parts ordered by their latest ingest time (read, one small
    column each) are hashed in turn against the partition's markers. A marker no prefix gives (a window other than
    ``unit``'s) is left out."""
    partitions = compute.window_partitions(unit.family, day, unit.window)
    source = unit.family.source
    found = {p: lake.partition_files(lake.partition_dir(root, source, p)) for p in partitions}
    files = [f for listed in found.values() for f in listed]
    stamps = lake.read_parts(files, ["ingest_time"])
    delivered = sorted(
        (pd.Timestamp(pc.max(t.column(0)).as_py()), f.parent.name, f.name) for f, t in zip(files, stamps, strict=True)
    )
    marks = {m.rsplit("/", 1)[1] for m in fs.names(unit.directory, f"date={day.isoformat()}/{MARK}*")}
    out, names = [], defaultdict(list)
    for through, partition, name in delivered:
        names[dt.date.fromisoformat(partition.removeprefix("date="))].append(name)
        marker = MARK + _fingerprint(day, partitions, {p: sorted(n) for p, n in names.items()})
        if marker in marks and (not out or out[-1].marker != marker):
            parts = [f"{source}/date={p.isoformat()}/{n}" for p in sorted(names) for n in sorted(names[p])]
            out.append(Marked(marker, through, parts))
    return out

"""How a family's features are stored: in units, each a family version directory, and which days of a unit
are done.

A stored directory holds the feature versions it was written with (``fv=<hash of those versions>``). When the
library gains a feature, every directory whose features are all still current keeps receiving them (their
versions and files unchanged), and the features no such directory holds form a unit of their own: a backfill
computes and stores the new feature alone, and a query that mixes old and new features reads both directories
(the store resolves each feature version to the directories holding it). A new library gives one unit, the
whole family, as before.

A (unit, day) is done when its marker ``date=D/_inputs-<fingerprint>`` exists: the fingerprint hashes the names
of the raw parts in D's window, and parts are content-addressed, so the names are their content. A rerun skips
a done day without reading any input. A restated or late bar adds a part to a partition of the window and
changes the fingerprint, so the days that read it are computed again; a marker lost costs a recomputation that
writes nothing new.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from quant_assets.core.features import compute
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.features.files import family_dir, family_dirs, read_manifest
from quant_assets.core.storage import fs
from quant_assets.core.storage.fs import Location

MARK = "_inputs-"


def units(root: Location, family: FeatureFamily) -> list[FeatureFamily]:
    """The family's current features split into storage units: the stored directories holding only current
    feature versions (largest first, none sharing a feature), then one unit of the features none of them holds."""
    current = {f.name: f.version for f in family.features}
    stored = [read_manifest(d)["features"] for d in family_dirs(root, family.name)]
    reusable = [m for m in stored if m and all(current.get(name) == v for name, v in m.items())]
    out: list[FeatureFamily] = []
    taken: set[str] = set()
    for held in sorted(reusable, key=lambda m: (-len(m), sorted(m))):
        if not taken & set(held):
            out.append(family.only(held))
            taken |= set(held)
    rest = [name for name in current if name not in taken]
    return out + ([family.only(rest)] if rest else [])


@dataclass
class Plan:
    """Each unit's days still to compute, with the fingerprint each day's marker will carry."""

    inputs: dict[dt.date, list[Location]]  # the raw parts the windows read (``compute.input_parts``), listed once
    pending: dict[str, list[dt.date]] = field(default_factory=dict)  # unit version -> days
    fingerprints: dict[tuple[str, dt.date], str] = field(default_factory=dict)
    done: int = 0  # (unit, day) pairs skipped: their inputs have not changed since they were computed


def plan(root: Location, family: FeatureFamily, parts: list[FeatureFamily], days: list[dt.date]) -> Plan:
    """Which (unit, day) pairs of ``days`` need computing: one listing of the windows' raw partitions (kept for the
    read) and one of each unit's markers per month, whatever the length of the stored history."""
    out = Plan(compute.input_parts(root, family, days))
    for unit in parts:
        marks = _marks(family_dir(root, unit), days)
        todo = out.pending.setdefault(unit.version, [])
        for day in days:
            fingerprint = _fingerprint(unit, day, out.inputs)
            out.fingerprints[(unit.version, day)] = fingerprint
            if f"date={day.isoformat()}/{MARK}{fingerprint}" in marks:
                out.done += 1
            else:
                todo.append(day)
    return out


def mark(root: Location, unit: FeatureFamily, day: dt.date, fingerprint: str) -> None:
    """Record that ``unit``'s rows of ``day`` are stored for the inputs ``fingerprint`` names."""
    fs.put_once(family_dir(root, unit) / f"date={day.isoformat()}" / f"{MARK}{fingerprint}", b"")


def _fingerprint(unit: FeatureFamily, day: dt.date, inputs: dict[dt.date, list[Location]]) -> str:
    """The hash of the raw part names in ``unit``'s window of ``day`` (its own lookback's partitions)."""
    names = [f"{p.isoformat()}/{f.name}" for p in compute.window_partitions(unit, day) for f in inputs.get(p, [])]
    return hashlib.sha256("\n".join([day.isoformat(), *names]).encode()).hexdigest()[:32]


def _marks(base: Location, days: list[dt.date]) -> set[str]:
    """The markers under ``base`` for the months of ``days``."""
    months = sorted({d.isoformat()[:7] for d in days})
    return {n for month in months for n in fs.names(base, f"date={month}*/{MARK}*")}

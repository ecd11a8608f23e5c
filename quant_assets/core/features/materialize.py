"""Compute, store and check one feature family for a range of sessions: what the feature assets and the
core backfill both run.

Each day's rows are computed from the family's inputs (read once for the range), written to the store,
and checked: a sample recomputed from inputs cut at each row's time (no lookahead), ingest times not
before their inputs, the day's own rows present (freshness), and the files this run wrote plus a random
sample of the family's stored files verified against their names (``files_intact``).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from quant_assets.core.features import checks, compute, files, integrity, units
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.storage import verify
from quant_assets.core.storage.fs import Location


@dataclass(frozen=True)
class StoredDay:
    """One (unit, day) computed and marked: its directory ("price/fv=<unit>"), the feature versions it computed
    into it, and the raw partitions of its window that held parts."""

    directory: str
    day: dt.date
    features: dict[str, str]
    source: str
    partitions: list[dt.date]


@dataclass
class FamilyRun:
    """What one run of a family produced and what its checks found."""

    computed: list[tuple[units.Unit, pd.DataFrame]] = field(default_factory=list)  # each unit computed, its rows
    days: int = 0
    skipped: int = 0  # (unit, day) pairs whose inputs had not changed since they were stored
    written: int = 0
    recomputed: int = 0
    lookahead: list[str] = field(default_factory=list)
    early: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    files: verify.Report = field(default_factory=verify.Report)
    stored: list[StoredDay] = field(default_factory=list)  # each (unit, day) computed: what lineage records

    @property
    def emitted(self) -> pd.DataFrame:
        """Every unit's computed rows, one frame (a unit's rows leave the other units' features missing)."""
        frames = [f for _, f in self.computed if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=compute.META)

    def null_rates(self) -> pd.Series:
        """Each computed feature's share of missing values, over its own unit's rows."""
        rates = [checks.null_rates(unit.family, frame) for unit, frame in self.computed]
        return pd.concat(rates) if rates else pd.Series(dtype=float)


def materialize(
    root: Location,
    family: FeatureFamily,
    days: list[dt.date],
    provenance: Mapping[str, str],
    lookahead_sample: int = 25,
    verify_sample: int = 20,
) -> FamilyRun:
    """Compute, write and check ``family``'s units for those of ``days`` whose inputs changed since they were
    stored (``units``; see the module docstring). The versions a stored directory no longer receives are
    recorded as retired from it first (``units.retire``), whether or not anything is computed."""
    parts = units.units(root, family)
    units.retire(root, family, parts)
    todo = units.plan(root, family, parts, days)
    run = FamilyRun(days=len(days), skipped=todo.done)
    for unit in parts:
        pending = todo.pending[unit.name]
        if pending:
            written = _unit(root, unit, pending, provenance, lookahead_sample, run, todo)
            run.files.merge(_verify_files(unit.directory, written, verify_sample, pending[0].toordinal()))
    return run


def _unit(
    root, unit: units.Unit, days, provenance, lookahead_sample, run: FamilyRun, todo: units.Plan
) -> list[Location]:
    """One unit's days: computed from its inputs (read once for the range), written, checked and marked done."""
    family = unit.family
    inputs = compute.load_inputs(root, family, days, todo.inputs)
    frames, written_paths = [], []
    for day, out in zip(days, compute.compute_days(family, inputs, days), strict=True):
        rows = compute.window_rows(family, inputs, day)
        result = files.write_day(root, family, day, out, provenance, unit.directory)
        run.written += result.rows_written
        written_paths += [result.path] if result.path is not None else []
        guard = checks.recompute_truncated(family, rows, day, out, lookahead_sample, seed=day.toordinal())
        run.recomputed += guard.checked
        run.lookahead += guard.failures
        run.early += checks.ingest_not_before_inputs(family, rows, out).failures
        run.stale += checks.freshness(family, day, out["event_time"].max() if not out.empty else None).failures
        units.mark(unit, day, todo.fingerprints[(unit.name, day)])
        run.stored.append(_stored_day(unit, day, todo))
        frames.append(out)
    run.computed.append((unit, pd.concat(frames, ignore_index=True)))
    return written_paths


def _stored_day(unit: units.Unit, day: dt.date, todo: units.Plan) -> StoredDay:
    """What (``unit``, ``day``) read: the partitions of its features' window that held parts (its marker may hash a
    longer window, the directory's: ``units``; the rows come from this one, ``compute.window_rows``)."""
    family = unit.family
    read = [p for p in compute.window_partitions(family, day) if todo.inputs.get(p)]
    versions = {f.name: f.version for f in family.features}
    return StoredDay(f"{family.name}/{unit.name}", day, versions, family.source, read)


def _verify_files(base: Location, written: list[Location], sample: int, seed: int) -> verify.Report:
    """The files just written plus a random ``sample`` of the family version's other stored files."""
    fresh = set(written)
    stored = [(kind, p) for kind, p in integrity.family_files(base) if p not in fresh]
    picked = random.Random(seed).sample(stored, min(sample, len(stored)))
    return verify.verify([("part", p) for p in written] + picked, integrity.check, integrity.ERRORS)

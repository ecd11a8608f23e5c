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

from quant_assets.core.features import checks, compute, files, integrity
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.storage import verify
from quant_assets.core.storage.fs import Location


@dataclass
class FamilyRun:
    """What one run of a family produced and what its checks found."""

    emitted: pd.DataFrame
    days: int = 0
    written: int = 0
    recomputed: int = 0
    lookahead: list[str] = field(default_factory=list)
    early: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    files: verify.Report = field(default_factory=verify.Report)


def materialize(
    root: Location,
    family: FeatureFamily,
    days: list[dt.date],
    provenance: Mapping[str, str],
    lookahead_sample: int = 25,
    verify_sample: int = 20,
) -> FamilyRun:
    """Compute, write and check ``family`` for ``days`` (see the module docstring)."""
    inputs = compute.load_inputs(root, family, days)
    frames, written_paths, run = [], [], FamilyRun(pd.DataFrame(), days=len(days))
    for day in days:
        rows = compute.window_rows(family, inputs, day)
        out = compute.compute_day(family, rows, day)
        result = files.write_day(root, family, day, out, provenance)
        run.written += result.rows_written
        written_paths += [result.path] if result.path is not None else []
        guard = checks.recompute_truncated(family, rows, day, out, lookahead_sample, seed=day.toordinal())
        run.recomputed += guard.checked
        run.lookahead += guard.failures
        run.early += checks.ingest_not_before_inputs(family, rows, out).failures
        run.stale += checks.freshness(family, day, out["event_time"].max() if not out.empty else None).failures
        frames.append(out)
    run.emitted = pd.concat(frames, ignore_index=True)
    run.files = _verify_files(files.family_dir(root, family), written_paths, verify_sample, days[0].toordinal())
    return run


def _verify_files(base: Location, written: list[Location], sample: int, seed: int) -> verify.Report:
    """The files just written plus a random ``sample`` of the family version's other stored files."""
    fresh = set(written)
    stored = [(kind, p) for kind, p in integrity.family_files(base) if p not in fresh]
    picked = random.Random(seed).sample(stored, min(sample, len(stored)))
    return verify.verify([("part", p) for p in written] + picked, integrity.check, integrity.ERRORS)

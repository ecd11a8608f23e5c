"""Lookahead guards for freshly computed feature rows (pure; the Dagster checks report them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quant_assets.core.features.compute import compute_at, target_event_time
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.storage.equality import nan_equal


@dataclass
class GuardResult:
    passed: bool
    checked: int
    failures: list[str] = field(default_factory=list)


def recompute_truncated(
    family: FeatureFamily, rows: pd.DataFrame, day: dt.date, emitted: pd.DataFrame, sample: int, seed: int
) -> GuardResult:
    """Recompute a sample of rows from inputs physically cut at the row's (event, ingest) time."""
    if emitted.empty:
        return GuardResult(True, 0)
    picked = emitted.sample(n=min(sample, len(emitted)), random_state=seed)
    names = [f.name for f in family.features]
    failures = []
    for ingest, group in picked.groupby("ingest_time"):
        cut = rows[(rows["ingest_time"] <= ingest) & (rows["event_time"] <= group["event_time"].iloc[0])]
        again = compute_at(family, cut, day, ingest)
        keys = group["entity_key"].to_numpy()
        known = np.isin(keys, again.index)
        # one aligned comparison per ingest time, not a lookup per row (the guard runs on every day of a backfill)
        b = again.reindex(keys)[names].to_numpy(dtype=float)
        bad = ~nan_equal(group[names].to_numpy(dtype=float), b)
        for key, computable, row_bad in zip(keys, known, bad, strict=True):
            if not computable:
                failures.append(f"{key}@{ingest}: not computable from inputs known then")
            elif row_bad.any():
                failures.append(f"{key}@{ingest}: {', '.join(np.array(names)[row_bad][:5])} differ")
    return GuardResult(not failures, len(picked), failures)


def ingest_not_before_inputs(family: FeatureFamily, rows: pd.DataFrame, emitted: pd.DataFrame) -> GuardResult:
    """Every row's ingest_time is at or after event_time + lag and after its entity's own input arrived."""
    if emitted.empty:
        return GuardResult(True, 0)
    first_known = rows.groupby(["ticker", "event_time"])["ingest_time"].min().rename("input_known")
    joined = emitted.join(first_known, on=["entity_key", "event_time"])
    early_lag = emitted["ingest_time"] < emitted["event_time"] + family.lag
    early_input = joined["input_known"].isna() | (joined["ingest_time"] < joined["input_known"])
    bad = emitted[early_lag | early_input]
    failures = [f"{r.entity_key} {r.event_time} ingested {r.ingest_time}" for r in bad.head(20).itertuples()]
    return GuardResult(bad.empty, len(emitted), failures)


def freshness(family: FeatureFamily, day: dt.date, latest_event: pd.Timestamp | None) -> GuardResult:
    """The day's rows exist: the latest stored event_time is the day's own target time."""
    target = target_event_time(family, day)
    ok = latest_event is not None and latest_event >= target
    return GuardResult(ok, 1, [] if ok else [f"{day}: latest event {latest_event}, expected {target}"])


def null_rates(family: FeatureFamily, emitted: pd.DataFrame) -> pd.Series:
    names = [f.name for f in family.features]
    return emitted[names].isna().mean() if not emitted.empty else pd.Series(0.0, index=names)

"""The one staleness rule: which stored feature values a consumer may use at a session's decision time.

At the decision time of session t (09:00 ET, before the open) the newest value a family can have is the
previous session's (its target event time is that of t-1). A family's value is *usable* at t when its
event time is no older than the target of session t-1-k, k being the family's ``max_stale_sessions``
(prices: 0, yesterday's bar or nothing; alternative data: 4, so a name without tweets for a few days keeps
its last values and a week-long outage makes them missing). A row (entity, t) exists for a consumer only
when every *required* family (prices) is usable; an optional family's values that are not usable become
NaN, which the model handles as missing.

Training snapshots, daily scoring and drift monitoring all read features through ``apply``, so a model is
trained on exactly the inputs production gives it, and a value is the same however far back a reader's
window starts: a reader needs partitions from ``earliest_partition`` on, no more.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features.compute import target_event_time
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.features.files import event_column
from quant_assets.core.features.library import FAMILIES


def oldest_usable(family: FeatureFamily, day: dt.date) -> pd.Timestamp:
    """The oldest event time of ``family`` still usable at ``day``'s decision time."""
    return target_event_time(family, sessions.session_offset(day, -(1 + family.max_stale_sessions)))


def earliest_partition(day: dt.date, families: Mapping[str, FeatureFamily] = FAMILIES) -> dt.date:
    """The oldest feature partition that can hold a usable value at ``day``'s decision time."""
    return sessions.session_offset(day, -(1 + max(f.max_stale_sessions for f in families.values())))


def apply(
    pit: pd.DataFrame,
    days: Sequence[dt.date],
    feature_family: Mapping[str, str],
    families: Mapping[str, FeatureFamily] = FAMILIES,
) -> tuple[pd.DataFrame, np.ndarray]:
    """``pit`` (one row per entity and decision day ``days[i]``) with unusable optional values set to NaN
    (in place), and the mask of rows whose required families are usable.

    ``feature_family`` maps each feature column of ``pit`` to its family's name.
    """
    keep = np.ones(len(pit), dtype=bool)
    code, distinct = pd.factorize(pd.Index(days, dtype=object))  # a few hundred days, each asked of the calendar once
    for name in sorted(set(feature_family.values())):
        family = families[name]
        cutoffs = _utc(pd.DatetimeIndex([oldest_usable(family, d) for d in distinct], tz="UTC"))[code]
        usable = _utc(pit[event_column(name)]) >= cutoffs  # NaT is never usable
        if family.required:
            keep &= usable
        else:
            columns = [c for c, f in feature_family.items() if f == name]
            pit.loc[~usable, columns] = np.nan
    return pit, keep


def _utc(values) -> np.ndarray:
    """Timezone-aware timestamps as naive UTC datetime64[us] (NaT stays NaT, and compares False)."""
    return pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy()


@dataclass(frozen=True)
class Gap:
    """An optional family's coverage on one day: the share of scored names without a usable value, and
    how many sessions old the newest value of any name is (None: nothing ever known)."""

    family: str
    missing_share: float
    newest_age: int | None
    limit: int

    @property
    def outage(self) -> bool:
        return self.newest_age is None or self.newest_age > self.limit

    def describe(self, day: dt.date) -> str:
        age = "never known" if self.newest_age is None else f"newest value {self.newest_age} session(s) old"
        return (
            f"{day}: {self.family} features missing for {self.missing_share:.0%} of names ({age}; "
            f"usable up to {self.limit})"
        )


def gaps(
    pit: pd.DataFrame,
    day: dt.date,
    feature_family: Mapping[str, str],
    newest: Mapping[str, dt.date | None],
    families: Mapping[str, FeatureFamily] = FAMILIES,
) -> list[Gap]:
    """The coverage of each optional family among the rows scored on ``day`` (after ``apply``); ``newest``
    holds each family's newest stored partition before ``day`` (``FeatureStore.newest_partitions``)."""
    out = []
    for name in sorted(set(feature_family.values())):
        family = families[name]
        if family.required:
            continue
        columns = [c for c, f in feature_family.items() if f == name]
        missing = float(pit[columns].isna().all(axis=1).mean()) if len(pit) else 1.0
        last = newest.get(name)
        age = (
            None
            if last is None
            else sessions.session_index(sessions.previous_session(day)) - sessions.session_index(last)
        )
        out.append(Gap(name, missing, age, family.max_stale_sessions))
    return out

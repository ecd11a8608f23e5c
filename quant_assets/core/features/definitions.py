"""Feature definitions as data: name, version, inputs, lookback, lag, owner, function.

A feature's version is a hash of its function's source, its parameters, its
inputs, lookback and lag, and the versions of the features it is built from,
so editing a feature (or anything it depends on) gives it a new version while
values stored under the old version stay queryable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd


@dataclass(frozen=True)
class FeatureDef:
    """One feature. ``fn(panel, **params)`` returns a Series over tickers for the panel's last day.

    ``panel`` maps input field names to wide frames (rows: days, oldest first;
    columns: tickers). Cross-sectional features list ``depends_on`` and get the
    day's values of those features under the same names in the panel.
    """

    name: str
    family: str
    fn: Callable[..., pd.Series]
    description: str
    inputs: tuple[str, ...]
    lookback: int
    lag: pd.Timedelta
    owner: str = "team:quant-research"
    params: Mapping[str, object] = field(default_factory=dict)
    depends_on: tuple[FeatureDef, ...] = ()

    @cached_property
    def version(self) -> str:
        """Computed once per definition: it reads the function's source file, and the definitions ask for
        every feature's version when they load (asset metadata, family versions)."""
        payload = json.dumps(
            {
                "code": inspect.getsource(self.fn),
                "params": {k: repr(v) for k, v in sorted(self.params.items())},
                "inputs": list(self.inputs),
                "lookback": self.lookback,
                "lag": str(self.lag),
                "depends_on": [f"{d.name}@{d.version}" for d in self.depends_on],
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def compute(self, panel: Mapping[str, pd.DataFrame]) -> pd.Series:
        return self.fn(panel, **self.params).rename(self.name)


def family_version(features: Mapping[str, str]) -> str:
    """The version of a family holding exactly these ``{feature name: feature version}``.

    Also how a stored family directory (``fv=<version>``) is checked against its manifest.
    """
    keys = ",".join(sorted(f"{name}@{version}" for name, version in features.items()))
    return hashlib.sha256(keys.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class FeatureFamily:
    """Features computed together from one input window; stored together, one column each."""

    name: str
    source: str  # the raw dataset it reads: raw_prices or alt_data
    fields: tuple[str, ...]  # the input columns it pivots into the panel
    features: tuple[FeatureDef, ...]
    description: str
    # How consumers may use stored values (core/features/staleness.py; not part of the version): a value
    # is usable at session t's decision time for max_stale_sessions sessions after t-1's; a required family
    # that is not usable leaves no row at all, an optional one leaves its features missing.
    max_stale_sessions: int = 0
    required: bool = True

    @property
    def lookback(self) -> int:
        return max(f.lookback for f in self.features)

    @property
    def lag(self) -> pd.Timedelta:
        return max(f.lag for f in self.features)

    @property
    def version(self) -> str:
        """Identifies the exact set of feature versions stored side by side."""
        return family_version({f.name: f.version for f in self.features})

    def only(self, names: Iterable[str]) -> FeatureFamily:
        """The family restricted to the features ``names`` (its storage units): it computes those alone (and what
        they are built from, not stored), from a window as long as their own lookback."""
        keep = set(names)
        return dataclasses.replace(self, features=tuple(f for f in self.features if f.name in keep))

    def ordered(self) -> list[FeatureDef]:
        """Features in dependency order (bases before the cross-sectional ones)."""
        done: list[FeatureDef] = []
        seen: set[str] = set()

        def visit(f: FeatureDef) -> None:
            if f.name in seen:
                return
            for d in f.depends_on:
                visit(d)
            seen.add(f.name)
            done.append(f)

        for f in self.features:
            visit(f)
        return done

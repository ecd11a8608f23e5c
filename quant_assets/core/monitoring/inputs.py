"""What a drift row is computed from, and its fingerprint: a rerun skips a day whose inputs have not changed.

The drift row of day D for model M (``window.py``) is a function of
- M's profile (node, horizon, universe, features and reference distributions), the alert matrix, the costs and
  portfolio rule of the live signal, and the code that computes it;
- the lake partitions it reads: the predictions and raw_prices partitions of D's window (the sessions from
  horizon + lookback before D to D: the matured predictions and their labels), and the files of each feature
  directory holding M's features from the oldest partition usable at the decision time of the window's first
  session (``staleness.earliest_partition``), PSI_WINDOW - 1 sessions earlier still (the PSI of that session pools
  them when D is computed inside a longer range), to D.

Lake parts are content-addressed (``part-<sha>.parquet``), so their names are their content: the fingerprint
hashes the settings above and the names of those parts (relative to the lake's root, so the same wherever the lake
is), and a rerun lists the partitions and reads no part to know that D's row stands. A feature directory's
original files are hashed, not the compacted parts a read may take in their place: they hold the same rows
(``compaction.py``), so compacting a month recomputes nothing.

Never skip when an input may have changed: any new part in the windows changes the fingerprint, also one that
cannot change D's row (a price version stored after D's close + lag, another model's predictions). D is then
computed again and gives the same row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from quant_assets.core import sessions
from quant_assets.core.features import staleness
from quant_assets.core.features.files import day_names, months_between, within
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.monitoring import drift
from quant_assets.core.monitoring.alerts import AlertConfig
from quant_assets.core.monitoring.profiles import ModelProfile
from quant_assets.core.research import backtest, scoring
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location
from quant_assets.core.storage.hashing import code_hash, lines_hash

PRICES = "raw_prices"
_CORE = Path(sessions.__file__).parent
# the code a row runs: the monitoring, the feature store and staleness rule, scoring's layout and the backtest's
# costs, the lake, the calendar and the price lag
CODE = tuple(
    _CORE / p for p in ("monitoring", "features", "research", "storage", "sessions.py", "ingest/sources/base.py")
)


def fingerprints(
    root: Location,
    store: FeatureStore,
    profile: ModelProfile,
    days: list[dt.date],
    alerts: AlertConfig,
    costs: backtest.Costs,
    rule: backtest.PortfolioRule,
    parts: dict[dt.date, list[str]] | None = None,
) -> dict[dt.date, str]:
    """The fingerprint of each of ``days``' row of ``profile``'s model: the settings and the names of the parts
    its windows read (``window_parts``, unless given)."""
    parts = window_parts(root, store, profile, days, alerts) if parts is None else parts
    head = _settings(profile, alerts, costs, rule)
    return {d: lines_hash([head, d.isoformat(), *parts[d]]) for d in days}


def window_parts(
    root: Location, store: FeatureStore, profile: ModelProfile, days: list[dt.date], alerts: AlertConfig
) -> dict[dt.date, list[str]]:
    """The names (relative to the root) of the parts each of ``days``' windows read: prices, predictions and the
    model's feature directories. Each directory is listed once per month of the range, whatever the number of
    days."""
    reach = profile.horizon + alerts.lookback
    since = {
        d: (
            sessions.session_offset(d, -reach),  # predictions and prices
            staleness.earliest_partition(sessions.session_offset(d, -(reach + drift.PSI_WINDOW - 1))),  # features
        )
        for d in days
    }
    months = months_between(since[min(days)][1], max(days))
    listed = [(name, day_names(lake.under(root, name), months), 0) for name in (PRICES, scoring.DATASET)]
    listed += [(fs.relative(d, store.root), day_names(d, months), 1) for d in store.directories(profile.features)]
    return {d: [f"{base}/{n}" for base, names, k in listed for n in within(names, since[d][k], d)] for d in days}


def _settings(profile: ModelProfile, alerts: AlertConfig, costs: backtest.Costs, rule: backtest.PortfolioRule) -> str:
    """Everything but the lake that a row depends on, as one line of text."""
    body = {
        "profile": profile.to_json(),
        "alerts": dataclasses.asdict(alerts),
        "costs": dataclasses.asdict(costs),
        "rule": dataclasses.asdict(rule),
        "code": code_hash(*CODE),
    }
    return json.dumps(body, sort_keys=True)

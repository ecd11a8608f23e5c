"""A registered model that scored stored sessions, on a copy of a feature lake: what an explanation reads."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features.library import ALL_FEATURES, PRICE_FAMILY
from quant_assets.core.features.materialize import materialize
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import PRICE_SCHEMA, PRICE_VALUES
from quant_assets.core.registry import champion
from quant_assets.core.research import scoring, snapshots, training
from quant_assets.core.storage import lake, pg

CONFIG = training.TrainConfig(n_folds=2, min_train_days=60, num_boost_round=20, seeds=(1,))
PROV = {"producer": "test", "producer_version": "sha0", "run_id": "restate"}


def scored_model(
    source: Path, root: Path, url: str, train: tuple[str, str], days: list[dt.date], name: str = "explained"
) -> tuple[FeatureStore, str]:
    """``source`` copied to ``root`` (its features and raw data), a snapshot of ``train`` (as of its last day), a
    small walk-forward model registered as ``name`` in the registry at ``url``, and its predictions of ``days``
    stored as the predictions asset stores them. Returns the store and the model's node."""
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("snapshots", "models", "predictions"))
    store = FeatureStore(root, ALL_FEATURES)
    data, manifest = snapshots.build(root, store, *train, train[1], list(ALL_FEATURES))
    snap = snapshots.read(snapshots.write(root, data, manifest)[0])
    result = training.train_walk_forward(snap.data, snap.features, CONFIG)
    with pg.connect(url) as conn:
        ref = champion.register(conn, root, name, snap, result, "code-a").ref
    model = training.Ensemble.from_bytes(result.artifact)
    scored = scoring.score_days(root, store, model, ref.node, days, manifest["universe"])
    assert all(s.rows for s in scored)
    return store, ref.node


def restate_close(root: Path, day: dt.date, ticker: str, factor: float, when: pd.Timestamp) -> None:
    """``ticker``'s bar of ``day`` restated (close and adjusted close times ``factor``), delivered at ``when``, and
    the price features recomputed for the sessions whose windows read it, up to ``when``'s session."""
    bars = lake.latest_versions(lake.read_partition(root, "raw_prices", day), ["ticker"])
    bars = bars[bars["ticker"] == ticker].drop(columns=["date"], errors="ignore")
    bars[["close", "adj_close"]] *= factor
    key = ["ticker", "event_time"]
    assert lake.append_new_versions(root, "raw_prices", day, bars, key, PRICE_VALUES, when, PRICE_SCHEMA).rows_written
    last = sessions.as_date(when.tz_convert("America/New_York"))
    run = materialize(root, PRICE_FAMILY, sessions.sessions_between(day, last), PROV)
    assert run.written > 0

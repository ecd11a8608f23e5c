"""Registered models that scored stored sessions: a small lake with a model trained, registered, promoted, scored
and backtested as the assets do it (what the replay tests replay), and a model scoring a copy of a feature lake
(what the explain tests explain); a raw bar restated after the fact."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features.library import ALL_FEATURES, PRICE_FAMILY
from quant_assets.core.features.materialize import materialize
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import PRICE_SCHEMA
from quant_assets.core.ingest.sources import SyntheticMarket
from quant_assets.core.registry import champion, models, promotion, trainings
from quant_assets.core.research import backtest, scoring, snapshots, training
from quant_assets.core.storage import lake, pg
from quant_assets_tests.conftest import built_once, synthetic_lake

NAME, CODE = "replayed", "code-replay"
LAKE = ("2024-01-02", "2024-02-29")
START, END = "2024-01-02", "2024-02-09"  # the snapshot's window; its as-of is END
FEATURES = ["ret_5", "vol_20", "ma_gap_5", "kmid", "sentiment_5"]
CONFIG = training.TrainConfig(
    n_folds=2, min_train_days=15, num_boost_round=10, seeds=(1,), params={"min_data_in_leaf": 20}
)
SCORED = sessions.sessions_between("2024-02-12", "2024-02-16")
PROV = {"producer": "test", "producer_version": "sha0", "run_id": "restate"}
EXPLAIN_CONFIG = training.TrainConfig(n_folds=2, min_train_days=60, num_boost_round=20, seeds=(1,))
BACKTEST = {"rule": "long_short", "quantile": 0.2, "k": 20, "n_drop": 5, "costs": {"cost_bps": 5.0}}


def base_lake(tmp_path_factory) -> Path:
    """Raw data and both feature families of 10 synthetic names over LAKE, built once per test run."""
    return built_once(tmp_path_factory, "replay_lake", synthetic_lake, SyntheticMarket(seed=5, n_tickers=10), *LAKE)


def registered(base: Path, root: Path, url: str) -> tuple[models.ModelRef, str]:
    """A copy of ``base`` at ``root`` with a model of FEATURES trained on START..END as the trained_model asset
    does (training key recorded), promoted, scoring SCORED and backtested: (the model, its backtest's node)."""
    shutil.copytree(base, root)
    store = FeatureStore(root, ALL_FEATURES)
    path, _, _ = snapshots.create(root, store, START, END, END, FEATURES, 1, CODE)
    snap = snapshots.read(path)
    result = training.train_walk_forward(snap.data, snap.features, CONFIG)
    with pg.connect(url) as conn:
        reg = champion.register(conn, root, NAME, snap, result, CODE)
        trainings.record(conn, trainings.key(snap.fingerprint, CONFIG, CODE), reg.ref)
        promotion.record(conn, reg.ref, "promoted", "first champion", as_of=sessions.as_date(END))
        scoring.score_days(root, store, result.final, reg.ref.node, SCORED, snap.manifest["universe"])
        run = champion.backtest_champion(conn, root, NAME, *backtest.from_config(BACKTEST), BACKTEST)
    return reg.ref, run.node


def restate(root: Path, day: dt.date | str, ticker: str, when: pd.Timestamp | str, factor: float = 1.5) -> None:
    """One bar of ``day`` restated (close and adjusted close times ``factor``, so every feature and label reading it
    would change), delivered at ``when``."""
    day = sessions.as_date(day)
    bars = lake.latest_versions(lake.read_partition(root, "raw_prices", day), ["ticker"])
    bar = bars[bars["ticker"] == ticker]
    restated = bar.assign(close=bar["close"] * factor, adj_close=bar["adj_close"] * factor)
    stamp = pd.Timestamp(when)
    stamp = stamp if stamp.tzinfo else stamp.tz_localize("UTC")
    key, values = ["ticker", "event_time"], ["close", "adj_close"]
    written = lake.append_new_versions(root, "raw_prices", day, restated, key, values, stamp, PRICE_SCHEMA)
    assert written.rows_written == 1


def score_more(root: Path, url: str, first: str, last: str) -> None:
    """The champion scores first..last as well, after its backtest was recorded: its track record grows."""
    with pg.connect(url) as conn:
        ref, model, _ = champion.load(conn, NAME)
        universe = champion.snapshot_of(conn, root, ref).manifest["universe"]
    scoring.score_days(
        root, FeatureStore(root, ALL_FEATURES), model, ref.node, sessions.sessions_between(first, last), universe
    )


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
    result = training.train_walk_forward(snap.data, snap.features, EXPLAIN_CONFIG)
    with pg.connect(url) as conn:
        ref = champion.register(conn, root, name, snap, result, "code-a").ref
    model = training.Ensemble.from_bytes(result.artifact)
    scored = scoring.score_days(root, store, model, ref.node, days, manifest["universe"])
    assert all(s.rows for s in scored)
    return store, ref.node


def restate_close(root: Path, day: dt.date, ticker: str, factor: float, when: pd.Timestamp) -> None:
    """``restate``, and the price features recomputed for the sessions whose windows read it, up to ``when``'s
    session."""
    restate(root, day, ticker, when, factor)
    last = sessions.as_date(when.tz_convert("America/New_York"))
    run = materialize(root, PRICE_FAMILY, sessions.sessions_between(day, last), PROV)
    assert run.written > 0

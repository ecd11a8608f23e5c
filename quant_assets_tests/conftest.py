"""Shared fixtures: a real Postgres, a Postgres-backed Dagster instance, the StockNet data."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from quant_assets import settings
from quant_assets.core import schema
from quant_assets.core.storage import pg
from quant_assets.core.storage.pg import libpq as libpq_url
from quant_assets.localpg import psycopg2_url
from quant_assets.paths import PROJECT_ROOT

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def launch_settings(monkeypatch) -> None:
    """The settings ./qa exports before pytest (quant_assets.settings), for a test run without it: the Dagster
    resources read them through dg.EnvVar, which has no default, when a run launches."""
    for name, value in settings.launch_env(os.environ).items():
        monkeypatch.setenv(name, value)


def pytest_collection_modifyitems(items) -> None:
    """Under pytest-xdist (``./qa test`` runs ``-n 2 --dist worksteal``), the tests that read the StockNet lake come
    first: building it is the longest single piece of the suite, so it runs beside the rest instead of at the end of
    one worker's queue. A plain run keeps the file order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: "stocknet_lake" not in getattr(item, "fixturenames", ()))


def built_once(tmp_path_factory, name: str, build: Callable[..., object], *args) -> Path:
    """``build(path, *args)`` once per test run, for every pytest-xdist worker: their base temps share a parent, and a
    worker that needs ``name`` while another builds it waits for it. The result is read-only to its users (a test
    that changes a lake copies it). Without xdist the session's base temp holds it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path, done = base / name, base / f"{name}.done"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the build fails
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)  # what a failed build left
            build(path, *args)
            done.touch()
    return path


def require_or_skip(reason: str) -> None:
    """Skip on a user's machine; fail under CI=true, where the input must be present."""
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A real Postgres server URL: QUANT_TEST_PG_URL if set, else a pgserver started for this session.

    Its data directory is a private temp dir, not under pytest's basetemp, which a
    concurrent pytest session may rotate away underneath a running server.
    """
    given = os.environ.get("QUANT_TEST_PG_URL")
    if given:
        yield psycopg2_url(given)
        return
    import pgserver

    pgdata = Path(tempfile.mkdtemp(prefix="quant-assets-test-pg-")) / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    yield psycopg2_url(server.get_uri())
    server.cleanup()


def _fresh_database(url: str) -> tuple[str, str]:
    """Create an empty database on the server; return (its URL, its name)."""
    name = f"qa_test_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(libpq_url(url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl(), name


def _drop_database(url: str, name: str) -> None:
    conn = psycopg2.connect(libpq_url(url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def pg_db(pg_url) -> str:
    """A fresh database for one test with the ``quant`` schema migrated, as a resource's setup leaves it
    (psycopg2 SQLAlchemy URL)."""
    url, name = _fresh_database(pg_url)
    with pg.connect(url) as conn:
        schema.migrate(conn)
    yield url
    _drop_database(pg_url, name)


def postgres_instance(url: str, home: Path):
    """A test DagsterInstance with run/event/schedule storage in Postgres at ``url``."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    return dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}, temp_dir=str(home))


@pytest.fixture
def dagster_instance(pg_db, tmp_path):
    """A DagsterInstance whose run, event and schedule storage is the test's Postgres database."""
    with postgres_instance(pg_db, tmp_path / "dagster_home") as instance:
        yield instance


@pytest.fixture(scope="session")
def stocknet_dir() -> Path:
    """The shared StockNet data beside the project (a non-empty QUANT_STOCKNET_DIR overrides; ./qa exports it empty)."""
    path = Path(os.environ.get("QUANT_STOCKNET_DIR") or PROJECT_ROOT.parent / "shared" / "data" / "stocknet")
    if not (path / "price" / "raw").is_dir() or not (path / "tweet" / "preprocessed").is_dir():
        require_or_skip(f"StockNet data not found at {path} (set QUANT_STOCKNET_DIR)")
    return path


@pytest.fixture(scope="session")
def stocknet_lake(stocknet_dir, tmp_path_factory) -> Path:
    """Raw data and both feature families of the real StockNet data, 2014-01-02..2015-12-31."""
    from quant_assets.core.features.backfill import backfill
    from quant_assets.core.ingest.sources import make_sources

    prices, tweets = make_sources("stocknet", stocknet_dir=str(stocknet_dir))
    return built_once(
        tmp_path_factory, "stocknet_lake", backfill, prices, tweets, "2014-01-02", "2015-12-31", {"producer": "test"}
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto's, on 127.0.0.1) for the session; its process is stopped at the end."""
    from quant_assets_tests import object_store

    if not Path(sys.executable).with_name("moto_server").exists():
        require_or_skip("moto's S3 server is not installed (pip install -e '.[dev]')")
    server = object_store.start(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.process.kill()
    server.process.wait(timeout=10)


@pytest.fixture
def s3_root(s3_server):
    """``s3://<a new bucket>/lake`` on the session's server, its options registered (as a LakeResource does)."""
    from quant_assets.core.storage import fs

    fs.register("s3", s3_server.options)
    return fs.location(f"s3://{s3_server.new_bucket()}/lake")


@pytest.fixture
def lake_root(tmp_path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root


FEATURE_LAKE_SESSIONS = ("2023-10-02", "2024-06-28")


def synthetic_lake(root: Path, market, first: str, last: str) -> Path:
    """Raw data and both feature families of ``market`` for every session in [first, last], via the core API."""
    from quant_assets.core.features.backfill import backfill

    return backfill(root, market, market, first, last, {"producer": "test", "producer_version": "sha0", "run_id": "r"})


@pytest.fixture(scope="session")
def feature_lake(tmp_path_factory) -> Path:
    """A synthetic lake (40 names) with raw data and both feature families for FEATURE_LAKE_SESSIONS."""
    from quant_assets.core.ingest.sources import SyntheticMarket

    market = SyntheticMarket(seed=21, n_tickers=40)
    return built_once(tmp_path_factory, "feature_lake", synthetic_lake, market, *FEATURE_LAKE_SESSIONS)


def synthetic_snapshot(root: Path) -> Path:
    """A fingerprinted snapshot written straight to ``root``: 30 names x 167 sessions, four features, one of them
    weakly predictive (cheaper than building one from a feature lake)."""
    import numpy as np

    from quant_assets.core import sessions
    from quant_assets.core.research import snapshots

    rng = np.random.default_rng(7)
    days = sessions.sessions_between("2024-01-02", "2024-08-30")
    frame = pd.MultiIndex.from_product([days, [f"T{i:02d}" for i in range(30)]], names=["date", "entity_key"])
    frame = frame.to_frame(index=False)
    features = ["f0", "f1", "f2", "f3"]
    for f in features:
        frame[f] = rng.standard_normal(len(frame))
    frame["label"] = 0.002 * frame["f0"] - 0.001 * frame["f1"] + 0.02 * rng.standard_normal(len(frame))
    frame["decision_time"] = frame["date"].map({d: sessions.decision_time(d) for d in days})
    manifest = {
        "features": dict.fromkeys(features, "v1"),
        "label": {"horizon": 1},
        "row_count": len(frame),
        "date_range": [str(days[0]), str(days[-1])],
        "as_of": str(sessions.next_session(days[-1])),  # its last label (1 day) is known by then, as a build says
    }
    path, _ = snapshots.write(root, frame[["date", "entity_key", "decision_time", "label", *features]], manifest)
    return path


def seed_snapshot_asset(instance, lake: Path, path: Path) -> None:
    """Store ``training_snapshot`` as materialised at ``path``: in the instance and, through the project's
    step-output IO manager, beside the lake, where a job's steps read it."""
    import dagster as dg

    from quant_assets.defs.resources import LakeResource
    from quant_assets.defs.step_outputs import StepOutputsIOManager

    @dg.asset(name="training_snapshot")
    def stand_in() -> str:
        return str(path)

    io_manager = StepOutputsIOManager(lake=LakeResource(root=str(lake)))
    assert dg.materialize([stand_in], instance=instance, resources={"io_manager": io_manager}).success


OUTAGE = (dt.date(2024, 4, 8), dt.date(2024, 4, 14))  # a week without any tweet (Mon..Sun)
QUIET = ("SYN001", dt.date(2024, 3, 4), dt.date(2024, 3, 17))  # two weeks without a tweet about one name
SPARSE = "SYN002"  # tweets only every third day
SILENT = ("SYN003", dt.date(2024, 4, 22))  # no tweet about this name from then on


class GappyTweets:
    """A synthetic market's tweet aggregates with the holes real data has (see the constants above)."""

    def __init__(self, market):
        self.market, self.name = market, market.name

    def universe(self) -> frozenset[str]:
        return self.market.universe()

    def alt(self, session: dt.date):
        from quant_assets.core.ingest.sources import RawBatch

        batch = self.market.alt(session)
        df, day = batch.records, pd.to_datetime(batch.records["day"]).dt.date
        outage = (day >= OUTAGE[0]) & (day <= OUTAGE[1])
        quiet = (df["ticker"] == QUIET[0]) & (day >= QUIET[1]) & (day <= QUIET[2])
        sparse = (df["ticker"] == SPARSE) & (day.map(dt.date.toordinal) % 3 != 0)
        silent = (df["ticker"] == SILENT[0]) & (day >= SILENT[1])
        return RawBatch(df[~(outage | quiet | sparse | silent)].reset_index(drop=True))


@pytest.fixture(scope="session")
def gappy_lake(tmp_path_factory) -> Path:
    """20 synthetic names, 2024-01-02..2024-06-28, prices complete, tweets with GappyTweets' holes."""
    from quant_assets.core.features.backfill import backfill
    from quant_assets.core.ingest.sources import SyntheticMarket

    market = SyntheticMarket(seed=17, n_tickers=20)
    return built_once(tmp_path_factory, "gappy_lake", backfill, market, GappyTweets(market), "2024-01-02", "2024-06-28")


SCORED_TRAIN = ("2024-01-02", "2024-04-30")
SCORED_DAYS = ("2024-05-01", "2024-06-28")
MODEL_NODE = "model:equity_lgbm:v1"


@pytest.fixture(scope="session")
def scored_lake(feature_lake, tmp_path_factory):
    """feature_lake plus a snapshot of SCORED_TRAIN, a small ensemble on it and its predictions for SCORED_DAYS.

    Returns (root, snapshot, model). Built with the core API only: the Dagster layer is tested on top of it.
    """
    import shutil

    from quant_assets.core import sessions
    from quant_assets.core.features.library import ALL_FEATURES
    from quant_assets.core.features.store import FeatureStore
    from quant_assets.core.research import scoring, snapshots
    from quant_assets.core.research.training import Ensemble, TrainConfig

    root = tmp_path_factory.mktemp("scored") / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models", "predictions"))
    store = FeatureStore(root, ALL_FEATURES)
    data, manifest = snapshots.build(root, store, *SCORED_TRAIN, SCORED_TRAIN[1], list(ALL_FEATURES))
    snap = snapshots.read(snapshots.write(root, data, manifest)[0])
    model = Ensemble.fit(snap.data, snap.features, TrainConfig(num_boost_round=30, seeds=(1,)))
    for day in sessions.sessions_between(*SCORED_DAYS):
        scoring.write_day(root, day, scoring.score_day(store, model, MODEL_NODE, day, snap.manifest["universe"]))
    return root, snap, model


def partition_values(files: dict[str, bytes]) -> dict[str, str]:
    """Each partition (a file name's directory) of ``files`` (name -> Parquet bytes) as a digest of its rows without
    the PROVENANCE columns, in a canonical order: what two runs of the same inputs must agree on bit for bit. Their
    parts differ in bytes and names, as each names the run that wrote it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from quant_assets.core.storage import lake

    tables: dict[str, list[pa.Table]] = {}
    for name, blob in files.items():
        table = pq.read_table(pa.BufferReader(blob))
        tables.setdefault(name.rsplit("/", 1)[0], []).append(table.drop_columns(lake.PROVENANCE))
    out = {}
    for partition, parts in tables.items():
        rows = pa.concat_tables(parts).to_pandas()
        out[partition] = lake.table_digest(lake.canonical_table(rows, sort_by=list(rows.columns)))
    return out

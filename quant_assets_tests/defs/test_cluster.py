"""Off one machine, proved with real servers: the lake in a bucket and every step on two Celery workers.

An S3-compatible server (moto's, on 127.0.0.1) holds the lake, RabbitMQ carries the steps, Postgres holds the
instance and the registry. Two ``dagster-celery`` workers, each started as the README says in its own empty
working directory with its own copy of DAGSTER_HOME, share nothing with the launching process (this test) but
those three. On the same history (the session's synthetic feature lake, uploaded to the bucket) the test runs
the pipeline twice, once on the workers with ``QUANT_DATA_ROOT=s3://...`` and once in process on a local disk:

    retrain_job (snapshot, training, promotion, champion backtest)     -> the champion
    ingest_job for three new sessions (one run)                         -> raw data and features
    daily_job for those sessions (one run)                              -> predictions, drift, the book
    retrain_job on a later window                                       -> the retrain

and asserts: the snapshots' fingerprints, the model artifacts' SHA-256, every prediction object and every drift
row are equal, byte for byte; every step of the cluster runs was handed to a worker (both took some) and ran
in the workers' processes; nothing of the lake (and no step output) was written to any local directory.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository

from quant_assets import settings
from quant_assets.core.storage import fs, pg
from quant_assets.paths import PROJECT_ROOT
from quant_assets_tests import celery_workers
from quant_assets_tests.conftest import _drop_database, _fresh_database, partition_values
from quant_assets_tests.run_configs import PROMOTED_RUN_CONFIG

NEW = ("2024-07-01", "2024-07-03")  # after the feature lake's last session: ingested by the runs
RANGE = {"dagster/asset_partition_range_start": NEW[0], "dagster/asset_partition_range_end": NEW[1]}
RETRAIN_WINDOW = {"start": "2024-01-02", "end": "2024-06-28", "as_of": "2024-06-28"}
SETTINGS = {"QUANT_SEED": "21", "QUANT_N_TICKERS": "40", "QUANT_SOURCE": "synthetic"}  # the feature lake's market


def _retrain_config() -> dict:
    """PROMOTED_RUN_CONFIG with the snapshot's window moved to the end of the history."""
    config = yaml.safe_load(yaml.safe_dump(PROMOTED_RUN_CONFIG))
    config["ops"]["training_snapshot"]["config"].update(RETRAIN_WINDOW)
    return config


def _pipeline(instance: dg.DagsterInstance, execution: dict) -> list[dg.DagsterRun]:
    """The four runs of the module docstring, each with ``execution`` (the executor's run config)."""
    repo = ReconstructableRepository.for_module("quant_assets.definitions", "defs")
    plan = [
        ("retrain_job", PROMOTED_RUN_CONFIG, {}),
        ("ingest_job", {}, RANGE),
        ("daily_job", {}, RANGE),
        ("retrain_job", _retrain_config(), {}),
    ]
    runs = []
    for job, config, tags in plan:
        result = dg.execute_job(
            repo.get_reconstructable_job(job), instance, run_config={**config, **execution}, tags=tags
        )
        assert result.success, f"{job} failed (run {result.run_id})"
        runs.append(result.dagster_run)
    return runs


def _registry_figures(url: str) -> dict:
    """What the two runs must agree on, from the registry: snapshots, artifact hashes, drift rows."""
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT m.version, m.snapshot, a.sha256, a.size_bytes, a.oos_sha256 FROM quant.models m "
            "JOIN quant.model_artifacts a USING (model_id) ORDER BY m.version"
        )
        models = cur.fetchall()
        # inputs: the fingerprint of the parts read, among them the features each run wrote with its own run_id
        cur.execute(
            "SELECT to_jsonb(d) - 'run_id' - 'seq' - 'computed_at' - 'inputs' FROM quant.drift_metrics d "
            "ORDER BY date, model"
        )
        drift = [row[0] for row in cur.fetchall()]
    return {"models": models, "drift": drift}


def _objects(root, under: str) -> dict[str, bytes]:
    """Every object under ``root/under`` (relative name -> bytes), on either kind of root."""
    base = root / under
    return {fs.relative(p, base): p.read_bytes() for p in fs.listing(base, "date=*/*.parquet")}


def _local_files(*directories: Path) -> list[str]:
    """Files under the launcher's and workers' directories other than their instance config, the workers' celery
    settings (quant-assets celery writes them under DAGSTER_HOME), their logs and Dagster's compute logs."""
    found = []
    for d in directories:
        for p in d.rglob("*"):
            rel = p.relative_to(d)
            if not p.is_file() or rel.name in ("dagster.yaml", "worker.log"):
                continue
            if not {"dagster_celery", "compute_logs", "logs"} & set(rel.parts):
                found.append(str(rel))
    return sorted(found)


@pytest.fixture
def databases(pg_url):
    """Two fresh registry databases: the cluster run's and the local run's."""
    made = [_fresh_database(pg_url) for _ in range(2)]
    yield [url for url, _ in made]
    for _, name in made:
        _drop_database(pg_url, name)


def _worker_env(home: Path, pg_db: str, registry: str, root: str, s3_env: dict) -> dict:
    """A worker's environment as a new machine's shell would have it after ``eval "$(./qa env)"``: only the
    settings (defaults for the rest), the instance's Postgres and the object store's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANT_", "DAGSTER_", "AWS_"))}
    given = {**SETTINGS, **s3_env, "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": pg_db, "QUANT_PG_URL": registry,
             "QUANT_DATA_ROOT": root, "PYTHONWARNINGS": "ignore"}  # fmt: skip
    return settings.launch_env({**env, **given})


@pytest.mark.timeout(900)
def test_the_pipeline_on_two_workers_over_a_bucket_equals_the_local_run(
    feature_lake, s3_server, s3_root, pg_db, databases, tmp_path, monkeypatch
):
    broker = celery_workers.celery_settings()["broker"]
    celery_workers.require_broker(broker)
    queue = f"quant-cluster-{uuid.uuid4().hex[:8]}"
    history = tmp_path / "history"
    shutil.copytree(
        feature_lake, history, ignore=shutil.ignore_patterns("snapshots", "models", "predictions", "_step_outputs")
    )
    s3_root.fs.put(f"{history}/", f"{s3_root.path}/", recursive=True)
    local_root = tmp_path / "local_lake"
    shutil.copytree(history, local_root)

    home = tmp_path / "launcher_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    config_file = tmp_path / "celery.yaml"
    config_file.write_text(yaml.safe_dump(celery_workers.run_config(queue)))
    for name, value in {**SETTINGS, **s3_server.env, "DAGSTER_PG_URL": pg_db}.items():
        monkeypatch.setenv(name, value)

    workers, logs, dirs = [], [], []
    try:
        for i in range(2):
            wdir = tmp_path / f"worker{i}"
            (wdir / "home").mkdir(parents=True)
            (wdir / "cwd").mkdir()
            shutil.copy(PROJECT_ROOT / "dagster.yaml", wdir / "home" / "dagster.yaml")
            env = _worker_env(wdir / "home", pg_db, databases[0], str(s3_root), s3_server.env)
            logs.append(wdir / "worker.log")
            dirs.append(wdir)
            workers.append(
                celery_workers.start(config_file, queue, f"qaw{i}{uuid.uuid4().hex[:4]}", wdir / "cwd", env, logs[-1])
            )
        worker_pids = set().union(*(celery_workers.group(w) for w in workers))

        monkeypatch.setenv("QUANT_DATA_ROOT", str(s3_root))
        monkeypatch.setenv("QUANT_PG_URL", databases[0])
        with dg.DagsterInstance.from_config(str(home)) as instance:
            cluster_runs = _pipeline(instance, celery_workers.run_config(queue))
            events = {
                r.run_id: [e.dagster_event for e in instance.all_logs(r.run_id) if e.dagster_event]
                for r in cluster_runs
            }
            worker_pids |= set().union(*(celery_workers.group(w) for w in workers))

            monkeypatch.setenv("QUANT_DATA_ROOT", str(local_root))
            monkeypatch.setenv("QUANT_PG_URL", databases[1])
            _pipeline(instance, {"execution": {"config": {"in_process": {}}}})
    finally:
        for w in workers:
            celery_workers.stop(w)
        celery_workers.delete_queue(broker, queue)
        for log in logs:
            print(celery_workers.tail(log))

    # The same results: registry figures and book files byte for byte, rows value for value (parts name their run).
    cluster, local = _registry_figures(databases[0]), _registry_figures(databases[1])
    assert len(cluster["models"]) == 2 and cluster["models"] == local["models"]
    assert cluster["drift"] and cluster["drift"] == local["drift"]
    predictions = partition_values(_objects(s3_root, "predictions"))  # each part names its run: values alone
    assert predictions and predictions == partition_values(_objects(local_root, "predictions"))
    book = _objects(s3_root, "live_book")
    assert len(book) == 3 and book == _objects(local_root, "live_book")
    raw = partition_values(_objects(s3_root, "raw_prices"))
    assert raw == partition_values(_objects(local_root, "raw_prices")) and f"date={NEW[1]}" in raw

    # Every step was handed to a worker, both took some, and each ran in a worker's processes.
    hosts = set()
    for run_id, run_events in events.items():
        steps = {e.step_key for e in run_events if e.event_type_value == "STEP_SUCCESS"}
        delegated = celery_workers.delegated_steps(run_events)
        assert steps and set(delegated) == steps, run_id
        hosts |= {h.split("@")[0] for h in delegated.values()}
        step_pids = {e.pid for e in run_events if e.step_key and e.event_type_value in ("STEP_START", "STEP_SUCCESS")}
        assert step_pids <= worker_pids and os.getpid() not in step_pids
    assert len(hosts) == 2

    # Nothing of the lake, and no step output, on a local disk: the launcher's home and the workers' directories.
    assert _local_files(home, *dirs) == []
    assert not list(home.rglob("*.parquet")) and not any(list(d.rglob("*.parquet")) for d in dirs)
    assert s3_root.fs.find((s3_root / "_step_outputs").path)  # the step outputs went to the bucket

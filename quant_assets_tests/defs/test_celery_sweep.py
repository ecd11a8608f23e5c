"""The parameter sweep on Celery, end to end: a real broker, a real `dagster-celery` worker, a Postgres instance.

The same job, `sweep_job`, is run twice through the Dagster CLI on one small synthetic snapshot: once with the
multiprocess engine selected in its run config, once with ``deploy/celery.yaml``'s celery block, with a worker
started by the documented command (`quant-assets celery worker start ...`, reading the same file). The
aggregated table, deflated Sharpe and PBO must be equal by value, and every step of the Celery run must have
run in the worker's processes.

Everything that could wait forever is bounded: the worker must report ready within celery_workers.READY_S, each run
is a subprocess killed after RUN_TIMEOUT_S, and the worker's whole process group is stopped in teardown. The
logs are printed at teardown, so pytest shows them when the test fails. Without a reachable broker the test
skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from quant_assets.core.storage import pg
from quant_assets.paths import PROJECT_ROOT
from quant_assets_tests import celery_workers
from quant_assets_tests.conftest import seed_snapshot_asset, synthetic_snapshot
from quant_assets_tests.run_configs import MULTIPROCESS, SWEEP_CONFIG, SWEEP_RUN_CONFIG

BIN = Path(sys.executable).parent
RUN_TIMEOUT_S = 150

CELLS = 4 * 2  # 4 configurations x 2 folds
STEPS = SWEEP_CONFIG["steps"]  # the 4 models (2 leaf counts x 2 folds) dealt into 2 steps
# The reference: the multiprocess executor (run_configs.MULTIPROCESS).


def _run_sweep(env: dict, job: str, config_files: list[Path], log: Path) -> None:
    args = [str(BIN / "dagster"), "job", "execute", "-m", "quant_assets.definitions", "-j", job]
    for f in config_files:
        args += ["-c", str(f)]
    with open(log, "w") as out:
        try:
            proc = subprocess.run(args, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail(f"sweep run still going after {RUN_TIMEOUT_S} s (see {log.name} below)")
    assert proc.returncode == 0, f"sweep run failed with exit code {proc.returncode} (see {log.name} below)"


def _last_sweep(home: Path, pg_url: str, job: str) -> tuple[dg.DagsterRun, list, dict]:
    """The newest run of ``job``, its event log, and the sweep's record in quant.backtests."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(filters=dg.RunsFilter(job_name=job), limit=1)[0]
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event is not None]
    with pg.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT metrics FROM quant.backtests WHERE kind = 'sweep'")
        (metrics,) = cur.fetchone()
    return run, events, metrics if isinstance(metrics, dict) else json.loads(metrics)


def _sweep_env(tmp_path: Path, pg_db: str, celery_cfg: dict, queue: str) -> tuple[Path, dict, list[Path]]:
    """The project's own instance config (as ./qa links it) on this test's database, a seeded snapshot, the runs'
    environment, and the config files: [sweep, multiprocess executor, celery executor]."""
    home, lake = tmp_path / "dagster_home", tmp_path / "lake"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(PROJECT_ROOT / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        seed_snapshot_asset(instance, lake, synthetic_snapshot(lake))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": pg_db,
        "QUANT_PG_URL": pg_db,
        "QUANT_DATA_ROOT": str(lake),
        "PYTHONWARNINGS": "ignore",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    sweep_yaml, mp_yaml, celery_yaml = tmp_path / "sweep.yaml", tmp_path / "multiprocess.yaml", tmp_path / "celery.yaml"
    sweep_yaml.write_text(yaml.safe_dump(SWEEP_RUN_CONFIG))
    mp_yaml.write_text(yaml.safe_dump(MULTIPROCESS))
    # deploy/celery.yaml's block, on a queue of this test's own: no other worker on the broker takes its tasks,
    # and nothing left in the shared 'dagster' queue by an earlier run reaches this worker.
    celery_cfg = {**celery_cfg, "config_source": {"task_default_queue": queue}}
    celery_yaml.write_text(yaml.safe_dump({"execution": {"config": {"celery": celery_cfg}}}))
    return home, env, [sweep_yaml, mp_yaml, celery_yaml]


def _sweep_on_a_worker(env: dict, configs: list[Path], broker: str, queue: str, name: str, logs: list[Path]) -> set:
    """Start a worker as the README says, from the run's celery config file and with the run's environment
    (DAGSTER_HOME, QUANT_*, ...), run sweep_job with that file as run config, stop the worker; the worker's pids."""
    t0 = time.monotonic()
    worker = celery_workers.start(configs[2], queue, name, PROJECT_ROOT, env, logs[1])
    try:
        worker_pids = celery_workers.group(worker)
        t_ready = time.monotonic() - t0

        t0 = time.monotonic()
        _run_sweep(env, "sweep_job", [configs[0], configs[2]], logs[2])
        t_celery = time.monotonic() - t0
        worker_pids |= celery_workers.group(worker)
    finally:
        celery_workers.stop(worker)
        celery_workers.delete_queue(broker, queue)
    print(f"worker ready in {t_ready:.1f} s; celery run {t_celery:.1f} s")
    return worker_pids


def _assert_same_figures(mp_result: dict, cel_result: dict) -> None:
    """Equal by value: every configuration's net and gross figures, the DSR of the best and the PBO."""
    assert cel_result["cells"] == mp_result["cells"] == CELLS and cel_result["configs"] == 4
    pd.testing.assert_frame_equal(pd.DataFrame(cel_result["table"]), pd.DataFrame(mp_result["table"]))
    assert cel_result == mp_result


def _assert_steps_ran_in_the_worker(cel_events, mp_events, worker_pids: set, name: str, worker_log: Path) -> None:
    """Every step of the Celery run ran in the worker, one task each, none in the run's own process."""
    steps = {e.step_key for e in cel_events if e.event_type_value == "STEP_SUCCESS"}
    assert len(steps) == 1 + STEPS + 1 and sum("run_cells" in s for s in steps) == STEPS
    assert steps == {e.step_key for e in mp_events if e.event_type_value == "STEP_SUCCESS"}
    delegated = celery_workers.delegated_steps(cel_events)
    assert set(delegated) == steps and all(host.startswith(f"{name}@") for host in delegated.values())
    step_pids = {e.pid for e in cel_events if e.step_key and e.event_type_value in ("STEP_START", "STEP_SUCCESS")}
    assert step_pids and step_pids <= worker_pids, (step_pids, worker_pids)
    run_pids = {e.pid for e in cel_events if e.event_type == dg.DagsterEventType.RUN_START}
    assert run_pids and not run_pids & worker_pids
    succeeded = [ln for ln in worker_log.read_text().splitlines() if "Task execute_plan[" in ln and "succeeded" in ln]
    assert len(succeeded) == len(steps)
    mp_pids = {e.pid for e in mp_events if e.step_key and e.event_type_value == "STEP_SUCCESS"}
    assert len(mp_pids) > 1 and not mp_pids & worker_pids


@pytest.mark.timeout(2 * RUN_TIMEOUT_S + celery_workers.READY_S + 120)
def test_sweep_on_celery_workers_matches_multiprocess(tmp_path, pg_db, monkeypatch):
    celery_cfg = celery_workers.celery_settings()
    celery_workers.require_broker(celery_cfg["broker"])
    monkeypatch.setenv("DAGSTER_PG_URL", pg_db)
    queue, name = f"quant-test-{uuid.uuid4().hex[:8]}", f"quanttest{uuid.uuid4().hex[:6]}"
    home, env, configs = _sweep_env(tmp_path, pg_db, celery_cfg, queue)
    logs = [tmp_path / "multiprocess_run.log", tmp_path / "worker.log", tmp_path / "celery_run.log"]
    try:
        # 1. The reference: sweep_job on the multiprocess engine.
        t0 = time.monotonic()
        _run_sweep(env, "sweep_job", [configs[0], configs[1]], logs[0])
        print(f"multiprocess run {time.monotonic() - t0:.1f} s")
        mp_run, mp_events, mp_result = _last_sweep(home, pg_db, "sweep_job")
        assert mp_run.status == dg.DagsterRunStatus.SUCCESS

        # 2. The same job on a Celery worker: only the run config differs.
        worker_pids = _sweep_on_a_worker(env, configs, celery_cfg["broker"], queue, name, logs)
        cel_run, cel_events, cel_result = _last_sweep(home, pg_db, "sweep_job")
        assert cel_run.run_id != mp_run.run_id and cel_run.status == dg.DagsterRunStatus.SUCCESS
        assert cel_run.run_config["execution"]["config"]["celery"]["broker"] == celery_cfg["broker"]
        assert "multiprocess" in mp_run.run_config["execution"]["config"]

        _assert_same_figures(mp_result, cel_result)
        _assert_steps_ran_in_the_worker(cel_events, mp_events, worker_pids, name, logs[1])
    finally:
        for log in logs:
            print(celery_workers.tail(log))

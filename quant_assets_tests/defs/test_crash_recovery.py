"""A crash does not block the next run (issue 10): dead runs are failed, their pool slots freed, the queue moves.

The instance is the project's ``dagster.yaml`` on a test Postgres, with shorter polls, and with
``max_concurrent_runs: 1`` so that the killed run alone fills the queue: the next run can only be launched once
the dead one stopped counting, and can only run once its ``lake_ingest`` slots are back.

- ``test_killed_daemon_run_is_failed_and_the_queue_continues``: a daemon launches run A (raw_prices and
  alt_data over 60 sessions) from the queue; mid-step, the whole daemon process group is killed with SIGKILL
  (daemon, code server, run worker, step processes: a crash or reboot under ``quant-assets ui``; a run worker killed
  alone is already failed by its code server, which survives it). A stays STARTED. A new daemon's run monitoring
  must fail it, its slots must be freed, the queued run B of the same pool must be launched by the daemon and
  succeed; then A's re-execution from failure must leave the lake byte for byte as an undisturbed run does.
- the health check itself: a live worker, a dead one, a recycled pid, a zombie, runs of another host or
  without a host tag, each judged on a real instance;
- ``test_killed_cli_run_is_failed_without_a_daemon``: ``quant-assets materialize`` (what ``quant-assets main``
  does for each stage: the run executes in the CLI's process) is killed with SIGKILL, its step processes left
  orphaned; the daemon-less pass those commands start with fails the run, stops the orphans and frees the slots
  at once.

Every wait is bounded and polls the instance; every process started here is killed in teardown (the daemons by
process group). When a test fails, the tail of the daemon's (or the CLI's) log is printed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from quant_assets import settings
from quant_assets.core import sessions
from quant_assets.core.storage import pg
from quant_assets.defs import run_launcher
from quant_assets.defs.raw import alt_data, raw_prices
from quant_assets.defs.resources import LakeResource, MarketDataResource
from quant_assets.paths import PROJECT_ROOT
from quant_assets_tests.conftest import partition_values

WORKSPACE = PROJECT_ROOT / "workspace.yaml"
BIN = Path(sys.executable).parent
LOCATION = "quant_assets.definitions"
POOL = "lake_ingest"
ASSETS = [dg.AssetKey("raw_prices"), dg.AssetKey("alt_data")]
KILLED = ("2024-01-02", "2024-03-28")  # 60 sessions: each step runs for seconds, the kill lands inside it
NEXT = ("2024-07-01", "2024-07-12")
SEED, N_TICKERS = 42, 20
POLL_S = 2
PROGRESS_S = 240  # bound for one phase (start a daemon and its code server, run a range) on a loaded 2-core box


def _env(home: Path, pg_url: str, lake: Path) -> dict[str, str]:
    return settings.launch_env(
        {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": pg_url,
            "QUANT_PG_URL": pg_url,
            "QUANT_DATA_ROOT": str(lake),
            "QUANT_SOURCE": "synthetic",
            "QUANT_SEED": str(SEED),
            "QUANT_N_TICKERS": str(N_TICKERS),
            "PYTHONWARNINGS": "ignore",
        }
    )


def _instance_home(home: Path) -> Path:
    """The project's dagster.yaml with test timings: polls every 2 s, one run at a time."""
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    assert config["run_launcher"]["class"] == "LocalRunLauncher" and config["run_monitoring"]["enabled"]
    config["run_monitoring"].update(poll_interval_seconds=POLL_S, free_slots_after_run_end_seconds=POLL_S)
    config["concurrency"]["runs"]["max_concurrent_runs"] = 1
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@pytest.fixture
def crash_env(pg_db, tmp_path, monkeypatch) -> Iterator[tuple[dg.DagsterInstance, Path, dict[str, str]]]:
    """(instance, lake, environment of the Dagster processes): the project's instance on the test's Postgres."""
    lake = tmp_path / "lake"
    env = _env(_instance_home(tmp_path / "dagster_home"), pg_db, lake)
    for key in [k for k in os.environ if k.startswith("QUANT_") and k not in env]:
        monkeypatch.delenv(key)  # e.g. a QUANT_REGIME_CHANGE of the shell would change the synthetic market
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert isinstance(instance.run_launcher, run_launcher.LocalRunLauncher) and instance.run_monitoring_enabled
        yield instance, lake, dict(os.environ)


def _wait(what: str, probe: Callable[[], object], proc: subprocess.Popen | None = None, timeout: float = PROGRESS_S):
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds.

    ``proc``, the process that should make progress, must stay up meanwhile.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{Path(proc.args[0]).name} exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def _daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` in its own process group; the whole group is killed on the way out."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@contextmanager
def _workspace(instance: dg.DagsterInstance):
    """The workspace the UI submits runs from (its own code server, stopped on exit)."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(WORKSPACE)])) as context:
        yield context.create_request_context()


def _submit(instance: dg.DagsterInstance, request, first: str, last: str) -> str:
    """Queue one run of raw_prices + alt_data over [first, last], as the UI's 'Materialize' of a range does."""
    from dagster._core.definitions.selector import JobSubsetSelector

    location = request.get_code_location(LOCATION)
    repo = next(iter(location.get_repositories().values()))
    selector = JobSubsetSelector(
        location_name=LOCATION, repository_name=repo.name, job_name="__ASSET_JOB", op_selection=None,
        asset_selection=set(ASSETS), asset_check_selection=None,
    )  # fmt: skip
    job = location.get_job(selector)
    plan = location.get_execution_plan(job, {}, step_keys_to_execute=None, known_state=None, instance=instance)
    run = instance.create_run(
        job_name=job.name, run_id=None, run_config={}, resolved_op_selection=None,
        step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute, op_selection=None, status=None,
        root_run_id=None, parent_run_id=None, job_snapshot=job.job_snapshot,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        execution_plan_snapshot=plan.execution_plan_snapshot, parent_job_snapshot=job.parent_job_snapshot,
        remote_job_origin=job.get_remote_origin(), job_code_origin=job.get_python_origin(),
        asset_selection=frozenset(ASSETS), asset_check_selection=None, asset_graph=repo.asset_graph,
    )  # fmt: skip
    return instance.submit_run(run.run_id, request).run_id


def _reexecute_from_failure(instance: dg.DagsterInstance, request, run_id: str) -> str:
    """Queue the re-execution of a failed run's unfinished steps (the UI's 'Re-execute from failure')."""
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.execution.plan.resume_retry import ReexecutionStrategy

    parent = instance.get_run_by_id(run_id)
    location = request.get_code_location(LOCATION)
    origin = parent.remote_job_origin.repository_origin
    selector = JobSubsetSelector(
        location_name=LOCATION, repository_name=origin.repository_name, job_name=parent.job_name,
        op_selection=None, asset_selection=parent.asset_selection, asset_check_selection=None,
    )  # fmt: skip
    run = instance.create_reexecuted_run(
        request_context=request, parent_run=parent, code_location=location, remote_job=location.get_job(selector),
        strategy=ReexecutionStrategy.FROM_FAILURE, use_parent_run_tags=True,
    )  # fmt: skip
    return instance.submit_run(run.run_id, request).run_id


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def _events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list:
    return [e for e in instance.all_logs(run_id, of_type=kind)]


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    return _events(instance, run_id, dg.DagsterEventType.RUN_START)[-1].dagster_event.pid


def _claims(instance: dg.DagsterInstance, run_id: str) -> list:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return [s for s in info.claimed_slots if s.run_id == run_id] + [s for s in info.pending_steps if s.run_id == run_id]


def _recorded_failure(env: dict[str, str], run_id: str) -> str | None:
    """The error the record_run_failures sensor stored for ``run_id``."""
    with pg.connect(env["QUANT_PG_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT error FROM quant.run_failures WHERE run_id = %s", (run_id,))
        row = cur.fetchone()
    return row[0] if row else None


def _partitions(lake: Path, dataset: str) -> int:
    return len(list((lake / dataset).glob("date=*/part-*.parquet")))


def _mid_step(instance: dg.DagsterInstance, lake: Path, run_id: str) -> bool:
    """Both steps started and wrote some partitions, neither finished."""
    started = {e.step_key for e in _events(instance, run_id, dg.DagsterEventType.STEP_START)}
    return (
        started == {"raw_prices", "alt_data"}
        and min(_partitions(lake, "raw_prices"), _partitions(lake, "alt_data")) >= 3
    )


def _lake_files(root: Path) -> dict[str, bytes]:
    """Every data file a reader sees (part-*.parquet) under raw_prices, alt_data and quarantine, by path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for dataset in ("raw_prices", "alt_data", "quarantine")
        for p in sorted((root / dataset).rglob("part-*.parquet"))
    }


def _undisturbed(root: Path, *ranges: tuple[str, str]) -> dict[str, str]:
    """The same partitions materialised without interruption into a separate lake (in process, ephemeral instance)."""
    resources = {"lake": LakeResource(root=str(root)), "market": MarketDataResource(seed=SEED, n_tickers=N_TICKERS)}
    for first, last in ranges:
        tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
        assert dg.materialize([raw_prices, alt_data], resources=resources, tags=tags).success
    return partition_values(_lake_files(root))


@contextmanager
def _log_on_failure(log: Path, capsys) -> Iterator[None]:
    """Show the tail of ``log`` when the test fails (the daemon's and its runs' output)."""
    try:
        yield
    except BaseException:
        with capsys.disabled():
            lines = log.read_text(errors="replace").splitlines()[-80:] if log.exists() else []
            print(f"\n--- {log.name} (last {len(lines)} lines) ---\n" + "\n".join(lines))
        raise


@pytest.mark.timeout(900)
def test_killed_daemon_run_is_failed_and_the_queue_continues(crash_env, tmp_path, capsys):
    instance, lake, env = crash_env
    log = tmp_path / "daemon.log"
    n_killed = len(sessions.sessions_between(*KILLED))
    with _log_on_failure(log, capsys), _workspace(instance) as request:
        killed = _submit(instance, request, *KILLED)
        with _daemon(env, log) as first_daemon:
            _wait("run A mid-step", lambda: _mid_step(instance, lake, killed), first_daemon)
            os.killpg(first_daemon.pid, signal.SIGKILL)  # daemon, code server, run worker, step processes
        worker = _worker_pid(instance, killed)
        _wait("the run worker's death", lambda: run_launcher.process_gone(worker, time.time()))
        done = {e.step_key for e in _events(instance, killed, dg.DagsterEventType.STEP_SUCCESS)}
        written = (_partitions(lake, "raw_prices"), _partitions(lake, "alt_data"))
        assert not done and all(3 <= n < n_killed for n in written), (done, written, n_killed)
        # Nothing failed the run: it holds its slots and the queue's only place.
        assert _status(instance, killed) == dg.DagsterRunStatus.STARTED and _claims(instance, killed)
        following = _submit(instance, request, *NEXT)

        with _daemon(env, log) as second_daemon:
            is_failed = lambda: _status(instance, killed) == dg.DagsterRunStatus.FAILURE  # noqa: E731
            _wait("the killed run failed by run monitoring", is_failed, second_daemon, timeout=60)
            failure = _events(instance, killed, dg.DagsterEventType.RUN_FAILURE)[-1]
            assert f"run worker on {socket.gethostname()}: process {worker} " in failure.message
            _wait("the killed run's slots freed", lambda: not _claims(instance, killed), second_daemon, timeout=30)
            _wait("the next run of the pool", lambda: instance.get_run_by_id(following).is_finished, second_daemon)
            assert _status(instance, following) == dg.DagsterRunStatus.SUCCESS
            launched = _events(instance, following, dg.DagsterEventType.RUN_START)[-1]
            assert launched.timestamp > failure.timestamp  # the queue held it until the dead run was failed

            recorded = _wait("the failure in quant.run_failures", lambda: _recorded_failure(env, killed), second_daemon)
            assert "Detected run worker status NOT_FOUND" in recorded  # what the user sees besides the UI

            again = _reexecute_from_failure(instance, request, killed)
            _wait("the re-execution", lambda: instance.get_run_by_id(again).is_finished, second_daemon)
            assert _status(instance, again) == dg.DagsterRunStatus.SUCCESS
        # the same rows as an undisturbed run (each part names the run that wrote it: values alone compare)
        assert partition_values(_lake_files(lake)) == _undisturbed(tmp_path / "reference", KILLED, NEXT)
        assert _partitions(lake, "raw_prices") == n_killed + len(sessions.sessions_between(*NEXT))


@pytest.mark.timeout(600)
def test_killed_cli_run_is_failed_without_a_daemon(crash_env, tmp_path, capsys):
    instance, lake, env = crash_env
    log = tmp_path / "cli.log"
    select = ",".join(k.to_user_string() for k in ASSETS)
    args = [sys.executable, "-m", "quant_assets", "materialize", select]
    with _log_on_failure(log, capsys), open(log, "wb") as out:
        cli = subprocess.Popen(
            [*args, "...".join(KILLED)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            run_id = _wait("the CLI's run", lambda: next(iter(instance.get_run_ids(limit=1)), None), cli)
            _wait("the CLI's run mid-step", lambda: _mid_step(instance, lake, run_id), cli)
            steps = {
                e.dagster_event.pid: e.timestamp for e in _events(instance, run_id, dg.DagsterEventType.STEP_START)
            }
            cli.kill()  # SIGKILL to the CLI process alone: its two step processes live on, orphaned
            cli.wait(timeout=30)
            assert all(run_launcher.process_gone(pid, seen) is None for pid, seen in steps.items())
            assert _status(instance, run_id) == dg.DagsterRunStatus.STARTED and _claims(instance, run_id)

            assert [r for r, _ in run_launcher.fail_dead_runs(instance)] == [run_id]
            assert _status(instance, run_id) == dg.DagsterRunStatus.FAILURE
            assert not _claims(instance, run_id)
            assert all(run_launcher.process_gone(pid, seen) for pid, seen in steps.items())
            failure = _events(instance, run_id, dg.DagsterEventType.RUN_FAILURE)[-1].message
            assert f"process {cli.pid} no longer exists" in failure and "stopped the step processes" in failure
            assert run_launcher.fail_dead_runs(instance) == []  # a second pass finds nothing
        finally:
            _kill_group(cli)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def test_process_gone_tells_the_worker_from_a_dead_zombie_or_recycled_pid():
    me = psutil.Process()
    assert run_launcher.process_gone(me.pid, time.time()) is None
    # The same pid, but the process was created after the worker's RUN_START: the pid was recycled.
    assert "now belongs to another process" in run_launcher.process_gone(me.pid, me.create_time() - 60)
    # A process older than the run only shares the pid of one of its steps (e.g. a step that ran elsewhere).
    assert "older than the run" in run_launcher.process_gone(me.pid, time.time(), me.create_time() + 60)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        _wait("an unreaped child", lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, timeout=60)
        assert "has exited (zombie" in run_launcher.process_gone(child.pid, time.time())
    finally:
        child.wait(timeout=60)
    assert run_launcher.process_gone(child.pid, time.time()) == f"process {child.pid} no longer exists"


def test_health_check_judges_workers_of_this_host_only(crash_env):
    from dagster._core.launcher import WorkerStatus
    from dagster._core.test_utils import create_run_for_test

    instance = crash_env[0]
    me, dead, here = psutil.Process(), _dead_pid(), socket.gethostname()
    cases = {  # job name: (tags, RUN_START pid, RUN_START time, expected status)
        "alive": ({run_launcher.HOST_TAG: here}, me.pid, time.time(), WorkerStatus.RUNNING),
        "dead": ({run_launcher.HOST_TAG: here}, dead, time.time(), WorkerStatus.NOT_FOUND),
        "recycled": ({run_launcher.HOST_TAG: here}, me.pid, me.create_time() - 60, WorkerStatus.NOT_FOUND),
        "cli": ({}, dead, time.time(), WorkerStatus.NOT_FOUND),  # no tag: checked as local (untagged_runs_local)
        "elsewhere": ({run_launcher.HOST_TAG: "another-host"}, dead, time.time(), WorkerStatus.RUNNING),
    }
    runs = {}
    for name, (tags, pid, started, _) in cases.items():
        run_id = create_run_for_test(instance, job_name=name, tags=tags).run_id
        event = dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=name, pid=pid)
        instance.report_dagster_event(event, run_id, timestamp=started)
        runs[name] = instance.get_run_by_id(run_id)
        assert runs[name].status == dg.DagsterRunStatus.STARTED
    health = {name: instance.run_launcher.check_run_worker_health(run) for name, run in runs.items()}
    assert {name: h.status for name, h in health.items()} == {name: c[3] for name, c in cases.items()}
    assert health["dead"].msg == f"run worker on {here}: process {dead} no longer exists"
    strict = run_launcher.LocalRunLauncher(untagged_runs_local=False)
    strict.register_instance(instance)
    assert strict.check_run_worker_health(runs["cli"]).status == WorkerStatus.RUNNING

    failed = {instance.get_run_by_id(run_id).job_name for run_id, _ in run_launcher.fail_dead_runs(instance)}
    assert failed == {"dead", "recycled", "cli"}
    assert {name: instance.get_run_by_id(r.run_id).status.value for name, r in runs.items()} == {
        "alive": "STARTED", "dead": "FAILURE", "recycled": "FAILURE", "cli": "FAILURE", "elsewhere": "STARTED"
    }  # fmt: skip

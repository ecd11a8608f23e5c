"""The instance's run launcher: Dagster's default one, plus a health check of the run worker process.

Why: a run whose worker is killed (SIGKILL, the OOM killer, a reboot) never reports its end. It stays STARTED,
keeps the concurrency-pool slots its steps claimed, and counts against ``max_concurrent_runs``; every later run of
the same pool then waits forever and the queue stops launching. Dagster's run monitoring daemon fails such runs
only when the run launcher can tell whether a run's worker is alive, and the ``DefaultRunLauncher`` cannot. This
launcher launches exactly like the default one (the run worker is a subprocess of the local code server) and
adds that check:

- it tags each run it launches with the host its worker runs on (``run_worker/host``; not under ``quant/``,
  the prefix of the tags that say why a run was started);
- the worker's pid is the pid of the run's RUN_START event (every Dagster event records the pid of the process
  that emitted it; RUN_START comes from the run worker, also for runs ``dagster asset materialize`` executes in
  its own process, which no launcher sees). The worker counts as alive while that pid is a live process that
  started no later than the event (a recycled pid belongs to a process started after the worker died);
- a run whose worker is gone is reported NOT_FOUND: the monitoring daemon marks it FAILURE, and its pool slots
  are freed ``free_slots_after_run_end_seconds`` later (``dagster.yaml``). Step processes the dead worker left
  behind (the pids of the run's STEP_START events, if those processes were created on this host between the
  worker's start and their step's) are stopped first, so nothing of the failed run keeps writing while the
  slots go to the next run.

A worker on another host cannot be checked from here: such runs are reported RUNNING. Runs without the tag
(executed in-process by the CLI) are checked as local when ``untagged_runs_local`` is true, the right setting
when every Dagster process of the instance runs on one machine, as with ``./qa``.

``python -m quant_assets.defs.run_launcher`` makes one such pass without a daemon (``./qa main`` and
``./qa materialize`` start with it): it fails the runs whose worker is gone and frees their slots at once.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import psutil
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus

HOST_TAG = "run_worker/host"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# A live worker started before it emitted RUN_START; psutil's start times (boot time + ticks) can be off by
# about a second, a recycled pid (a process started after the worker died) is later than this by far.
START_TOLERANCE_S = 2.0
STOP_GRACE_S = 5.0


def process_gone(pid: int, started_by: float, started_after: float | None = None) -> str | None:
    """Why process ``pid`` is not the one that ran at ``started_by`` (epoch s), or None if it is.

    With ``started_after``, a process created before that time is not it either (it only shares the pid).
    """
    try:
        proc = psutil.Process(pid)
        created, status = proc.create_time(), proc.status()
    except psutil.NoSuchProcess:
        return f"process {pid} no longer exists"
    if status == psutil.STATUS_ZOMBIE:
        return f"process {pid} has exited (zombie, not yet reaped)"
    if created > started_by + START_TOLERANCE_S:
        return f"pid {pid} now belongs to another process (started {created - started_by:.0f} s after the worker)"
    if started_after is not None and created < started_after - START_TOLERANCE_S:
        return f"pid {pid} belongs to a process older than the run"
    return None


def _pids(instance: dg.DagsterInstance, run_id: str, event: dg.DagsterEventType) -> dict[int, float]:
    """pid -> first timestamp of the run's events of type ``event`` that carry a pid."""
    out: dict[int, float] = {}
    for entry in instance.all_logs(run_id, of_type=event):
        pid = entry.dagster_event.pid if entry.dagster_event else None
        if pid is not None:
            out.setdefault(pid, entry.timestamp)
    return out


def stop_processes(pids: Mapping[int, float], started_after: float) -> list[int]:
    """Stop the processes still alive that were created after ``started_after`` and by their pid's timestamp.

    The window keeps a step that ran on another machine (Celery) from naming an unrelated local process that
    has the same pid. SIGTERM first so a step's own clean-up runs (a half-written lake file's temp file is
    removed), SIGKILL for those still there after STOP_GRACE_S; returns the pids that were stopped.
    """
    procs = []
    for pid, seen in pids.items():
        if process_gone(pid, seen, started_after) is None:
            try:
                proc = psutil.Process(pid)
                proc.terminate()
                procs.append(proc)
            except psutil.NoSuchProcess:
                continue
    _, alive = psutil.wait_procs(procs, timeout=STOP_GRACE_S)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    return [p.pid for p in procs]


class LocalRunLauncher(dg.DefaultRunLauncher):
    """DefaultRunLauncher whose runs run monitoring can check: see the module docstring."""

    def __init__(self, inst_data: Any = None, untagged_runs_local: bool = True):
        super().__init__(inst_data=inst_data)
        self._untagged_runs_local = untagged_runs_local

    @classmethod
    def config_type(cls) -> dict:
        return {
            "untagged_runs_local": dg.Field(
                bool,
                is_required=False,
                default_value=True,
                description=(
                    "Check runs that carry no worker-host tag (executed in-process by the dagster CLI) as if "
                    "their worker ran on this host. True when every Dagster process of the instance runs on one "
                    "machine; set false when CLI runs on other machines share the instance's storage."
                ),
            )
        }

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> LocalRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        """Record the worker's host, then launch as the default launcher does."""
        host = _worker_host(context)
        if host is not None:
            self._instance.add_run_tags(context.dagster_run.run_id, {HOST_TAG: host})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """RUNNING while the worker process lives (or cannot be checked from here), NOT_FOUND once it is gone."""
        here = socket.gethostname()
        host = run.tags.get(HOST_TAG)
        if host != here and not (host is None and self._untagged_runs_local):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker on {host or 'an untagged host'}")
        starts = _pids(self._instance, run.run_id, dg.DagsterEventType.RUN_START)
        if not starts:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START event yet")
        pid, started = max(starts.items(), key=lambda item: item[1])
        gone = process_gone(pid, started)
        if gone is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} on {here} is alive")
        steps = {p: t for p, t in _pids(self._instance, run.run_id, dg.DagsterEventType.STEP_START).items() if p != pid}
        stopped = stop_processes(steps, started_after=started)
        left = f"; stopped the step processes it left running: {stopped}" if stopped else ""
        return CheckRunHealthResult(WorkerStatus.NOT_FOUND, f"run worker on {here}: {gone}{left}")


def _worker_host(context: LaunchRunContext) -> str | None:
    """This host when the run's code server is local (it spawns the worker), else the code server's host."""
    origin = context.dagster_run.remote_job_origin
    if context.workspace is None or origin is None:
        return None
    location = context.workspace.get_code_location(origin.repository_origin.code_location_origin.location_name)
    client = getattr(location, "client", None)
    host = getattr(client, "host", None)
    if host is None or host in LOCAL_HOSTS or getattr(client, "socket", None):
        return socket.gethostname()
    return host


def fail_dead_runs(instance: dg.DagsterInstance) -> Sequence[tuple[str, str]]:
    """One monitoring pass without a daemon: fail the STARTED runs whose worker is gone, free their slots now.

    The daemon waits ``free_slots_after_run_end_seconds`` before freeing the slots of a failed run; here the run's
    processes were checked (or stopped) just before, so its slots are freed at once. Returns (run id, reason).
    """
    launcher = instance.run_launcher
    if not launcher.supports_check_run_worker_health:
        return []
    failed = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        health = launcher.check_run_worker_health(run)
        if health.status in (WorkerStatus.RUNNING, WorkerStatus.SUCCESS):
            continue
        instance.report_run_failed(run, f"Run worker is gone ({health.msg}); marked failed by fail_dead_runs.")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append((run.run_id, health.msg or ""))
    return failed

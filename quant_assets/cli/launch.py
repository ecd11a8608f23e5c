"""Run assets on the Dagster instance through its Python API, with a progress line per step.

The run executes in this process (``execute_job`` with the job's own executor, as ``dagster asset materialize``
does); a thread reads the run's event records from the instance while it runs and prints one line per finished
step and per asset check, with the time since the command started, and where to watch the run in the UI.
Success is the run's own result, not text in a log.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

from quant_assets.cli.inputs import InputError
from quant_assets.cli.stage import UI_URL, Stage, elapsed, say

DEFINITIONS_MODULE = "quant_assets.definitions"
LAUNCH_TAG = "quant_assets/launch"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
SHOWN = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
}


def repository() -> ReconstructableRepository:
    """The project's definitions, reconstructable in the step processes of the multiprocess executor."""
    return ReconstructableRepository.for_module(DEFINITIONS_MODULE, "defs")


def run_stage(instance: dg.DagsterInstance, stage: Stage, started: float) -> dg.DagsterRun:
    """Execute one stage and return its finished run; the progress thread prints while it runs."""
    recon = repository()
    graph = recon.get_definition()
    keys = [dg.AssetKey(name) for name in stage.assets]
    job = graph.get_job(stage.job) if stage.job else graph.get_implicit_job_def_for_assets(keys)
    if job is None:
        raise InputError(f"{', '.join(stage.assets)} mix partitioned and unpartitioned assets: run them separately")
    tags = {LAUNCH_TAG: uuid.uuid4().hex, **_partition_tags(graph, keys, stage)}
    say(f"==> {stage.title}")
    progress = Progress(instance, tags[LAUNCH_TAG], started)
    progress.start()
    try:
        result = dg.execute_job(
            recon.get_reconstructable_job(job.name),
            instance,
            run_config=_run_config(job, stage),
            tags=tags,
            asset_selection=None if stage.job else keys,  # a job runs whole, with its default run config
        )
    except dg.DagsterInvalidConfigError as exc:
        raise _invalid(exc) from None
    finally:
        progress.finish()
    return instance.get_run_by_id(result.run_id)


def _run_config(job: dg.JobDefinition, stage: Stage) -> dict:
    """The stage's run config over a partitioned job's own (daily_job's executor), which Dagster applies to the
    runs a schedule, sensor or backfill launches but not to ``execute_job``."""
    from dagster_shared.merger import deep_merge_dicts

    if not (stage.job and stage.partitions and job.partitioned_config):
        return dict(stage.run_config)
    own = dict(job.partitioned_config.get_run_config_for_partition_key(stage.partitions[0].isoformat()))
    if "execution" in stage.run_config:
        own.pop("execution", None)  # an engine chosen on the command line replaces the job's, not merges with it
    return deep_merge_dicts(own, dict(stage.run_config))


def _invalid(exc: dg.DagsterInvalidConfigError) -> InputError:
    return InputError(f"the run config is not valid: {'; '.join(config_problem(e.message) for e in exc.errors)}")


def submit_backfill(
    instance: dg.DagsterInstance,
    workspace_file: Path,
    job: dg.JobDefinition,
    span: tuple[dt.date, dt.date],
    run_config: Mapping,
) -> tuple[str, int]:
    """Queue one run of ``job`` per session of ``span``, each with ``run_config``, as one backfill; the daemon's
    run queue launches them. This is what `dagster job backfill` does, which takes no run config (and what the
    daemon would do with a requested backfill, except that it would run a single-run-policy job's range as one)."""
    from dagster._cli.workspace.cli_target import (
        get_code_location_from_workspace,
        get_remote_repository_from_code_location,
    )
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._time import get_current_timestamp

    try:
        dg.validate_run_config(job, run_config)
    except dg.DagsterInvalidConfigError as exc:
        raise _invalid(exc) from None
    keys = job.partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(*(d.isoformat() for d in span)))
    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace_file)])) as process:
        workspace = process.create_request_context()
        location = get_code_location_from_workspace(workspace, None)
        repo = get_remote_repository_from_code_location(location, None)
        backfill = _queue_runs(instance, workspace, location, repo, job.name, keys, run_config)
    instance.add_backfill(backfill.with_status(BulkActionStatus.COMPLETED).with_end_timestamp(get_current_timestamp()))
    return backfill.backfill_id, len(keys)


def _queue_runs(instance, workspace, location, repo, job_name: str, keys: list[str], run_config: Mapping):
    """Create and submit a run per partition key, tagged as one backfill's (the backfill itself, not yet stored)."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.execution.job_backfill import create_backfill_run
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp
    from dagster_shared.merger import deep_merge_dicts

    (partition_set,) = [p for p in repo.get_partition_sets() if p.job_name == job_name]
    backfill = PartitionBackfill(
        backfill_id=make_new_backfill_id(),
        partition_set_origin=partition_set.get_remote_origin(),
        status=BulkActionStatus.REQUESTED,
        partition_names=keys,
        from_failure=False,
        reexecution_steps=None,
        tags={},
        backfill_timestamp=get_current_timestamp(),
        run_config=run_config,
    )
    params = location.get_partition_set_execution_params(
        repository_handle=repo.handle, partition_set_name=partition_set.name, partition_names=keys, instance=instance
    )
    remote_job = repo.get_full_job(job_name)
    for data in params.partition_data:
        config = deep_merge_dicts(data.run_config or {}, run_config)
        run = create_backfill_run(workspace, instance, location, remote_job, partition_set, backfill, data.name,
                                  data.tags, config)  # fmt: skip
        instance.submit_run(run.run_id, workspace)
    return backfill


def config_problem(message: str) -> str:
    """The sentence of a config error a person can act on (an unset environment variable hides it after a trace)."""
    for line in message.splitlines():
        if "Error: " in line and "Stack Trace" not in line:
            return line.split("Error: ", 1)[1].strip()
    return message.splitlines()[0].strip()


def _partition_tags(graph, keys: list[dg.AssetKey], stage: Stage) -> dict[str, str]:
    partitioned = [k.to_user_string() for k in keys if graph.asset_graph.get(k).partitions_def is not None]
    if not stage.partitions:
        if partitioned:
            raise InputError(f"{', '.join(partitioned)} are partitioned by session: give a KEY or START...END")
        return {}
    if not partitioned:
        raise InputError(f"{', '.join(stage.assets)} have no partitions: leave out the partition key")
    first, last = (d.isoformat() for d in stage.partitions)
    if first == last:
        return {PARTITION_TAG: first}
    multi_run = [k.to_user_string() for k in keys if not _single_run(graph, k)]
    if multi_run:
        raise InputError(f"{', '.join(multi_run)} take one run per session: use `quant-assets backfill` for a range")
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def _single_run(graph, key: dg.AssetKey) -> bool:
    policy = graph.asset_graph.get(key).backfill_policy
    return policy is not None and policy.max_partitions_per_run is None


class Progress(threading.Thread):
    """Polls the instance for the run carrying ``token`` and prints its steps and checks as they finish."""

    def __init__(self, instance: dg.DagsterInstance, token: str, started: float, poll: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.instance, self.token, self.started, self.poll = instance, token, started, poll
        self.done = threading.Event()
        self.run_id: str | None = None
        self.cursor: str | None = None

    def run(self) -> None:
        while not self.done.wait(self.poll):
            self.report()
        self.report()

    def finish(self) -> None:
        self.done.set()
        self.join()

    def report(self) -> None:
        if self.run_id is None:
            runs = self.instance.get_runs(dg.RunsFilter(tags={LAUNCH_TAG: self.token}), limit=1)
            if not runs:
                return
            self.run_id = runs[0].run_id
            say(f"    run {self.run_id[:8]}: watch it at {UI_URL}/runs/{self.run_id} (`quant-assets ui`)")
        page = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, of_type=SHOWN)
        self.cursor = page.cursor
        for record in page.records:
            say(f"    {elapsed(self.started)} {describe(record.event_log_entry)}")


def describe(entry) -> str:
    """One line for a started or finished step, a check evaluation or the run's end."""
    event = entry.dagster_event
    data = event.event_specific_data
    kind = event.event_type
    if kind == dg.DagsterEventType.STEP_START:
        return f"{event.step_key} started"
    if kind == dg.DagsterEventType.STEP_SUCCESS:
        return f"{event.step_key} done in {data.duration_ms / 1000:.1f} s"
    if kind == dg.DagsterEventType.STEP_FAILURE:
        return f"{event.step_key} FAILED: {_reason(data.error)}"
    if kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        verdict = "passed" if data.passed else f"did not pass ({data.severity.value.lower()})"
        return f"check {data.check_name} on {data.asset_key.to_user_string()} {verdict}"
    if kind == dg.DagsterEventType.RUN_SUCCESS:
        return "run succeeded"
    error = getattr(data, "error", None)  # a run that failed outside any step (a step process that could not
    return f"run FAILED: {_outside_steps(error)}" if error else "run FAILED"  # start): its error, on one line


def _outside_steps(error) -> str:
    """A run failure's error outside any step, on one line. Dagster wraps a step process's start-up error (a
    resource's missing setting) in a DagsterSubprocessError whose first lines say only that a child failed and
    that a config was wrong: the innermost error line before the child's stack trace names the cause."""
    head = error.message.split("Stack Trace:")[0]
    errors = [line.strip() for line in head.splitlines() if _ERROR_LINE.match(line.strip())]
    if not errors:
        return " ".join(head.split())
    name, _, rest = errors[-1].partition(": ")
    return f"{name.rsplit('.', 1)[-1]}: {rest}"


_ERROR_LINE = re.compile(r"^[\w.]+(Error|Exception|Failure): ")
_WRAPPERS = ("DagsterExecutionStepExecutionError", "DagsterResourceFunctionError")  # Dagster's, around the cause


def _reason(error) -> str:
    """The failure's own sentence: the asset's error inside Dagster's wrapper, without the module path of a
    deliberate ``dg.Failure`` (the UI and the log have the whole trace)."""
    if error is None:
        return "see the run in the UI"
    while error.cause is not None and error.cls_name in _WRAPPERS:
        error = error.cause
    first = error.message.strip().splitlines()[0]
    name, sep, rest = first.partition(": ")
    return rest if sep and error.cls_name == "Failure" and name.endswith("Failure") else first

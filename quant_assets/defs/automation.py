"""Schedules (daily run, monthly compaction), the retraining sensor and the run-failure sensor."""

import json
from zoneinfo import ZoneInfo

import dagster as dg

from quant_assets.core import sessions
from quant_assets.core.monitoring import alerts, history
from quant_assets.core.registry import models
from quant_assets.defs.config import SnapshotConfig
from quant_assets.defs.jobs import compaction_job, daily_job, retrain_job
from quant_assets.defs.resources import AlertPolicy, AutomationRunConfig, RegistryResource

DAILY_CRON = "30 17 * * 1-5"  # 17:30 New York, after the close (13:00 on early-close days) and the data lags


@dg.schedule(
    job=daily_job,
    cron_schedule=DAILY_CRON,
    execution_timezone=sessions.EXCHANGE_TZ,
    description="Each NYSE session after the close: that session's partition of daily_job. Weekday holidays skip.",
)
def daily_schedule(context: dg.ScheduleEvaluationContext, automation_run_config: AutomationRunConfig):
    local = context.scheduled_execution_time.astimezone(ZoneInfo(sessions.EXCHANGE_TZ))
    day = local.date()
    if not sessions.is_session(day):
        return dg.SkipReason(f"{day} is not an NYSE session")
    key = day.isoformat()
    return automation_run_config.apply(
        dg.RunRequest(run_key=key, partition_key=key, tags={"quant/trigger": "schedule"})
    )


def retrain_run_config(as_of: str, n_sessions: int) -> dg.RunConfig:
    """Snapshot of the ``n_sessions`` sessions up to the breach day, as known at its close."""
    start = sessions.session_offset(as_of, -(n_sessions - 1)).isoformat()
    return dg.RunConfig(ops={"training_snapshot": SnapshotConfig(start=start, end=as_of, as_of=as_of)})


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads quant.drift_metrics of the champion; when PSI, IC or the 20-day Sharpe turns critical "
    "(a new breach, not a continuing one) and the model is out of its cool-down, requests one retrain_job run "
    "with run key retrain:<model>:<signal>:<date> (the latest such breach when new rows arrive in a batch). "
    "One retrain in flight at a time.",
)
def retrain_on_drift(
    context: dg.SensorEvaluationContext,
    registry: RegistryResource,
    alert_policy: AlertPolicy,
    automation_run_config: AutomationRunConfig,
):
    state = json.loads(context.cursor) if context.cursor else {"seq": 0, "last": {}}
    policy = alert_policy.resolved()
    with registry.connect() as conn:
        champions = models.champions(conn, registry.name)
        if not champions:
            return dg.SkipReason(f"no champion of {registry.name}")
        champion = champions[0].node
        rows = history.read(conn, model=champion)
    new = rows[rows["seq"] > state["seq"]]
    if new.empty:
        return dg.SkipReason(f"no new drift rows for {champion}")
    if context.instance.get_runs(dg.RunsFilter(job_name=retrain_job.name, statuses=IN_FLIGHT), limit=1):
        return dg.SkipReason("a retrain is in flight; new drift rows wait for it")
    breach = alerts.next_retrain(
        rows,
        state["seq"],
        state["last"].get(champion),
        policy.rules(),
        policy.cooldown_sessions,
    )
    state["seq"] = int(new["seq"].max())
    if breach is None:
        return dg.SensorResult(
            skip_reason=f"{len(new)} new drift rows of {champion}: no new breach out of the cool-down",
            cursor=json.dumps(state),
        )
    state["last"][champion] = breach.date
    request = automation_run_config.apply(_retrain_request(breach, champion, policy))
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(state))


def _retrain_request(breach: alerts.Breach, champion: str, policy: AlertPolicy) -> dg.RunRequest:
    """One retrain_job run for ``breach``, keyed so the same breach never asks twice, tagged with what fired."""
    return dg.RunRequest(
        run_key=breach.run_key,
        run_config=retrain_run_config(breach.date, policy.retrain_sessions),
        tags={
            "quant/trigger": "drift",
            "quant/model": champion,
            "quant/signal": breach.signal,
            "quant/metric": breach.metric,
            "quant/value": "n/a" if breach.value is None else f"{breach.value:.4f}",
            "quant/threshold": f"{breach.threshold:g}",
            "quant/date": breach.date,
        },
    )


compaction_schedule = dg.ScheduleDefinition(
    name="compaction_schedule",
    job=compaction_job,
    cron_schedule="0 6 1 * *",
    execution_timezone=sessions.EXCHANGE_TZ,
    description="Monthly, before the open: compact last month's feature files.",
)


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed run launched through the instance (schedule, sensor, backfill, UI) in "
    "quant.run_failures: job, partition, tags, error.",
)
def record_run_failures(context: dg.RunFailureSensorContext, registry: RegistryResource):
    run = context.dagster_run
    error = context.failure_event.message or "run failed"
    with registry.connect() as conn:
        history.record_run_failure(conn, run.run_id, run.job_name, run.tags.get("dagster/partition"), run.tags, error)

"""Schedules (daily run, daily compaction of the month just ended), the sensors that act on drift (the champion's
state, its retraining, the decision on a challenger in shadow), the compaction sensor (after runs and backfills
that wrote features) and the run-failure sensor."""

import datetime as dt
import json
from collections import defaultdict
from zoneinfo import ZoneInfo

import dagster as dg

from quant_assets.core import sessions
from quant_assets.core.features import compaction
from quant_assets.core.monitoring import actions, alerts, history
from quant_assets.core.registry import champion, models, states
from quant_assets.defs import reporting
from quant_assets.defs.config import CompactionConfig, SnapshotConfig
from quant_assets.defs.features import alt_features, price_features
from quant_assets.defs.jobs import compaction_job, daily_job, promotion_job, retrain_job
from quant_assets.defs.resources import AlertPolicy, AutomationRunConfig, LakeResource, RegistryResource

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
    policy = alert_policy.resolved(registry.name)
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


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Carries out the alert matrix's state actions on the champion from quant.drift_metrics: a new "
    "critical IC (5-day mean < 0.01) or 20-day Sharpe (< 0 for 5 sessions) de-risks it, IC < 0 for 3 sessions "
    "pauses it, and a de-risked champion clear for restore_sessions sessions is live again (monitoring.actions). "
    "Each change is a row of quant.model_states, effective from the next session, recorded once (a restart or "
    "a backlog repeats none), and an observation on trained_model. Retrains are retrain_on_drift's.",
)
def model_states_on_drift(context: dg.SensorEvaluationContext, registry: RegistryResource, alert_policy: AlertPolicy):
    policy = alert_policy.resolved(registry.name)
    acting = policy.actions()
    with registry.connect() as conn:
        champions = models.champions(conn, registry.name)
        if not champions:
            return dg.SkipReason(f"no champion of {registry.name}")
        ref = champions[0]
        made = actions.settle(conn, ref, None, policy.rules(), acting, f"sensor:{context.sensor_name}")
        now = states.current(conn, ref)
    if not made:
        return dg.SkipReason(f"{ref.node} is {now.state}: its drift rows call for no change")
    events = [reporting.state_change(ref.node, c, exposure=acting.exposure(c.to_state)) for c in made]
    summary = "; ".join(f"{c.from_state} -> {c.to_state} after {c.date} ({c.signal})" for c in made)
    return dg.SensorResult(asset_events=events, skip_reason=f"{ref.node}: {summary}")


@dg.sensor(
    job=promotion_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads the drift rows of every challenger in shadow; when one has a row newer than the last it "
    "asked about, requests one promotion_job run (run key promotion:<model>@<date>;...): promotion_decision "
    "then decides it, or says it waits for more shadow sessions. One decision in flight at a time.",
)
def promote_after_shadow(
    context: dg.SensorEvaluationContext, registry: RegistryResource, automation_run_config: AutomationRunConfig
):
    seen = json.loads(context.cursor) if context.cursor else {}
    with registry.connect() as conn:
        pending = {ref.node: history.last_date(conn, ref.node) for ref in champion.shadows(conn, registry.name)}
    latest = {node: day.isoformat() for node, day in pending.items() if day is not None}
    fresh = {node: day for node, day in latest.items() if seen.get(node) != day}
    if not fresh:
        waiting = ", ".join(f"{n} (drift to {d})" for n, d in latest.items()) or "none"
        return dg.SensorResult(
            skip_reason=f"no new drift row of a shadow; in shadow: {waiting}", cursor=json.dumps(latest)
        )
    if context.instance.get_runs(dg.RunsFilter(job_name=promotion_job.name, statuses=IN_FLIGHT), limit=1):
        return dg.SkipReason("a promotion decision is in flight; new shadow rows wait for it")
    key = ";".join(f"{node}@{day}" for node, day in sorted(fresh.items()))
    request = dg.RunRequest(run_key=f"promotion:{key}", tags={"quant/trigger": "shadow", "quant/shadows": key})
    return dg.SensorResult(run_requests=[automation_run_config.apply(request)], cursor=json.dumps(latest))


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


# --- compaction without an operator ---------------------------------------------------------------------------

FEATURE_ASSETS = (price_features.key, alt_features.key)
BACKFILL_TAG = "dagster/backfill"
BACKFILL_ACTIVE = {"REQUESTED", "CANCELING", "FAILING"}  # BulkActionStatus values of a backfill not yet over
PAGE = 1000


def compaction_request(months: list[str], trigger: str, run_key: str | None = None) -> dg.RunRequest:
    """One compaction_job run for ``months`` (the op looks at those months' files only)."""
    return dg.RunRequest(
        run_key=run_key,
        run_config=dg.RunConfig(ops={"compact_feature_files": CompactionConfig(months=months)}),
        tags={"quant/trigger": trigger, "quant/months": f"{months[0]}..{months[-1]}"},
    )


def exchange_today() -> dt.date:
    return dt.datetime.now(ZoneInfo(sessions.EXCHANGE_TZ)).date()


def run_months(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The months of the feature partitions one run materialised (the CLI's in-process runs)."""
    entries = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    events = [e.event_log_entry.dagster_event for e in entries]
    return sorted({e.partition[:7] for e in events if e.asset_key in FEATURE_ASSETS and e.partition})


def _written(instance: dg.DagsterInstance, after: dict[str, int]) -> dict[str, set[str]]:
    """The months of the feature partitions materialised after each asset's last seen event (``after``, by
    asset, advanced in place), by run."""
    by_run: dict[str, set[str]] = defaultdict(set)
    for key in FEATURE_ASSETS:
        name, more = key.to_user_string(), True
        while more:
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=after.get(name)), limit=PAGE, ascending=True
            )
            for r in page.records:
                by_run[r.run_id].update([r.partition_key[:7]] if r.partition_key else [])
                after[name] = r.storage_id
            more = page.has_more
    return by_run


def _ready(instance: dg.DagsterInstance, by_run: dict[str, set[str]], held: dict[str, list[str]]) -> set[str]:
    """The months written by runs outside a backfill, plus those of every backfill that is over; the months of
    a backfill still running are added to ``held`` (by backfill id) until it is."""
    ready: set[str] = set()
    runs = instance.get_runs(dg.RunsFilter(run_ids=list(by_run))) if by_run else []
    for run in runs:
        backfill = run.tags.get(BACKFILL_TAG)
        if backfill:
            held[backfill] = sorted(set(held.get(backfill, [])) | by_run[run.run_id])
        else:
            ready |= by_run[run.run_id]
    for backfill_id in list(held):
        backfill = instance.get_backfill(backfill_id)
        if backfill is None or backfill.status.value not in BACKFILL_ACTIVE:
            ready |= set(held.pop(backfill_id))
    return ready


@dg.sensor(
    job=compaction_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a run or a backfill that wrote feature partitions (a backfill: once it is over, so its "
    "months are compacted once), requests one compaction_job run for the complete months it wrote that have "
    "at least 8 uncompacted files; the current month waits for compaction_schedule at its end.",
)
def compact_after_writes(
    context: dg.SensorEvaluationContext, lake: LakeResource, automation_run_config: AutomationRunConfig
):
    state = json.loads(context.cursor) if context.cursor else {"after": {}, "held": {}}
    ready = _ready(context.instance, _written(context.instance, state["after"]), state["held"])
    months = compaction.due(lake.path, compaction.complete_months(ready, exchange_today())) if ready else []
    if not months:
        waiting = f"; backfills still running: {', '.join(sorted(state['held']))}" if state["held"] else ""
        return dg.SensorResult(skip_reason=f"no complete month to compact{waiting}", cursor=json.dumps(state))
    seen = max(state["after"].values(), default=0)  # the last event read: a new key for each new request
    request = automation_run_config.apply(
        compaction_request(months, "written", run_key=f"compaction:{seen}:{','.join(months)}")
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(state))


@dg.schedule(
    job=compaction_job,
    cron_schedule="0 6 * * *",
    execution_timezone=sessions.EXCHANGE_TZ,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Each morning, before the open and after the previous session's daily run: compacts the month "
    "that has just ended once it has at least 8 uncompacted files per family version (so each month once, "
    "on the first morning after its end; a missed morning is caught the next), and skips otherwise.",
)
def compaction_schedule(
    context: dg.ScheduleEvaluationContext, lake: LakeResource, automation_run_config: AutomationRunConfig
):
    day = context.scheduled_execution_time.astimezone(ZoneInfo(sessions.EXCHANGE_TZ)).date()
    month = f"{day.replace(day=1) - dt.timedelta(days=1):%Y-%m}"
    months = compaction.due(lake.path, [month])
    if not months:
        return dg.SkipReason(f"{month} is compacted (or has fewer than 8 uncompacted files per family version)")
    return automation_run_config.apply(
        compaction_request(months, "schedule", run_key=f"compaction:{month}:{day.isoformat()}")
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

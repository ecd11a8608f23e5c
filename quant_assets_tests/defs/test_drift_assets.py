"""drift_metrics, its blocking check, the sensors and the daily schedule on a Postgres-backed instance."""

import datetime as dt
import json
import os
import re
import shutil
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
import yaml

from quant_assets.core import sessions
from quant_assets.core.monitoring import history
from quant_assets.core.monitoring.profiles import ModelProfile
from quant_assets.core.registry import artifacts, models, promotion, states
from quant_assets.core.registry import champion as champion_module
from quant_assets.core.research.training import Ensemble, TrainConfig
from quant_assets.core.storage import pg
from quant_assets.defs.automation import (
    daily_schedule,
    model_states_on_drift,
    promote_after_shadow,
    record_run_failures,
    retrain_on_drift,
)
from quant_assets.defs.config import TrainingConfig
from quant_assets.defs.drift import drift_metrics
from quant_assets.defs.executor import engine_executor
from quant_assets.defs.jobs import daily_job
from quant_assets.defs.models import predictions, trained_model, training_snapshot
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.promotion import promotion_decision
from quant_assets.defs.resources import (
    AlertPolicy,
    AutomationRunConfig,
    LakeResource,
    RegistryResource,
    default_resources,
)
from quant_assets.paths import PROJECT_ROOT
from quant_assets_tests.run_configs import PROMOTED_RUN_CONFIG

AS_OF = dt.date(2024, 1, 2)  # the session a test's promotion is decided on

SCORED = {"dagster/asset_partition_range_start": "2024-06-03", "dagster/asset_partition_range_end": "2024-06-28"}
WARN = {"ops": {"drift_metrics": {"config": {"on_critical": "warn"}}}}


def _count(url, where="true"):
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM quant.drift_metrics WHERE {where}")
        return cur.fetchone()[0]


def _assert_a_range_stores_a_row_per_session(run, pg_db) -> dg.ExecuteInProcessResult:
    """drift_metrics over June 3-28 (warn on critical): its metadata, check, rows and their PSI samples."""
    result = run([drift_metrics], tags=SCORED, run_config=WARN)
    assert result.success
    meta = result.asset_materializations_for_node("drift_metrics")[0].metadata
    assert meta["dagster/row_count"].value == 19 and meta["models"].value == "model:equity_lgbm:v1"
    assert meta["rows_computed"].value == 19
    assert "psi_band" in meta["latest"].value and "ic_mean_5" in meta["latest"].value
    for plot in ("ic_plot", "psi_plot"):
        assert "data:image/png;base64," in meta[plot].value
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "alert_levels" and check.severity == dg.AssetCheckSeverity.WARN
    assert check.passed == (meta["critical_days"].value == 0)
    assert _count(pg_db) == 19  # June 3-28 holds 19 sessions (June 19 is a holiday)
    # Each row holds its PSI's sample (40 names x 5 sessions) and the no-drift level of the mean at that size; the
    # UI says what a band means and shows the level beside the mean.
    with pg.connect(pg_db) as conn:
        stored = history.read(conn)
    assert (stored["psi_n"] == 200).all() and (stored["psi_noise"] > 0).all()
    assert "psi_noise" in meta["latest"].value and "no-drift" in meta["psi_bands"].value
    assert meta["features_without_psi"].value == {}
    # Each session's partition carries its own figures as numbers (Dagster's Plots tab charts them by partition),
    # though the 19 sessions ran as one single-run step.
    observed = {o.partition: o.metadata for o in result.asset_observations_for_node("drift_metrics")}
    assert len(observed) == 19 and set(observed) == {d.isoformat() for d in stored["date"]}
    for row in stored.itertuples():
        figures = observed[row.date.isoformat()]
        assert (figures["model"].value, figures["state"].value, figures["level"].value) == (
            row.model,
            "live",
            row.level,
        )
        assert figures["psi_mean"].value == row.psi_mean
        assert figures["ic"].value == row.ic if pd.notna(row.ic) else "ic" not in figures
    return result


def _outcome(result: dg.ExecuteInProcessResult) -> tuple[dict, dict, dict]:
    """What a drift run shows: its metadata (but how many rows it computed), its check and its observations."""
    meta = result.asset_materializations_for_node("drift_metrics")[0].metadata
    check = result.get_asset_check_evaluations()[0]
    observed = {o.partition: o.metadata for o in result.asset_observations_for_node("drift_metrics")}
    shown = {k: v for k, v in meta.items() if k != "rows_computed"}
    return shown, {"passed": check.passed, "severity": check.severity, **check.metadata}, observed


def _assert_a_rerun_reads_unchanged_rows_back(run, pg_db, first: dg.ExecuteInProcessResult) -> None:
    """Re-running the range over unchanged inputs computes and writes nothing (every row keeps its seq) and shows
    what the first run showed: the same table, plots, check and observations."""
    with pg.connect(pg_db) as conn:
        before = history.read(conn)
    again = run([drift_metrics], tags=SCORED, run_config=WARN)
    assert again.success
    assert again.asset_materializations_for_node("drift_metrics")[0].metadata["rows_computed"].value == 0
    with pg.connect(pg_db) as conn:
        assert history.read(conn).to_json() == before.to_json()
    assert _outcome(again) == _outcome(first)


def _assert_the_profile_is_computed_once_and_read_back_bit_for_bit(run, pg_db, root) -> None:
    """The first drift run stored the model's profile; it is the one computed from the artifact and snapshot,
    to the last bit, and a later run reads it: with the snapshots gone from the lake the day's row is the same."""
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT m.name, m.version, p.profile FROM quant.model_profiles p JOIN quant.models m USING (model_id)"
        )
        ((name, version, text),) = cur.fetchall()
        ref = models.model(conn, f"{name}:v{version}")
        computed = ModelProfile.of(
            ref.node, champion_module.snapshot_of(conn, root, ref), artifacts.load_model(conn, ref)
        )
        first = history.read(conn, start="2024-06-10", end="2024-06-10").iloc[0]
    assert (name, version) == ("equity_lgbm", 1) and text == computed.to_json()
    read = ModelProfile.from_json(text)
    assert all(read.feature_refs[f].cuts.tobytes() == r.cuts.tobytes() for f, r in computed.feature_refs.items())
    assert read.prediction_ref.shares.tobytes() == computed.prediction_ref.shares.tobytes()
    with pg.connect(pg_db) as conn, conn.cursor() as cur:  # its fingerprint lost: the day is computed again
        cur.execute("UPDATE quant.drift_metrics SET inputs = NULL WHERE date = '2024-06-10'")
    shutil.move(root / "snapshots", root.parent / "snapshots-away")
    try:
        assert run([drift_metrics], partition_key="2024-06-10", run_config=WARN).success
    finally:
        shutil.move(root.parent / "snapshots-away", root / "snapshots")
    with pg.connect(pg_db) as conn:
        again = history.read(conn, start="2024-06-10", end="2024-06-10").iloc[0]
    assert again["seq"] > first["seq"] and _count(pg_db) == 19  # replaced, not added
    assert again.drop(["seq", "run_id"]).to_json() == first.drop(["seq", "run_id"]).to_json()


def _assert_critical_fails_its_check_and_the_run_goes_on(resources, pg_db, dagster_instance) -> None:
    """A critical level fails the alert_levels check (severity ERROR) and the row is stored; the check does not
    block, so the live book downstream still trades under the state the breach calls for.
    (psi_noise_quantile 0: no sample-size level, so any PSI above 0 is critical; 40 names x 5 sessions' own
    no-drift level is above these days' mean PSI, which the sample-aware band therefore leaves stable)"""
    strict = {**resources, "alert_policy": AlertPolicy(psi_critical=0.0, psi_noise_quantile=0.0)}
    breached = dg.materialize(
        [drift_metrics], partition_key="2024-06-11", instance=dagster_instance, resources=strict, raise_on_error=False
    )
    assert breached.success
    evaluation = breached.get_asset_check_evaluations()[0]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert not drift_metrics.check_specs_by_output_name["drift_metrics_alert_levels"].blocking
    assert _count(pg_db, "date = '2024-06-11' AND level = 'critical'") == 1


def _assert_a_failed_run_is_recorded(failed, pg_db, dagster_instance) -> None:
    failure = dagster_instance.all_logs(failed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name=record_run_failures.name,
        dagster_event=failure,
        dagster_instance=dagster_instance,
        dagster_run=dagster_instance.get_run_by_id(failed.run_id),
        resources={"registry": RegistryResource(url=pg_db)},
    ).for_run_failure()
    record_run_failures(context)
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, partition_key FROM quant.run_failures")
        assert cur.fetchall() == [(failed.run_id, "2024-03-01")]


def test_drift_metrics_upserts_flags_critical_days_and_fails_without_inputs(
    feature_lake, tmp_path, pg_db, dagster_instance
):
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    resources = {
        "lake": LakeResource(root=str(root)),
        "registry": RegistryResource(url=pg_db),
        "alert_policy": AlertPolicy(),
    }
    run = lambda assets, **kw: dg.materialize(assets, instance=dagster_instance, resources=resources, **kw)  # noqa: E731
    assert run([training_snapshot, trained_model, promotion_decision], run_config=PROMOTED_RUN_CONFIG).success
    assert run([predictions], tags=SCORED).success

    first = _assert_a_range_stores_a_row_per_session(run, pg_db)
    _assert_the_profile_is_computed_once_and_read_back_bit_for_bit(run, pg_db, root)
    _assert_a_rerun_reads_unchanged_rows_back(run, pg_db, first)
    _assert_critical_fails_its_check_and_the_run_goes_on(resources, pg_db, dagster_instance)

    # No predictions to monitor: the run fails with a reason and writes nothing.
    empty = run([drift_metrics], partition_key="2024-03-01", raise_on_error=False)
    assert not empty.success and _count(pg_db, "date = '2024-03-01'") == 0
    assert "no predictions of equity_lgbm" in str(empty.get_step_failure_events()[0].event_specific_data.error)
    _assert_a_failed_run_is_recorded(empty, pg_db, dagster_instance)


# --- the retraining sensor ------------------------------------------------------------------------------------


def _row(day: str, **levels) -> dict:
    base = {"ic": "ok", "ic_negative": "ok", "psi": "ok", "sharpe": "ok"}
    return {
        "date": sessions.as_date(day),
        "model": "model:equity_lgbm:v1",
        "prediction_date": sessions.previous_session(day),
        "n_names": 40,
        "ic": 0.05,
        "rank_ic": 0.05,
        "ic_mean_5": 0.0 if levels.get("ic") == "critical" else 0.05,
        "hit_rate": 0.5,
        "net_return": 0.001,
        "sharpe_5": 1.0,
        "sharpe_20": 1.0,
        "psi_mean": 0.4 if levels.get("psi") == "critical" else 0.05,
        "psi_max": 0.5,
        "psi_max_feature": "vol_20",
        "prediction_psi": 0.05,
        "psi": {"vol_20": 0.5},
        "levels": {**base, **levels},
        "level": "critical" if levels else "ok",
        "actions": ["retrain"] if levels else [],
        "reasons": {},
    }


@pytest.fixture
def champion(pg_db, tmp_path):
    frame = pd.DataFrame({"date": [1] * 50 + [2] * 50, "x": range(100), "label": [i % 7 for i in range(100)]})
    model = Ensemble.fit(frame, ["x"], TrainConfig(num_boost_round=3, seeds=(1,), params={"min_data_in_leaf": 5}))
    oos = frame.assign(entity_key=frame["x"].astype(str), prediction=model.predict(frame))[["date", "entity_key"]]
    files = artifacts.save_model_files(tmp_path, "equity_lgbm", model.to_bytes(), oos)
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.05]})
    with pg.connect(pg_db) as conn:
        ref = models.register_model(
            conn, "equity_lgbm", "S", {"x": "1"}, {}, "c", ("2024-01-02", "2024-04-30"), files, metrics
        )
        promotion.record(conn, ref, "promoted", "first champion", as_of=AS_OF)
    return ref


def _tick(instance, url, cursor=None, policy=None, run_config_file=""):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "registry": RegistryResource(url=url),
            "alert_policy": policy or AlertPolicy(cooldown_sessions=5),
            "automation_run_config": AutomationRunConfig(path=run_config_file),
        },
    )
    result = retrain_on_drift(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor
    return list(result.run_requests or []), result.cursor


def _store(url, *rows):
    with pg.connect(url) as conn:
        history.upsert(conn, list(rows), "test-run")


@pytest.fixture
def resolvable_settings(monkeypatch, pg_url):
    """QUANT_PG_URL set (./qa sets it; a bare pytest run may not): validate_run_config resolves every resource's
    dg.EnvVar, and QUANT_PG_URL has no default. Only resolved, never connected to."""
    monkeypatch.setenv("QUANT_PG_URL", os.environ.get("QUANT_PG_URL") or pg_url)


@pytest.mark.usefixtures("resolvable_settings")
def test_retrain_sensor_one_request_per_breach_with_cool_down(pg_db, dagster_instance, champion):
    requests, cursor = _tick(dagster_instance, pg_db)
    assert requests == [] and cursor is None  # no drift rows yet

    _store(pg_db, _row("2024-07-01"), _row("2024-07-02"))
    requests, cursor = _tick(dagster_instance, pg_db, cursor)
    assert requests == [] and json.loads(cursor)["seq"] > 0  # below threshold: seen, nothing asked

    _store(pg_db, _row("2024-07-03", psi="critical"))
    requests, cursor = _tick(dagster_instance, pg_db, cursor)
    assert len(requests) == 1
    req = requests[0]
    assert req.run_key == "retrain:model:equity_lgbm:v1:psi:2024-07-03"
    assert req.tags["quant/metric"] == "psi_mean" and req.tags["quant/value"] == "0.4000"
    assert req.tags["quant/threshold"] == "0.25" and req.tags["quant/date"] == "2024-07-03"
    snap = req.run_config["ops"]["training_snapshot"]["config"]
    assert (
        snap["as_of"] == snap["end"] == "2024-07-03"
        and len(sessions.sessions_between(snap["start"], snap["end"])) == 250
    )
    # A valid run of retrain_job, whose trained_model is a graph: its config (typed, as before) reaches its ops.
    from quant_assets.definitions import defs

    retrain = defs.resolve_job_def("retrain_job")
    assert dg.validate_run_config(retrain, req.run_config)["ops"]["trained_model.plan_folds"]["config"]["n_folds"] == 4
    typed = dg.RunConfig(ops={"trained_model": TrainingConfig(n_folds=2, seeds=[7])}).to_config_dict()
    ops = dg.validate_run_config(retrain, typed)["ops"]
    assert ops["trained_model.plan_folds"]["config"]["n_folds"] == 2
    assert ops["trained_model.register_model"]["config"]["seeds"] == [7]

    # The same breach again (a restart with the saved cursor, or the breach continuing): nothing new.
    assert _tick(dagster_instance, pg_db, cursor)[0] == []
    _store(pg_db, _row("2024-07-05", psi="critical", ic="critical"))
    requests, cursor = _tick(dagster_instance, pg_db, cursor)
    assert requests == []  # psi continues; ic is a new breach but inside the 5-session cool-down

    # Re-running a breached day replaces its row (new seq): still the same breach, still nothing.
    _store(pg_db, _row("2024-07-03", psi="critical"))
    assert _tick(dagster_instance, pg_db, cursor)[0] == []

    # Recovery, then a new breach after the cool-down: exactly one more request.
    _store(pg_db, _row("2024-07-08"), _row("2024-07-09"), _row("2024-07-10", ic="critical"))
    requests, cursor = _tick(dagster_instance, pg_db, cursor)
    assert requests == []  # 07-10 is 4 sessions after the request of 07-03: still cooling down
    _store(pg_db, _row("2024-07-11"), _row("2024-07-12", ic="critical"))
    requests, cursor = _tick(dagster_instance, pg_db, cursor)
    assert [r.run_key for r in requests] == ["retrain:model:equity_lgbm:v1:ic:2024-07-12"]
    assert _tick(dagster_instance, pg_db, cursor)[0] == []

    # A backlog (the daemon was down): one request, on the latest breach out of the cool-down.
    _store(
        pg_db,
        *[_row(d) for d in ("2024-07-15", "2024-08-01", "2024-09-02")],
        *[_row(d, psi="critical") for d in ("2024-07-16", "2024-08-02")],
        _row("2024-09-03", ic="critical"),
    )
    requests, cursor = _tick(dagster_instance, pg_db, cursor)
    assert [r.run_key for r in requests] == ["retrain:model:equity_lgbm:v1:ic:2024-09-03"]
    assert _tick(dagster_instance, pg_db, cursor)[0] == []


def _state_tick(instance, url) -> list:
    """One tick of model_states_on_drift (a fresh context: it keeps no cursor, the registry is its memory)."""
    context = dg.build_sensor_context(
        instance=instance,
        sensor_name="model_states_on_drift",
        resources={"registry": RegistryResource(url=url), "alert_policy": AlertPolicy(restore_sessions=0)},
    )
    result = model_states_on_drift(context)
    return [] if isinstance(result, dg.SkipReason) else list(result.asset_events)


@pytest.mark.usefixtures("resolvable_settings")
def test_the_state_sensor_de_risks_pauses_and_repeats_nothing_after_a_restart_or_an_approval(
    pg_db, dagster_instance, champion
):
    assert _state_tick(dagster_instance, pg_db) == []  # no drift rows yet
    _store(pg_db, _row("2024-07-01"), _row("2024-07-02", ic="critical"))
    (event,) = _state_tick(dagster_instance, pg_db)
    assert event.asset_key == dg.AssetKey("trained_model")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert (meta["from"], meta["to"], meta["information of"], meta["rule"]) == ("live", "de-risked", "2024-07-02", "ic")
    assert (meta["ic_mean_5"], meta["exposure"]) == (0.0, 0.5)
    assert _state_tick(dagster_instance, pg_db) == []  # a restart: the change is recorded, nothing repeated

    _store(pg_db, _row("2024-07-03", ic="critical"), _row("2024-07-05", ic="critical", ic_negative="critical"))
    assert [e.metadata["to"].value for e in _state_tick(dagster_instance, pg_db)] == ["paused"]
    with pg.connect(pg_db) as conn:
        states.approve(conn, champion, "ana", "reviewed the August IC", dt.date(2024, 7, 5))
    _store(pg_db, _row("2024-07-08", ic="critical", ic_negative="critical"))  # the breach ana saw, continuing
    assert _state_tick(dagster_instance, pg_db) == []
    _store(pg_db, _row("2024-07-09"), _row("2024-07-10", ic="critical", ic_negative="critical"))  # a new one
    assert [e.metadata["to"].value for e in _state_tick(dagster_instance, pg_db)] == ["paused"]
    with pg.connect(pg_db) as conn:
        rows = states.transitions(conn, "equity_lgbm")
    assert rows[["from_state", "to_state", "as_of", "effective", "actor"]].astype(str).values.tolist() == [
        ["shadow", "live", "2024-01-02", "2024-01-03", "job"],
        ["live", "de-risked", "2024-07-02", "2024-07-03", "sensor:model_states_on_drift"],
        ["de-risked", "paused", "2024-07-05", "2024-07-08", "sensor:model_states_on_drift"],
        ["paused", "live", "2024-07-05", "2024-07-08", "user:ana"],
        ["live", "paused", "2024-07-10", "2024-07-11", "sensor:model_states_on_drift"],
    ]


def test_the_approval_job_resumes_a_paused_model_and_refuses_without_cause(pg_db, dagster_instance, champion):
    """approve_model_job, as the UI's launchpad runs it: the change recorded as the user's, an observation on
    trained_model; a live model, or a blank reason, fails the run with the reason."""
    from quant_assets.defs.jobs import approve_model_job

    def run(**config):
        return approve_model_job.execute_in_process(
            run_config={"ops": {"approve_model": {"config": config}}},
            instance=dagster_instance,
            resources={"registry": RegistryResource(url=pg_db)},
            raise_on_error=False,
        )

    refused = run(model="equity_lgbm:v1", approver="ana", reason="ok", as_of="2024-07-08")
    assert not refused.success
    assert "model:equity_lgbm:v1 is live: only a paused or de-risked model" in str(refused.all_events)
    _store(pg_db, _row("2024-07-01", ic="critical", ic_negative="critical"))
    with pg.connect(pg_db) as conn:
        states.record(conn, champion, states.Decision("2024-07-01", "live", "paused", "ic_negative"), "sensor:s")
    assert not run(model="equity_lgbm", approver="ana", reason="  ").success
    done = run(model="equity_lgbm", approver="ana", reason="vendor outage explained the IC")  # as_of: last row
    assert done.success and done.output_for_node("approve_model") == "model:equity_lgbm:v1"
    (observed,) = [
        e.event_specific_data.asset_observation for e in done.all_events if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert observed.metadata["approver"].value == "ana" and observed.metadata["information of"].value == "2024-07-01"
    with pg.connect(pg_db) as conn:
        assert states.current(conn, champion) == states.State("live", dt.date(2024, 7, 1), dt.date(2024, 7, 2))


def test_retrain_sensor_ignores_a_failed_drift_run_and_waits_for_a_retrain_in_flight(
    feature_lake, tmp_path, pg_db, dagster_instance, champion
):
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    resources = {"lake": LakeResource(root=str(root)), "registry": RegistryResource(url=pg_db)}
    failed = dg.materialize(
        [drift_metrics],
        partition_key="2024-06-03",
        instance=dagster_instance,
        resources={**resources, "alert_policy": AlertPolicy(psi_critical=0.0)},
        raise_on_error=False,
    )
    assert not failed.success and _count(pg_db) == 0  # no predictions: a failed run, no row
    assert _tick(dagster_instance, pg_db)[0] == []

    _store(pg_db, _row("2024-07-01", ic="critical"))
    dagster_instance.add_run(
        dg.DagsterRun(job_name="retrain_job", run_id="inflight", status=dg.DagsterRunStatus.STARTED)
    )
    assert _tick(dagster_instance, pg_db)[0] == []
    dagster_instance.report_run_failed(dagster_instance.get_run_by_id("inflight"))
    assert [r.run_key for r in _tick(dagster_instance, pg_db)[0]] == ["retrain:model:equity_lgbm:v1:ic:2024-07-01"]


# --- the daily schedule ----------------------------------------------------------------------------------------


def _schedule_tick(instance, when, run_config=None):
    """The daily schedule's tick at ``when``, with the engine of its runs as the deployment gives it. The context
    closes here, before ``instance``: one left to the garbage collector would reinstate the closed instance's
    state storage as Dagster's current one, and a later materialize in this process would fail on it."""
    resources = {"automation_run_config": run_config or default_resources()["automation_run_config"]}
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=resources) as context:
        return daily_schedule(context)


@pytest.mark.parametrize(
    "day, expected",
    [
        ("2024-07-03", "2024-07-03"),  # a session
        ("2024-07-04", None),  # Independence Day
        ("2024-11-29", "2024-11-29"),  # early close: still a session
        ("2024-12-25", None),
        ("2025-01-09", None),  # national day of mourning (Carter): the exchange was closed
        ("2026-11-25", "2026-11-25"),
        ("2026-11-26", None),  # Thanksgiving
    ],
)
def test_daily_schedule_ticks_after_the_close_on_sessions_only(day, expected):
    when = dt.datetime.fromisoformat(f"{day}T17:30").replace(tzinfo=ZoneInfo(sessions.EXCHANGE_TZ))
    with dg.instance_for_test() as instance:
        result = _schedule_tick(instance, when)
    if expected is None:
        assert isinstance(result, dg.SkipReason) and "not an NYSE session" in result.skip_message
    else:
        assert (result.partition_key, result.run_key) == (expected, expected)
        assert expected in trading_days.get_partition_keys(current_time=when)  # today's session is a partition
    assert daily_schedule.cron_schedule == "30 17 * * 1-5" and daily_schedule.job_name == daily_job.name


# --- the engine of the runs the schedules and sensors request (QUANT_RUN_CONFIG) ----------------------------------

CELERY_YAML = PROJECT_ROOT / "deploy" / "celery.yaml"
CELERY_BLOCK = yaml.safe_load(CELERY_YAML.read_text())["execution"]


@pytest.mark.usefixtures("resolvable_settings")
def test_the_schedules_runs_take_the_execution_block_of_the_run_config_file_read_at_each_tick(monkeypatch, tmp_path):
    from quant_assets.definitions import defs

    when = dt.datetime.fromisoformat("2024-07-03T17:30").replace(tzinfo=ZoneInfo(sessions.EXCHANGE_TZ))
    with dg.instance_for_test() as instance:
        tick = lambda run_config=None: _schedule_tick(instance, when, run_config)  # noqa: E731
        assert tick().run_config == {}  # QUANT_RUN_CONFIG empty: the executor's default engine
        monkeypatch.setenv("QUANT_RUN_CONFIG", "deploy/celery.yaml")  # read at the tick (dg.EnvVar), from the root
        request = tick()
        assert (request.partition_key, request.run_config) == ("2024-07-03", {"execution": CELERY_BLOCK})
        execution = dg.validate_run_config(defs.resolve_job_def("daily_job"), request.run_config)["execution"]
        assert execution[engine_executor.name]["celery"]["broker"] == "pyamqp://guest:guest@127.0.0.1:5672//"

        (tmp_path / "ops_only.yaml").write_text("ops: {}\n")
        (tmp_path / "broken.yaml").write_text("execution: [\n")
        for name, message in [
            ("absent.yaml", "cannot read run config file '{}': No such file or directory"),
            ("ops_only.yaml", "'{}' has no execution block (execution: {{config: {{celery: ...}}}})"),
            ("broken.yaml", "'{}' is not YAML: while parsing a flow node expected the node content"),
        ]:
            with pytest.raises(dg.DagsterResourceFunctionError) as raised:
                tick(AutomationRunConfig(path=str(tmp_path / name)))
            cause = str(raised.value.__cause__)
            assert cause.startswith("QUANT_RUN_CONFIG: " + message.format(tmp_path / name)) and "\n" not in cause

    # A request that names its own engine keeps it.
    in_process = dg.RunRequest(run_config={"execution": {"config": {"in_process": {}}}})
    assert AutomationRunConfig(path=str(CELERY_YAML)).apply(in_process).run_config == in_process.run_config


@pytest.mark.usefixtures("resolvable_settings")
def test_the_retrain_sensors_run_keeps_its_typed_config_and_takes_the_files_engine(pg_db, dagster_instance, champion):
    from quant_assets.definitions import defs

    _store(pg_db, _row("2024-07-03", psi="critical"))
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:
        _tick(dagster_instance, pg_db, run_config_file="deploy/absent.yaml")
    assert "QUANT_RUN_CONFIG: cannot read run config file" in str(raised.value.__cause__)

    # The tick failed before the sensor read anything (no cursor came back): from the same cursor, with the file
    # right, the breach is asked for.
    (request,), _ = _tick(dagster_instance, pg_db, run_config_file="deploy/celery.yaml")
    assert request.run_key == "retrain:model:equity_lgbm:v1:psi:2024-07-03" and request.tags["quant/trigger"] == "drift"
    assert request.run_config["execution"] == CELERY_BLOCK
    validated = dg.validate_run_config(defs.resolve_job_def("retrain_job"), request.run_config)
    assert validated["ops"]["training_snapshot"]["config"]["as_of"] == "2024-07-03"
    assert validated["execution"][engine_executor.name]["celery"]["backend"] == "rpc://"


def test_compaction_job_compacts_and_queries_answer_the_same(feature_lake, tmp_path):
    from quant_assets.core.features.library import ALL_FEATURES
    from quant_assets.core.features.store import FeatureStore
    from quant_assets.defs.jobs import compaction_job

    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    queries = pd.DataFrame(
        {
            "entity_key": ["SYN000", "SYN007", "SYN039"] * 2,
            "as_of": [sessions.decision_time("2024-03-04")] * 3 + [sessions.decision_time("2024-06-28")] * 3,
        }
    )
    before = FeatureStore(root, ALL_FEATURES).get_point_in_time(queries, ["ret_5", "sentiment_1"])
    result = compaction_job.execute_in_process(resources={"lake": LakeResource(root=str(root))})
    assert result.success and result.output_for_node("compact_feature_files") == 2 * 9  # 2 families x Oct..Jun
    assert len(list(root.glob("features/*/fv=*/_compacted/*.parquet"))) == 18
    pd.testing.assert_frame_equal(
        FeatureStore(root, ALL_FEATURES).get_point_in_time(queries, ["ret_5", "sentiment_1"]), before
    )


def test_bad_alert_policy_and_drift_config_are_refused_with_the_reason(monkeypatch, tmp_path):
    for raw, message in [
        ("nope", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"psi_crit": 0.3}', "unknown fields ['psi_crit']"),
        ('{"ic_warning_days": 0}', "at least one day in a row"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            AlertPolicy(overrides=raw).rules()  # QUANT_ALERT_POLICY, as default_resources passes it at launch
    policy = AlertPolicy(overrides='{"psi_critical": 0.3, "cooldown_sessions": 20}').resolved()
    assert (policy.rules().psi_critical, policy.cooldown_sessions, policy.ic_critical) == (0.3, 20, 0.01)
    # per model: the model's fields over the deployment's, other models keep the deployment's
    per_model = AlertPolicy(
        overrides='{"ic_pause_days": 5, "models": {"m": {"derisk_exposure": 0.25, "ic_pause_days": 2}}}'
    )
    assert (per_model.rules("m").ic_pause_days, per_model.actions("m").derisk_exposure) == (2, 0.25)
    assert (per_model.rules("other").ic_pause_days, per_model.actions("other").derisk_exposure) == (5, 0.5)
    for raw, message in [
        ('{"models": {"m": {"psi_crit": 1}}}', "(model m) has unknown fields ['psi_crit']"),
        ('{"models": {"m": 3}}', "models must map model names to objects of fields"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            AlertPolicy(overrides=raw).rules("m")
    with pytest.raises(dg.DagsterResourceFunctionError) as failed:  # at launch, for every model named
        with dg.build_resources({"p": AlertPolicy(overrides='{"models": {"m": {"derisk_exposure": 2}}}')}):
            pass
    assert "derisk_exposure must be in (0, 1), got 2" in str(failed.value.__cause__)
    with pytest.raises(dg.DagsterInvalidConfigError, match="on_critical"):
        dg.materialize(
            [drift_metrics],
            partition_key="2024-06-03",
            resources={
                "lake": LakeResource(root=str(tmp_path)),
                "registry": RegistryResource(url="unused"),
                "alert_policy": AlertPolicy(),
            },
            run_config={"ops": {"drift_metrics": {"config": {"on_critical": "fial"}}}},
        )


def _promotion_tick(instance, url, cursor=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"registry": RegistryResource(url=url), "automation_run_config": AutomationRunConfig(path="")},
    )
    result = promote_after_shadow(context)
    if isinstance(result, dg.SkipReason):
        return [], cursor, result.skip_message
    return list(result.run_requests or []), result.cursor, result.skip_reason.skip_message if result.skip_reason else ""


@pytest.mark.usefixtures("resolvable_settings")
def test_the_shadow_sensor_asks_for_a_decision_per_new_drift_row_of_a_shadow(
    pg_db, dagster_instance, champion, tmp_path
):
    oos = pd.DataFrame({"date": [1], "entity_key": ["A"]})
    files = artifacts.save_model_files(tmp_path / "shadow", "equity_lgbm", b"{}", oos)
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.04]})
    assert _promotion_tick(dagster_instance, pg_db)[0] == []  # no shadow
    with pg.connect(pg_db) as conn:
        shadow = models.register_model(
            conn, "equity_lgbm", "S2", {}, {}, "c", ("2024-01-02", "2024-07-01"), files, metrics
        )
    requests, cursor, why = _promotion_tick(dagster_instance, pg_db)
    assert requests == [] and why == "no new drift row of a shadow; in shadow: none"  # v2 has no drift row yet
    shadow_row = {**_row("2024-07-02"), "model": shadow.node}
    _store(pg_db, shadow_row, _row("2024-07-02"))
    requests, cursor, _ = _promotion_tick(dagster_instance, pg_db, cursor)
    assert [r.run_key for r in requests] == ["promotion:model:equity_lgbm:v2@2024-07-02"]
    assert requests[0].tags["quant/trigger"] == "shadow" and requests[0].job_name in (None, "promotion_job")
    assert _promotion_tick(dagster_instance, pg_db, cursor)[0] == []  # the same row again (a restart): nothing
    _store(pg_db, {**shadow_row, "date": sessions.as_date("2024-07-03")})
    requests, cursor, _ = _promotion_tick(dagster_instance, pg_db, cursor)
    assert [r.run_key for r in requests] == ["promotion:model:equity_lgbm:v2@2024-07-03"]
    with pg.connect(pg_db) as conn:  # decided: no longer in shadow, nothing more to ask
        promotion.record(conn, shadow, "rejected", "net Sharpe 0.1 is not > ...", as_of=dt.date(2024, 7, 3))
    _store(pg_db, {**shadow_row, "date": sessions.as_date("2024-07-05")})
    assert _promotion_tick(dagster_instance, pg_db, cursor)[0] == []

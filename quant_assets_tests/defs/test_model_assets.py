"""Snapshot, model and predictions assets on a Postgres-backed instance, including the champion fallback, and the
model's fold steps in separate processes giving the serial training's bytes."""

import datetime as dt
import os
import shutil

import dagster as dg
import pandas as pd

from quant_assets.core import environment, sessions
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.registry import artifacts, champion, models, promotion
from quant_assets.core.research import snapshots, training
from quant_assets.core.research.training import Ensemble, TrainConfig
from quant_assets.core.storage import lake, pg
from quant_assets.defs.drift import drift_metrics
from quant_assets.defs.models import predictions, trained_model, training_snapshot
from quant_assets.defs.promotion import promotion_decision
from quant_assets.defs.resources import AlertPolicy, LakeResource, RegistryResource
from quant_assets.provenance import code_version
from quant_assets_tests.conftest import seed_snapshot_asset, synthetic_snapshot
from quant_assets_tests.run_configs import PROMOTED_RUN_CONFIG, PROMOTION_CONFIG, SPAWN, TRAINING_RUN_CONFIG

WARN_ON_CRITICAL = {"ops": {"drift_metrics": {"config": {"on_critical": "warn"}}}}

AS_OF = dt.date(2024, 1, 2)  # the session a test's promotion is decided on


def test_train_register_predict_and_fall_back(feature_lake, tmp_path, pg_db, dagster_instance):
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    resources = {"lake": LakeResource(root=str(root)), "registry": RegistryResource(url=pg_db)}
    trained = dg.materialize(
        [training_snapshot, trained_model, promotion_decision],
        instance=dagster_instance,
        resources=resources,
        run_config=PROMOTED_RUN_CONFIG,
    )
    assert trained.success
    snap_meta = trained.asset_materializations_for_node("training_snapshot")[0].metadata
    model_meta = trained.asset_materializations_for_node("trained_model")[0].metadata
    assert snap_meta["manifest"].value["as_of"] == "2024-05-31" and snap_meta["dagster/row_count"].value > 1000
    built = snapshots.read(trained.output_for_node("training_snapshot")).manifest  # the run that built it, unhashed
    assert (built["run_id"], built["code_version"]) == (trained.run_id, code_version())
    assert model_meta["model"].value == "model:equity_lgbm:v1"
    assert model_meta["registration"].value == "registered; no champion yet"
    decided = trained.asset_materializations_for_node("promotion_decision")[0].metadata
    assert decided["decision"].value.startswith("model:equity_lgbm:v1: promoted: ")
    assert "(first champion)" in decided["decision"].value and decided["champion"].value == "model:equity_lgbm:v1"
    assert trained.get_asset_check_evaluations()[0].passed
    assert "data:image/png;base64," in model_meta["feature_importance"].value
    assert "overall" in model_meta["folds"].value and "rank_ic" in model_meta["folds"].value
    assert model_meta["test_rank_ic"].value > 0

    day = "2024-06-03"
    scored = dg.materialize([predictions], partition_key=day, instance=dagster_instance, resources=resources)
    meta = scored.asset_materializations_for_node("predictions")[0].metadata
    assert (meta["model"].value, meta["fallback"].value, meta["dagster/row_count"].value) == (
        "model:equity_lgbm:v1",
        False,
        40,
    )
    stored = lake.read_partition(root, "predictions", sessions.as_date(day))
    assert (stored["event_time"] == sessions.decision_time(day)).all() and stored["prediction"].std() > 0
    assert stored[lake.PROVENANCE].drop_duplicates().values.tolist() == [["predictions", code_version(), scored.run_id]]
    with pg.connect(pg_db) as conn, conn.cursor() as cur:  # the model names its code, environment and run
        cur.execute("SELECT code_version, environment, orchestrator_run_id FROM quant.models JOIN "
                    "quant.model_training_runs USING (model_id) WHERE version = 1")  # fmt: skip
        assert cur.fetchall() == [(code_version(), environment.recorded(), trained.run_id)]

    # A second run with the same snapshot, configuration, code and environment trains nothing: it is v1, with v1's
    # figures rebuilt from its verified files; told to retrain, it reproduces v1 bit for bit: still v1, not a v2.
    again = dg.materialize(
        [training_snapshot, trained_model, promotion_decision],
        instance=dagster_instance,
        resources=resources,
        run_config=PROMOTED_RUN_CONFIG,
    )
    same = again.asset_materializations_for_node("trained_model")[0].metadata
    assert same["model"].value == "model:equity_lgbm:v1" and same["identical"].value
    assert same["registration"].value.startswith("is model:equity_lgbm:v1: the same snapshot")
    assert not [e for e in again.all_events if e.step_key and "train_fold" in e.step_key]
    for figure in ("folds", "test_rank_ic", "test_ic", "test_icir", "params", "artifact", "oos_predictions"):
        assert same[figure] == model_meta[figure], figure
    retrain = {**PROMOTED_RUN_CONFIG["ops"]["trained_model"]["config"], "retrain": True}
    retrained = dg.materialize(
        [training_snapshot, trained_model],
        instance=dagster_instance,
        resources=resources,
        run_config={"ops": {**TRAINING_RUN_CONFIG["ops"], "trained_model": {"config": retrain}}},
    )
    meta = retrained.asset_materializations_for_node("trained_model")[0].metadata
    assert meta["registration"].value.startswith("reproduces model:equity_lgbm:v1 bit for bit")
    assert meta["folds"] == model_meta["folds"]
    assert again.asset_materializations_for_node("promotion_decision")[0].metadata["decisions"].value == (
        "no challenger in shadow"
    )
    assert not again.asset_materializations_for_node("training_snapshot")[0].metadata["created"].value
    # Other seeds are another model (v2), in shadow, promoted here by a margin that lets any challenger through.
    config = {**TRAINING_RUN_CONFIG["ops"]["trained_model"]["config"], "seeds": [3, 4]}
    other = dg.materialize(
        [training_snapshot, trained_model, promotion_decision],
        instance=dagster_instance,
        resources=resources,
        run_config={"ops": {**PROMOTED_RUN_CONFIG["ops"], "trained_model": {"config": config}}},
    )
    meta = other.asset_materializations_for_node("trained_model")[0].metadata
    assert meta["model"].value == "model:equity_lgbm:v2"
    assert meta["registration"].value == "registered in shadow beside model:equity_lgbm:v1"
    decided = other.asset_materializations_for_node("promotion_decision")[0].metadata
    assert decided["decision"].value.startswith("model:equity_lgbm:v2: promoted: ")
    assert "shadow_sessions 0: no shadow period (a backfill)" in decided["decision"].value
    assert decided["champion_net_sharpe"].value == decided["champion_net_sharpe"].value  # a number, not NaN
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE quant.model_artifacts SET path = '/nonexistent/model.json' "
            "WHERE model_id = (SELECT model_id FROM quant.models WHERE version = 2)"
        )
    fallback = dg.materialize([predictions], partition_key=day, instance=dagster_instance, resources=resources)
    meta = fallback.asset_materializations_for_node("predictions")[0].metadata
    assert meta["fallback"].value and meta["model"].value == "model:equity_lgbm:v1"
    assert "FELL BACK from model:equity_lgbm:v2" in meta["notes"].value
    assert meta["rows_written"].value == 0  # v1 already scored this day: nothing new


def test_a_challenger_shadows_the_champion_and_is_decided_once_its_shadow_sessions_matured(
    feature_lake, tmp_path, pg_db, dagster_instance
):
    """v2 (other seeds) is registered in shadow, scores beside v1, waits for 3 shadow sessions with matured labels
    and is then decided on the information of the session the third matured on, effective the next one."""
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    resources = {"lake": LakeResource(root=str(root)), "registry": RegistryResource(url=pg_db),
                 "alert_policy": AlertPolicy()}  # fmt: skip
    run = lambda assets, **kw: dg.materialize(assets, instance=dagster_instance, resources=resources, **kw)  # noqa: E731
    assert run([training_snapshot, trained_model, promotion_decision], run_config=PROMOTED_RUN_CONFIG).success
    seeds = {**TRAINING_RUN_CONFIG["ops"]["trained_model"]["config"], "seeds": [3, 4]}
    shadowed = {"ops": {**PROMOTED_RUN_CONFIG["ops"], "trained_model": {"config": seeds},
                        "promotion_decision": {"config": {**PROMOTION_CONFIG, "shadow_sessions": 3}}}}  # fmt: skip
    waiting = run([training_snapshot, trained_model, promotion_decision], run_config=shadowed)
    assert waiting.asset_materializations_for_node("promotion_decision")[0].metadata["decision"].value == (
        "model:equity_lgbm:v2: waiting: 0 of 3 shadow sessions with matured labels so far"
    )
    week = {"dagster/asset_partition_range_start": "2024-06-03", "dagster/asset_partition_range_end": "2024-06-07"}
    assert run([predictions, drift_metrics], tags=week, run_config=WARN_ON_CRITICAL).success
    scored = lake.read_partition(root, "predictions", dt.date(2024, 6, 3))
    assert set(scored["model"]) == {"model:equity_lgbm:v1", "model:equity_lgbm:v2"}  # the shadow beside
    decided = run(
        [promotion_decision], run_config={"ops": {"promotion_decision": shadowed["ops"]["promotion_decision"]}}
    )
    meta = decided.asset_materializations_for_node("promotion_decision")[0].metadata
    assert "3 in shadow" in meta["decision"].value and meta["champion_net_sharpe"].value is not None
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT decision, as_of, effective FROM quant.model_promotions WHERE model_id = 2")
        decision, as_of, effective = cur.fetchone()
    # shadow sessions 06-03, 06-04, 06-05; the last label matures at 06-06's open, known by its close
    assert (as_of, effective) == (dt.date(2024, 6, 6), dt.date(2024, 6, 7)) and decision in ("promoted", "rejected")


def _champion_on(root, pg_url, start: str, as_of: str) -> None:
    """A small model trained on ``start``..``as_of`` through the core API, registered and promoted."""
    store = FeatureStore(root, ALL_FEATURES)
    data, manifest = snapshots.build(root, store, start, as_of, as_of, list(ALL_FEATURES))
    snap = snapshots.read(snapshots.write(root, data, manifest)[0])
    model = Ensemble.fit(snap.data, snap.features, TrainConfig(num_boost_round=10, seeds=(1,)))
    oos = snap.data[["date", "entity_key"]].assign(prediction=model.predict(snap.data))
    files = artifacts.save_model_files(root, "equity_lgbm", model.to_bytes(), oos)
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.05]})
    with pg.connect(pg_url) as conn:
        ref = models.register_model(
            conn, "equity_lgbm", snap.fingerprint, snap.manifest["features"], {}, "c", (start, as_of), files, metrics
        )
        promotion.record(conn, ref, "promoted", "first champion", as_of=AS_OF)


def test_an_alternative_data_outage_warns_with_its_length_and_scoring_goes_on(
    gappy_lake, tmp_path, pg_db, dagster_instance
):
    root = tmp_path / "lake"
    shutil.copytree(gappy_lake, root)
    _champion_on(root, pg_db, "2024-02-01", "2024-04-05")
    resources = {"lake": LakeResource(root=str(root)), "registry": RegistryResource(url=pg_db)}
    week = {"dagster/asset_partition_range_start": "2024-04-08", "dagster/asset_partition_range_end": "2024-04-16"}
    scored = dg.materialize([predictions], instance=dagster_instance, resources=resources, tags=week)
    assert scored.success  # the chain goes on: a warning, not a failure
    meta = scored.asset_materializations_for_node("predictions")[0].metadata
    assert meta["dagster/row_count"].value == 20 * 7  # every name, every session of the week and the day after
    (check,) = scored.get_asset_check_evaluations()
    assert (check.check_name, check.passed, check.severity) == ("inputs_fresh", False, dg.AssetCheckSeverity.WARN)
    # The newest tweets are Friday 04-05's: usable up to 4 sessions after it, then missing for everyone.
    assert check.metadata["longest_gap_sessions"].value == 5
    gaps = check.metadata["gaps"].value
    assert "2024-04-15: alt features missing for 100% of names (newest value 5 session(s) old" in gaps
    assert "2024-04-12" not in gaps and "2024-04-16" not in gaps
    assert (meta["rows_written"].value, meta["sessions_unchanged"].value) == (20 * 7, 0)

    # Again over the same inputs: every session from its receipt, nothing written, the same figures and check.
    again = dg.materialize([predictions], instance=dagster_instance, resources=resources, tags=week)
    same = again.asset_materializations_for_node("predictions")[0].metadata
    assert (same["rows_written"].value, same["sessions_unchanged"].value) == (0, 7)
    for figure in ("dagster/row_count", "preview", "model", "fallback"):
        assert same[figure] == meta[figure], figure
    (recheck,) = again.get_asset_check_evaluations()
    assert (recheck.passed, recheck.metadata, recheck.description) == (check.passed, check.metadata, check.description)


def retrain_job():
    """Module-level so the multiprocess executor can rebuild the job in its step processes."""
    from quant_assets.definitions import defs

    return defs.resolve_job_def("retrain_job")


def _registered(conn, name: str) -> tuple:
    """What the registry holds of the newest ``name``: parameters, artifact and predictions checksums, metrics."""
    ref = models.model(conn, name)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT m.params, a.sha256, a.size_bytes, a.oos_sha256, a.oos_size_bytes FROM quant.models m "
            "JOIN quant.model_artifacts a USING (model_id) WHERE model_id = %s",
            (ref.model_id,),
        )
        row = cur.fetchone()
        cur.execute(
            "SELECT dataset_type, metric, scope, value FROM quant.model_metrics WHERE model_id = %s ORDER BY 1, 2, 3",
            (ref.model_id,),
        )
        return row, cur.fetchall(), artifacts.load_oos(conn, ref)


def test_fold_steps_in_separate_processes_give_the_serial_model_bit_for_bit(
    tmp_path, pg_db, dagster_instance, monkeypatch
):
    root = tmp_path / "lake"
    path = synthetic_snapshot(root)
    seed_snapshot_asset(dagster_instance, root, path)
    monkeypatch.setenv("QUANT_DATA_ROOT", str(root))
    monkeypatch.setenv("QUANT_PG_URL", pg_db)
    settings = TRAINING_RUN_CONFIG["ops"]["trained_model"]  # the asset's config, as before the fan-out
    result = dg.execute_job(
        dg.reconstructable(retrain_job),
        instance=dagster_instance,
        asset_selection=[dg.AssetKey("trained_model")],
        run_config={"ops": {"trained_model": settings}, **SPAWN},
    )
    assert result.success
    pids = {e.step_key: e.pid for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    folds = sorted(k for k in pids if ".train_fold[" in k)
    assert [k.split("[")[1] for k in folds] == ["final]", "fold_0]", "fold_1]"]
    assert len({pids[k] for k in folds}) == 3 and os.getpid() not in pids.values()  # one process per step

    # The serial core function on the same snapshot, registered under another name in the same registry.
    snap = snapshots.read(path)
    cfg = settings["config"]
    serial = training.train_walk_forward(
        snap.data,
        snap.features,
        TrainConfig(
            n_folds=cfg["n_folds"],
            horizon=snap.manifest["label"]["horizon"],
            min_train_days=cfg["min_train_days"],
            num_boost_round=cfg["num_boost_round"],
            seeds=tuple(cfg["seeds"]),
        ),
    )
    with pg.connect(pg_db) as conn:
        first = champion.register(conn, root, "serial", snap, serial, "serial-code")
        (graph_row, graph_metrics, graph_oos), (serial_row, serial_metrics, serial_oos) = (
            _registered(conn, name) for name in ("equity_lgbm", "serial")
        )
        # The same training again (same snapshot, parameters, code, artifact bytes) is that model, not v2; the
        # same model under another code version is v2, in shadow (an equal score never promotes: core's tests).
        again = champion.register(conn, root, "serial", snap, serial, "serial-code")
        assert (again.ref, again.identical) == (first.ref, True) and not first.identical
        assert again.note.startswith("reproduces model:serial:v1 bit for bit")
        other = champion.register(conn, root, "serial", snap, serial, "other-code")
        assert (other.ref.version, other.identical) == (2, False)
        assert champion.shadows(conn, "serial") == [first.ref, other.ref]
    assert graph_row[1] == training.sha256(serial.artifact)
    assert graph_row == serial_row and graph_metrics == serial_metrics
    pd.testing.assert_frame_equal(graph_oos, serial_oos, check_exact=True)
    pd.testing.assert_frame_equal(graph_oos[serial.predictions.columns], serial.predictions, check_exact=True)

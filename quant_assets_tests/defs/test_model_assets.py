"""Snapshot, model and predictions assets on a Postgres-backed instance, including the champion fallback."""

import shutil

import dagster as dg

from quant_assets.core import lake, pg
from quant_assets.core import time as qtime
from quant_assets.defs.models import predictions, trained_model, training_snapshot
from quant_assets.defs.resources import LakeResource, PostgresResource

RUN_CONFIG = {
    "ops": {
        "training_snapshot": {"config": {"start": "2024-01-02", "end": "2024-05-31", "as_of": "2024-05-31"}},
        "trained_model": {"config": {"n_folds": 2, "min_train_days": 60, "num_boost_round": 30, "seeds": [1, 2]}},
    }
}


def test_train_register_predict_and_fall_back(feature_lake, tmp_path, pg_db, dagster_instance):
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    resources = {"lake": LakeResource(root=str(root)), "postgres": PostgresResource(url=pg_db)}
    trained = dg.materialize(
        [training_snapshot, trained_model], instance=dagster_instance, resources=resources, run_config=RUN_CONFIG
    )
    assert trained.success
    snap_meta = trained.asset_materializations_for_node("training_snapshot")[0].metadata
    model_meta = trained.asset_materializations_for_node("trained_model")[0].metadata
    assert snap_meta["manifest"].value["as_of"] == "2024-05-31" and snap_meta["dagster/row_count"].value > 1000
    assert model_meta["model"].value == "model:equity_lgbm:v1"
    assert model_meta["promotion"].value.startswith("promoted")
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
    stored = lake.read_partition(root, "predictions", qtime.as_date(day))
    assert (stored["event_time"] == qtime.decision_time(day)).all() and stored["prediction"].std() > 0

    # A second training of the same data is a new version; equal score -> promoted (not worse than champion).
    again = dg.materialize(
        [training_snapshot, trained_model], instance=dagster_instance, resources=resources, run_config=RUN_CONFIG
    )
    assert again.asset_materializations_for_node("trained_model")[0].metadata["model"].value == "model:equity_lgbm:v2"
    assert not again.asset_materializations_for_node("training_snapshot")[0].metadata["created"].value
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

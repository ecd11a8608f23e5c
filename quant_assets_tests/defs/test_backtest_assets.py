"""Champion backtest and the sweep fan-out, on Postgres; the sweep runs under the multiprocess executor."""

import shutil

import dagster as dg

from quant_assets.core import environment
from quant_assets.core.research import sweep
from quant_assets.core.storage import pg
from quant_assets.defs.backtests import champion_backtest
from quant_assets.defs.config import SweepConfig
from quant_assets.defs.models import trained_model, training_snapshot
from quant_assets.defs.promotion import promotion_decision
from quant_assets.defs.resources import LakeResource, RegistryResource
from quant_assets.defs.step_outputs import StepOutputsIOManager
from quant_assets.provenance import code_version
from quant_assets_tests.run_configs import MULTIPROCESS, PROMOTED_RUN_CONFIG, SWEEP_CONFIG, SWEEP_RUN_CONFIG


def sweep_job():
    """Module-level so the multiprocess executor can rebuild the job in its step processes."""
    from quant_assets.definitions import defs

    return defs.resolve_job_def("sweep_job")


def test_champion_backtest_then_a_parallel_sweep(feature_lake, tmp_path, pg_db, dagster_instance, monkeypatch):
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    lake = LakeResource(root=str(root))
    resources = {"lake": lake, "registry": RegistryResource(url=pg_db), "io_manager": StepOutputsIOManager(lake=lake)}
    trained = dg.materialize(
        [training_snapshot, trained_model, promotion_decision, champion_backtest],
        instance=dagster_instance,
        resources=resources,
        run_config=PROMOTED_RUN_CONFIG,
    )
    assert trained.success
    meta = trained.asset_materializations_for_node("champion_backtest")[0].metadata
    assert meta["sessions"].value.startswith("- walk-forward test: 2024-")  # no live session scored yet
    assert meta["model"].value == "model:equity_lgbm:v1" and meta["mean_daily_turnover"].value > 0
    assert meta["net_sharpe"].value < meta["gross_sharpe"].value
    for plot in ("equity_curve", "drawdown", "daily_ic"):
        assert "data:image/png;base64," in meta[plot].value
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT scope, count(*) FROM quant.model_metrics WHERE dataset_type = 'backtest' GROUP BY 1")
        assert dict(cur.fetchall()) == {"net": 12, "gross": 12}
        cur.execute("SELECT dst FROM quant.lineage_edges WHERE src = 'model:equity_lgbm:v1'")
        assert cur.fetchone()[0] == meta["backtest"].value
        cur.execute("SELECT code_version, run_id, environment FROM quant.backtests")  # what computed it
        assert cur.fetchall() == [(code_version(), trained.run_id, environment.recorded())]

    # The sweep, through the multiprocess executor, in separate step processes that read the env.
    monkeypatch.setenv("QUANT_DATA_ROOT", str(root))
    monkeypatch.setenv("QUANT_PG_URL", pg_db)
    result = dg.execute_job(
        dg.reconstructable(sweep_job),
        instance=dagster_instance,
        run_config={**SWEEP_RUN_CONFIG, **MULTIPROCESS},
    )
    assert result.success
    steps = [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS" and "run_cells" in e.step_key]
    assert len(steps) == SWEEP_CONFIG["steps"]  # 4 models (2 leaf counts x 2 folds), each backtesting both rules
    pids = {e.pid for e in result.all_events if e.step_key and "run_cells" in e.step_key}
    assert len(pids) > 1  # separate processes
    mat = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"][0]
    sweep_meta = mat.event_specific_data.materialization.metadata
    assert sweep_meta["trials"].value == 4 and sweep_meta["cells"].value == 8
    assert 0.0 <= sweep_meta["pbo"].value <= 1.0 and 0.0 <= sweep_meta["deflated_sharpe"].value <= 1.0
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT kind, metrics->>'pbo', metrics->>'trials', code_version, run_id, environment "
                    "FROM quant.backtests WHERE kind = 'sweep'")  # fmt: skip
        kind, stored_pbo, trials, *producer = cur.fetchone()
        assert float(stored_pbo) == sweep_meta["pbo"].value and trials == "4"
        assert producer == [code_version(), result.run_id, environment.recorded()]


def test_how_the_sweep_is_split_into_steps_is_no_part_of_its_record():
    """The record id and stored config: every field as before ``steps`` existed, whatever ``steps`` says."""
    few, many = SweepConfig(**SWEEP_CONFIG), SweepConfig(**{**SWEEP_CONFIG, "steps": 50})
    assert few.settings() == many.settings() and "steps" not in few.settings()
    assert set(few.settings()) == {"learning_rates", "num_leaves", "rules", "n_folds", "min_train_days",
                                   "num_boost_round", "costs", "pbo_blocks"}  # fmt: skip
    assert sweep.record_id("s", few.settings()) == sweep.record_id("s", many.settings())

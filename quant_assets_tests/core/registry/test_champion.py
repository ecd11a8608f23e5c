"""The champion's composition (core/registry/champion.py) on a real Postgres: who the champion is, loading with
fallback, the in-sample guard, the champion backtest's refusals and the metric rows of a registration."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import environment, sessions
from quant_assets.core.registry import artifacts, champion, models, promotion
from quant_assets.core.research import backtest, snapshots
from quant_assets.core.research.training import Ensemble, TrainConfig
from quant_assets.core.storage import pg
from quant_assets_tests.conftest import synthetic_snapshot

AS_OF = dt.date(2024, 1, 2)  # the session a test's promotion is decided on


def _files(root, rounds: int) -> artifacts.ModelFiles:
    """A one-feature model (``rounds`` trees, so each gets its own artifact) and its predictions over 40 sessions of
    20 names (a noisy but informative feature), saved as the registry saves them."""
    rng = np.random.default_rng(rounds)
    index = pd.MultiIndex.from_product(
        [sessions.sessions_between("2024-01-02", "2024-02-28"), [f"T{i:02d}" for i in range(20)]],
        names=["date", "entity_key"],
    )
    x = rng.normal(size=len(index))
    frame = pd.DataFrame({"x": x, "label": 0.01 * x + rng.normal(0, 0.02, len(index))}, index=index).reset_index()
    model = Ensemble.fit(frame, ["x"], TrainConfig(num_boost_round=rounds, seeds=(1,), params={"min_data_in_leaf": 5}))
    oos = frame.assign(prediction=model.predict(frame))
    return artifacts.save_model_files(root, "m", model.to_bytes(), oos[["date", "entity_key", "prediction", "label"]])


def _promoted(conn, root, rounds: int, rank_ic: float) -> models.ModelRef:
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [rank_ic]})
    snapshot = snapshots.read(synthetic_snapshot(root)).fingerprint  # the training as-of and label horizon
    ref = models.register_model(
        conn, "m", snapshot, {"x": "v1"}, {}, "c1", ("2024-01-02", "2024-03-28"), _files(root, rounds), metrics
    )
    promotion.record(conn, ref, "promoted", "first champion", as_of=AS_OF)
    return ref


def test_no_champion_is_one_error_that_says_what_to_materialise(pg_db):
    with pg.connect(pg_db) as conn:
        for call in (
            lambda: champion.current(conn, "m"),
            lambda: champion.load(conn, "m"),
            lambda: champion.backtest_champion(conn, "/nowhere", "m", backtest.PortfolioRule(), backtest.Costs(), {}),
        ):
            with pytest.raises(champion.NoChampion, match="no champion for m: materialise trained_model first"):
                call()


def test_load_falls_back_to_the_previous_champion_when_the_artifact_fails(pg_db, tmp_path):
    with pg.connect(pg_db) as conn:
        first = _promoted(conn, tmp_path, 3, 0.02)
        second = _promoted(conn, tmp_path, 4, 0.05)
        assert champion.current(conn, "m") == second
        used, _, notes = champion.load(conn, "m")
        assert (used, notes) == (second, [])
        artifact = artifacts.model_files(conn, second)[0]
        artifact.write_bytes(artifact.read_bytes() + b" ")
        used, _, notes = champion.load(conn, "m")
        assert used == first
        assert notes[0].startswith(f"{second.node} could not load")
        assert notes[-1] == f"FELL BACK from {second.node} to previous champion {first.node}"
        first_artifact = artifacts.model_files(conn, first)[0]
        first_artifact.write_bytes(b"{}")
        with pytest.raises(artifacts.ArtifactTampered, match="no champion or previous champion could be loaded"):
            champion.load(conn, "m")


def test_the_champion_backtest_is_recorded_and_rerun_in_place(pg_db, tmp_path):
    with pg.connect(pg_db) as conn:
        ref = _promoted(conn, tmp_path, 3, 0.02)
        config = {"rule": "long_short", "quantile": 0.2}
        rule, costs = backtest.PortfolioRule(), backtest.Costs()
        run = champion.backtest_champion(conn, tmp_path, "m", rule, costs, config, "sha-one", "run-1")
        again = champion.backtest_champion(conn, tmp_path, "m", rule, costs, config, "sha-two", "run-2")
        assert run.ref == ref and run.node == again.node and run.node.startswith("backtest:m:v1:")
        assert run.periods == {
            "walk-forward test": f"{run.frame['date'].min()}..{run.frame['date'].max()} (40 sessions)"
        }
        assert list(run.table().columns) == ["net", "gross (no costs)"]
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), min(code_version), min(run_id), min(environment::text) FROM quant.backtests")
            count, code, run_id, env = cur.fetchone()
            cur.execute("SELECT environment FROM quant.models WHERE model_id = %s", (ref.model_id,))
            trained_in = cur.fetchone()[0]
        assert (count, code, run_id) == (1, "sha-two", "run-2")  # the run that computed it last
        assert json.loads(env) == trained_in == environment.recorded() and set(environment.LIBRARIES) < set(trained_in)


def test_scoring_a_session_the_labels_covered_is_refused_with_the_range():
    as_of = dt.date(2024, 6, 28)
    champion.check_out_of_sample("model:m:v1", as_of, [dt.date(2024, 7, 1), dt.date(2024, 7, 2)])
    with pytest.raises(champion.InSample) as exc:
        champion.check_out_of_sample("model:m:v1", as_of, [dt.date(2024, 6, 27), as_of, dt.date(2024, 7, 1)])
    assert str(exc.value) == (
        "model:m:v1 learned from labels known at the close of 2024-06-28: scoring 2024-06-27..2024-06-28 "
        "would be in-sample; score sessions after 2024-06-28"
    )
    with pytest.raises(champion.InSample, match="scoring 2024-06-28 would be in-sample"):
        champion.check_out_of_sample("model:m:v1", as_of, [as_of])


def test_fold_metrics_become_registry_rows_per_fold_and_overall():
    folds = pd.DataFrame(
        {"fold": ["0", "1", "overall"], "ic": [0.1, 0.2, 0.15], "rank_ic": [0.1, 0.3, 0.2]}
        | {m: [0.0, 0.0, 0.0] for m in ("icir", "rank_icir", "hit_rate")}
    )
    rows = champion.metric_rows(folds)
    assert len(rows) == 15 and set(rows["dataset_type"]) == {"test"}
    assert set(rows["scope"]) == {"fold0", "fold1", "overall"}
    overall = rows[(rows["scope"] == "overall") & (rows["metric"] == "rank_ic")]
    assert overall["value"].tolist() == [0.2]

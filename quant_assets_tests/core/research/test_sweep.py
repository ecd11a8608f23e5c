"""The sweep's pure parts (core/research/sweep.py): the rule parser, stitching folds, the aggregation's ranking."""

import dataclasses
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.research import backtest, snapshots, sweep
from quant_assets.core.research.training import Ensemble, TrainConfig
from quant_assets_tests.conftest import synthetic_snapshot


def test_rule_specs_parse_to_portfolio_rules():
    assert sweep.parse_rule("long_short") == backtest.PortfolioRule("long_short", quantile=0.2)
    assert sweep.parse_rule("long_short:0.1") == backtest.PortfolioRule("long_short", quantile=0.1)
    assert sweep.parse_rule("topk:20:5") == backtest.PortfolioRule("topk", k=20, n_drop=5)


def test_an_unknown_rule_says_which_forms_exist():
    with pytest.raises(ValueError, match=r"unknown rule spec 'momentum:3' \(long_short:Q or topk:K:DROP"):
        sweep.parse_rule("momentum:3")


@pytest.mark.parametrize("spec", ["topk:20", "topk:a:5", "topk:0:1", "long_short:x", "long_short:0.7", "topk:5:-1"])
def test_a_malformed_rule_is_named_with_the_expected_form(spec):
    with pytest.raises(ValueError, match=rf"malformed rule spec '{spec}': expected long_short:Q or topk:K:DROP"):
        sweep.parse_rule(spec)


def test_a_bad_rule_fails_the_plan_before_the_snapshot_is_read(tmp_path):
    grid = sweep.Grid(learning_rates=[0.1], num_leaves=[7], rules=["long_short:0.2", "topk:3"])
    with pytest.raises(ValueError, match="malformed rule spec 'topk:3'"):
        sweep.plan(str(tmp_path / "no-such-snapshot"), grid, steps=4)


def _cells(returns: dict[str, np.ndarray], folds: int) -> list[dict]:
    """Cells as run_step returns them: each configuration's days split into contiguous folds, shuffled."""
    days = [str(d) for d in sessions.sessions_between("2024-01-02", "2024-12-31")][: len(next(iter(returns.values())))]
    cells = []
    for config, net in returns.items():
        for k, idx in enumerate(np.array_split(np.arange(len(days)), folds)):
            cells.append(
                {
                    "config": config,
                    "fold": k,
                    "snapshot": "f" * 64,
                    "dates": [days[i] for i in idx],
                    "net": net[idx].tolist(),
                    "gross": (net[idx] + 0.001).tolist(),
                    "rank_ic": 0.0,
                }
            )
    return cells[::-1]  # the collect order is not the fold order


def test_folds_stitch_into_one_series_per_configuration_in_date_order():
    rng = np.random.default_rng(3)
    returns = {"a": rng.normal(0, 0.01, 120), "b": rng.normal(0, 0.01, 120)}
    net = sweep.stitch(_cells(returns, folds=4), "net")
    assert set(net.columns) == {"a", "b"}
    assert list(net.index) == sorted(net.index)
    np.testing.assert_allclose(net["a"].to_numpy(), returns["a"])


def test_aggregate_ranks_by_net_sharpe_and_reports_dsr_and_pbo():
    rng = np.random.default_rng(5)
    returns = {name: rng.normal(mu, 0.01, 160) for name, mu in [("weak", 0.0), ("strong", 0.003), ("mid", 0.001)]}
    cells = _cells(returns, folds=4)
    result = sweep.aggregate(cells, pbo_blocks=4)
    assert result.best == "strong"
    assert result.table["config"].tolist()[0] == "strong"
    assert result.table["net_sharpe"].is_monotonic_decreasing
    expected = backtest.performance(pd.Series(returns["strong"]))["sharpe"]
    assert result.table.loc[0, "net_sharpe"] == pytest.approx(expected)
    assert result.table.loc[0, "gross_sharpe"] > result.table.loc[0, "net_sharpe"]
    assert {"best", "configs", "cells", "dsr", "pbo"} <= set(result.summary)
    assert result.summary["configs"] == 3 and result.summary["cells"] == 12
    assert 0 <= result.overfit["pbo"] <= 1 and 0 <= result.dsr["dsr"] <= 1
    assert result.record()["table"][0]["config"] == "strong"
    assert result.snapshot == "f" * 64


def test_the_sweep_record_id_follows_snapshot_and_configuration():
    config = {"learning_rates": [0.1], "rules": ["topk:20:5"]}
    assert sweep.record_id("s1", config) == sweep.record_id("s1", dict(reversed(config.items())))
    assert sweep.record_id("s1", config) != sweep.record_id("s2", config)
    assert sweep.record_id("s1", config) != sweep.record_id("s1", {**config, "rules": ["long_short:0.2"]})


GRID = sweep.Grid(
    learning_rates=[0.05, 0.1],
    num_leaves=[7, 3],
    rules=["long_short:0.2", "topk:8:2"],
    n_folds=2,
    min_train_days=60,
    num_boost_round=20,
)


def test_plan_deals_each_model_once_into_at_most_the_steps_asked_for(tmp_path):
    path = str(synthetic_snapshot(tmp_path))
    models = {(lr, leaves, fold) for lr in GRID.learning_rates for leaves in GRID.num_leaves for fold in range(2)}
    for steps, expected in ((1, 1), (3, 3), (100, len(models))):
        planned = sweep.plan(path, GRID, steps)
        assert [key for key, _ in planned] == [f"s{i}" for i in range(expected)]
        tasks = [(t["lr"], t["leaves"], t["fold"]) for _, step in planned for t in step["tasks"]]
        assert sorted(tasks) == sorted(models)  # each model once, whatever the split
        sizes = [len(step["tasks"]) for _, step in planned]
        assert max(sizes) - min(sizes) <= 1
        assert all(step["rules"] == GRID.rules and json.loads(json.dumps(step)) == step for _, step in planned)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        sweep.plan(path, GRID, 0)


def _cell_by_cell(path: str) -> list[dict]:
    """The sweep as it ran before steps held several cells: one model trained per (configuration, fold), backtested
    with that one rule on the long frame, net and then gross (no costs), in the grid's order."""
    snap = snapshots.read(path)
    data = snap.data.assign(day=snap.data["date"].astype(str))
    cells = []
    for lr, leaves, rule in itertools.product(GRID.learning_rates, GRID.num_leaves, GRID.rules):
        for _, step in sweep.plan(path, dataclasses.replace(GRID, learning_rates=[lr], num_leaves=[leaves]), 100):
            (task,) = step["tasks"]
            train, test = data[data["day"].isin(set(task["train"]))], data[data["day"].isin(set(task["test"]))]
            config = TrainConfig(num_boost_round=20, seeds=(1,), params={"learning_rate": lr, "num_leaves": leaves})
            model = Ensemble.fit(train, snap.features, config)
            frame = test[["date", "entity_key", "label"]].assign(prediction=model.predict(test))
            net = backtest.run(frame, sweep.parse_rule(rule), GRID.costs)
            gross = backtest.run(frame, sweep.parse_rule(rule), backtest.NO_COSTS)
            cells.append({"config": sweep.config_name(lr, leaves, rule), "fold": task["fold"],
                          "snapshot": snap.fingerprint, "dates": [str(d) for d in net.daily.index],
                          "net": net.daily["net"].tolist(), "gross": gross.daily["gross"].tolist(),
                          "rank_ic": net.metrics["rank_ic"]})  # fmt: skip
    return cells


def test_steps_of_several_models_give_the_cell_by_cell_sweep_exactly(tmp_path):
    """Training each model once for all its rules, in 1, 3 or one-per-model steps, collected in any step order:
    the same cells, table, DSR, PBO and record as a model per (configuration, fold)."""
    path = str(synthetic_snapshot(tmp_path))
    reference = _cell_by_cell(path)
    expected = sweep.aggregate(sweep.gather([reference], GRID), pbo_blocks=4)
    for steps in (1, 3, 100):
        done = [sweep.run_step(step) for _, step in sweep.plan(path, GRID, steps)]
        cells = sweep.gather(done[::-1], GRID)
        assert sorted(cells, key=lambda c: (c["config"], c["fold"])) == sorted(
            reference, key=lambda c: (c["config"], c["fold"])
        )
        got = sweep.aggregate(cells, pbo_blocks=4)
        pd.testing.assert_frame_equal(got.net, expected.net, check_exact=True)
        pd.testing.assert_frame_equal(got.table, expected.table, check_exact=True)
        assert got.dsr == expected.dsr and got.overfit == expected.overfit and got.record() == expected.record()
    assert list(expected.net.columns) == [
        sweep.config_name(lr, leaves, rule)
        for lr, leaves, rule in itertools.product(GRID.learning_rates, GRID.num_leaves, GRID.rules)
    ]

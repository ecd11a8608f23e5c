"""The sweep's pure parts (core/research/sweep.py): the rule parser, stitching folds, the aggregation's ranking."""

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.research import backtest, sweep


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
        sweep.plan(str(tmp_path / "no-such-snapshot"), grid)


def _cells(returns: dict[str, np.ndarray], folds: int) -> list[dict]:
    """Cells as run_cell returns them: each configuration's days split into contiguous folds, shuffled."""
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

"""The backtest engine: hand-computed trades and costs, textbook metrics, DSR, PBO, no lookahead."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from quant_assets.core.research import backtest

DAYS = pd.date_range("2024-01-01", periods=5).date


def _two_assets() -> pd.DataFrame:
    pred = {"A": [2, 2, 1, 1, 2], "B": [1, 1, 2, 2, 1]}
    label = {"A": [0.01, 0.0, 0.03, -0.02, 0.01], "B": [-0.01, 0.02, 0.01, 0.02, 0.01]}
    return pd.DataFrame(
        [(d, e, float(pred[e][i]), label[e][i]) for i, d in enumerate(DAYS) for e in "AB"],
        columns=["date", "entity_key", "prediction", "label"],
    )


def test_two_assets_five_days_every_trade_cost_and_return():
    result = backtest.run(_two_assets(), backtest.PortfolioRule("long_short", quantile=0.5), backtest.Costs(10, 0, 0))
    d = result.daily
    assert result.weights.to_numpy().tolist() == [[0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, 0.5], [0.5, -0.5]]
    np.testing.assert_allclose(d["turnover"], [1.0, 0.0, 2.0, 0.0, 2.0])
    np.testing.assert_allclose(d["gross"], [0.01, -0.01, -0.01, 0.02, 0.0], atol=1e-15)
    np.testing.assert_allclose(d["cost"], [0.001, 0.0, 0.002, 0.0, 0.002], atol=1e-15)
    np.testing.assert_allclose(d["net"], [0.009, -0.01, -0.012, 0.02, -0.002], atol=1e-15)
    # A minimum ticket: 1 bp on 0.5 of 10,000 is 0.5 < 1.0, so each trade costs 1 / 10,000.
    small = backtest.run(
        _two_assets(), backtest.PortfolioRule("long_short", quantile=0.5), backtest.Costs(1, 0, 1.0, 10_000)
    )
    np.testing.assert_allclose(small.daily["cost"], [2e-4, 0.0, 2e-4, 0.0, 2e-4], atol=1e-15)
    free = backtest.run(_two_assets(), backtest.PortfolioRule("long_short", quantile=0.5), backtest.NO_COSTS)
    assert free.metrics["annual_return"] > result.metrics["annual_return"]


def test_topk_with_a_drop_limit_swaps_at_most_n_drop_names_a_day():
    days = pd.date_range("2024-01-01", periods=3).date
    preds = {0: [4, 3, 2, 1], 1: [1, 2, 3, 4], 2: [1, 2, 3, 4]}  # the ranking flips on day 1
    frame = pd.DataFrame(
        [(days[t], e, float(preds[t][i]), 0.0) for t in range(3) for i, e in enumerate("ABCD")],
        columns=["date", "entity_key", "prediction", "label"],
    )
    w = backtest.run(frame, backtest.PortfolioRule("topk", k=2, n_drop=1), backtest.NO_COSTS).weights
    held = [set(w.columns[w.iloc[t] > 0]) for t in range(3)]
    assert held == [{"A", "B"}, {"B", "D"}, {"C", "D"}]
    assert (w.sum(axis=1) == 1.0).all()


def _textbook(r: np.ndarray) -> dict:
    n = len(r)
    mean, sd = r.mean(), r.std(ddof=1)
    wealth = np.cumprod(1 + r)
    cagr = wealth[-1] ** (252 / n) - 1
    dd = min(0.0, min(w / max(1.0, *wealth[: i + 1]) - 1 for i, w in enumerate(wealth)))
    downside = np.sqrt(np.mean(np.clip(r, None, 0) ** 2)) * np.sqrt(252)
    return {
        "annual_return": cagr,
        "annual_volatility": sd * np.sqrt(252),
        "sharpe": mean / sd * np.sqrt(252),
        "sortino": mean * 252 / downside,
        "max_drawdown": dd,
        "calmar": cagr / abs(dd),
        "hit_rate": np.mean(r > 0),
    }


def test_metrics_against_their_textbook_formulas():
    r = np.array([0.01, -0.02, 0.015, 0.003, -0.007, 0.02, -0.01, 0.004, 0.0, 0.012])
    got = backtest.performance(pd.Series(r))
    for name, value in _textbook(r).items():
        assert got[name] == pytest.approx(value, rel=1e-12), name
    # by hand: the worst drawdown runs from 1.01 down to 1.01 * 0.98 (= -2%)
    assert got["max_drawdown"] == pytest.approx(-0.02, rel=1e-12)


def test_metric_edge_cases():
    const = backtest.performance(pd.Series([0.001] * 20))
    assert np.isnan(const["sharpe"]) and const["max_drawdown"] == 0.0 and np.isnan(const["calmar"])
    assert np.isnan(const["sortino"]) and const["hit_rate"] == 1.0
    with_nan = backtest.performance(pd.Series([0.01, np.nan, -0.01, np.nan]))
    assert with_nan["days"] == 2 and with_nan["hit_rate"] == 0.5
    one = backtest.performance(pd.Series([0.01]))
    assert one["days"] == 1 and np.isnan(one["sharpe"]) and one["annual_return"] == pytest.approx(1.01**252 - 1)
    empty = backtest.performance(pd.Series([np.nan, np.nan]))
    assert empty["days"] == 0 and np.isnan(empty["sharpe"])
    # a day with no predictions holds nothing and earns nothing
    frame = _two_assets()
    frame.loc[frame["date"] == DAYS[2], "prediction"] = np.nan
    result = backtest.run(frame, backtest.PortfolioRule("long_short", quantile=0.5), backtest.NO_COSTS)
    assert result.daily.loc[DAYS[2], "gross"] == 0.0 and result.daily.loc[DAYS[2], "turnover"] == 1.0


def test_deflated_sharpe_on_the_published_example():
    """Bailey & Lopez de Prado (2014): SR 2.5 and V[SR] 0.5 annualised, N=100, T=1250, skew -3, kurt 10 -> ~0.90."""
    sr, var = 2.5 / np.sqrt(250), 0.5 / 250
    sr0 = backtest.expected_max_sharpe(var, 100)
    by_hand = np.sqrt(var) * (
        (1 - 0.5772156649) * stats.norm.ppf(0.99) + 0.5772156649 * stats.norm.ppf(1 - 1 / (100 * np.e))
    )
    assert sr0 == pytest.approx(by_hand, rel=1e-9) and sr0 == pytest.approx(0.1132, abs=1e-4)
    assert backtest.dsr_from_moments(sr, sr0, 1250, -3.0, 10.0) == pytest.approx(0.90, abs=0.01)
    assert backtest.dsr_from_moments(sr0, sr0, 1250, 0.0, 3.0) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    r = pd.Series(rng.normal(0.001, 0.01, 500))
    one_trial = backtest.deflated_sharpe(r, np.array([0.1]))
    many = backtest.deflated_sharpe(r, rng.normal(0, 0.05, 200))
    assert one_trial["sr0"] == 0.0 and many["dsr"] < one_trial["dsr"]


def test_pbo_by_hand_and_in_the_limits():
    # Two blocks, two configurations: A wins in block 1 and loses in block 2, B the reverse.
    m = pd.DataFrame({"A": [0.02, 0.01, 0.03, -0.01, -0.02, -0.015], "B": [-0.01, 0.0, -0.02, 0.02, 0.01, 0.03]})
    hand = backtest.pbo(m, n_blocks=2)
    assert hand == {"pbo": 1.0, "splits": 2, "median_logit": pytest.approx(np.log((1 / 3) / (2 / 3)))}
    rng = np.random.default_rng(1)
    skill = pd.DataFrame(rng.normal(0, 0.01, (400, 10)))
    skill[3] += 0.01
    assert backtest.pbo(skill)["pbo"] == 0.0
    noise = [backtest.pbo(pd.DataFrame(np.random.default_rng(s).normal(0, 0.01, (400, 20))))["pbo"] for s in range(6)]
    assert 0.25 < np.mean(noise) < 0.75
    with pytest.raises(ValueError, match="even"):
        backtest.pbo(m, n_blocks=3)


def test_changing_the_future_leaves_past_pnl_identical():
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2024-01-01", periods=60).date
    names = [f"N{i}" for i in range(30)]
    frame = pd.DataFrame(
        [(d, n, rng.normal(), rng.normal(0, 0.01)) for d in days for n in names],
        columns=["date", "entity_key", "prediction", "label"],
    )
    cut = days[40]
    future = frame.copy()
    later = future["date"] > cut
    future.loc[later, ["prediction", "label"]] = rng.normal(size=(later.sum(), 2))
    for rule in (backtest.PortfolioRule("long_short"), backtest.PortfolioRule("topk", k=5, n_drop=2)):
        a = backtest.run(frame, rule).daily.loc[:cut]
        b = backtest.run(future, rule).daily.loc[:cut]
        pd.testing.assert_frame_equal(a, b, check_exact=True)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), bps=st.floats(0.5, 50))
def test_net_is_below_gross_whenever_there_is_turnover(seed, bps):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2024-01-01", periods=15).date
    frame = pd.DataFrame(
        [(d, f"N{i}", rng.normal(), rng.normal(0, 0.01)) for d in days for i in range(12)],
        columns=["date", "entity_key", "prediction", "label"],
    )
    result = backtest.run(frame, backtest.PortfolioRule("long_short", quantile=0.25), backtest.Costs(bps, 1.0, 1.0))
    traded = result.daily["turnover"] > 0
    assert traded.any()
    assert (result.daily.loc[traded, "net"] < result.daily.loc[traded, "gross"]).all()
    assert result.metrics["annual_return"] < result.gross_metrics["annual_return"]


@pytest.mark.filterwarnings("ignore:Precision loss")  # scipy.stats.skew of constant returns (DSR moments)
def test_one_sharpe_definition_with_its_constant_returns_guard():
    r = pd.Series([0.01, -0.02, 0.015, np.nan, 0.003])
    clean = r.dropna()
    assert backtest.sharpe(r) == pytest.approx(clean.mean() / clean.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert backtest.sharpe(r, periods=1) == pytest.approx(clean.mean() / clean.std(ddof=1), rel=1e-12)
    assert backtest.performance(r)["sharpe"] == backtest.sharpe(r)
    # Constant returns have no Sharpe, whether annualised, per period (DSR) or ranked (PBO: never the best).
    const = pd.Series([0.001] * 20)
    assert np.isnan(backtest.sharpe(const)) and np.isnan(
        backtest.deflated_sharpe(const, np.array([0.1, 0.2]))["sharpe_per_period"]
    )
    assert np.isnan(backtest.sharpe([0.01])) and np.isnan(backtest.sharpe([]))
    grid = np.column_stack([np.full(20, 0.001), np.random.default_rng(3).normal(0.0, 0.01, (20, 2))])
    assert backtest._sharpe_cols(grid)[0] == -np.inf and np.isfinite(backtest._sharpe_cols(grid)[1:]).all()

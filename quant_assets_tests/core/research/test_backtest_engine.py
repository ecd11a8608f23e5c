"""The NumPy engine on a prepared panel against the pandas engine it replaced (``legacy_backtest``, kept for this
comparison only): the same daily figures, weights and quantile returns to the last bit, the same metrics, on random
panels with missing values, ties, tiny universes, exposures, both rules and costs with and without a minimum
ticket."""

import functools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_assets.core.research import backtest
from quant_assets_tests.core.research import legacy_backtest as legacy

VALUES = [-1.0, 0.0, 0.5, 1.0, 2.0, -0.0, np.inf, -np.inf]  # repeated values make ties; -0.0 ties with 0.0


@st.composite
def panels(draw) -> pd.DataFrame:
    """A long frame: some (date, name) rows absent, some predictions and labels NaN, many ties."""
    n_days, n_names = draw(st.integers(1, 12)), draw(st.integers(1, 9))
    days = pd.bdate_range("2024-01-01", periods=n_days).date
    rows = []
    for d in days:
        for i in range(n_names):
            if draw(st.integers(0, 9)) == 0:
                continue  # the name is not in the frame that day
            pred = draw(st.one_of(st.sampled_from(VALUES), st.floats(-3, 3), st.just(np.nan)))
            label = draw(st.one_of(st.floats(-0.1, 0.1), st.just(np.nan)))
            rows.append((d, f"N{i}", pred, label))
    frame = pd.DataFrame(rows, columns=["date", "entity_key", "prediction", "label"])
    return frame if len(frame) else pd.DataFrame([(days[0], "N0", 1.0, 0.01)], columns=frame.columns)


rules = st.one_of(
    st.builds(backtest.PortfolioRule, st.just("long_short"), st.sampled_from([0.1, 0.2, 0.25, 1 / 3, 0.5])),
    st.builds(backtest.PortfolioRule, st.just("long_short"), st.floats(0.01, 0.5)),
    st.builds(backtest.PortfolioRule, st.just("topk"), k=st.integers(1, 6), n_drop=st.integers(0, 4)),
)
costs = st.one_of(
    st.just(backtest.NO_COSTS),
    st.builds(
        backtest.Costs,
        st.floats(0, 50),
        st.floats(0, 20),
        st.sampled_from([0.0, 1.0, 50.0]),
        st.sampled_from([1e4, 1e7]),
    ),  # fmt: skip
)


def _exposure(draw, frame: pd.DataFrame) -> pd.Series | None:
    if draw(st.booleans()):
        return None
    days = sorted(frame["date"].unique())
    picked = [d for d in days if draw(st.booleans())]  # the other days default to 1
    return pd.Series([draw(st.sampled_from([0.0, 0.5, 1.0, 0.3])) for _ in picked], index=picked, dtype=float)


def _same(new: backtest.BacktestResult, old) -> None:
    pd.testing.assert_frame_equal(new.daily, old.daily, check_exact=True)
    pd.testing.assert_frame_equal(new.weights, old.weights, check_exact=True)
    pd.testing.assert_series_equal(new.quantile_returns, old.quantile_returns, check_exact=True)
    for mine, theirs in ((new.metrics, old.metrics), (new.gross_metrics, old.gross_metrics)):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            assert value == mine[key] or (np.isnan(value) and np.isnan(mine[key])), key


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # infinite predictions: IC is NaN
@settings(max_examples=300, deadline=None)
@given(frame=panels(), data=st.data())
def test_the_panel_engine_gives_the_pandas_engines_numbers(frame, data):
    """Several configurations on one prepared panel (shared ranks, orders, IC), each against the old engine on
    the long frame; the long frame straight into ``run`` too."""
    panel = backtest.prepare(frame)
    for _ in range(3):
        rule, cost, exposure = data.draw(rules), data.draw(costs), _exposure(data.draw, frame)
        old = legacy.run(frame, rule, cost, exposure)
        _same(backtest.run(panel, rule, cost, exposure), old)
    _same(backtest.run(frame, rule, cost, exposure), old)


@settings(max_examples=300, deadline=None)
@given(
    row=st.lists(st.one_of(st.sampled_from(VALUES), st.floats(-3, 3), st.just(np.nan)), min_size=0, max_size=12),
    held=st.sets(st.integers(0, 11), max_size=9),
    k=st.integers(1, 6),
    n_drop=st.integers(0, 4),
)
def test_one_day_of_top_k_is_the_old_rules_day(row, held, k, n_drop):
    """The live book's step (any held set, also more names than k after a change of k) as the old one chose."""
    values = np.array(row, dtype=float)
    held = {i for i in held if i < len(values)}
    assert backtest.topk_holdings(values, held, k, n_drop) == legacy.topk_holdings(values, held, k, n_drop)


@settings(max_examples=300, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 6), st.integers(0, 40)),
    seed=st.integers(0, 2**32 - 1),
)
def test_row_sum_adds_each_row_in_column_order(shape, seed):
    """Bit for bit the left-to-right sum of every row (terms of very different sizes make any regrouping show)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape) * 10.0 ** rng.integers(-12, 12, size=shape)
    values[rng.random(shape) < 0.3] = 0.0
    by_hand = [functools.reduce(lambda a, b: a + b, row, 0.0) + 0.0 for row in values]
    got = backtest.row_sum(values)
    assert got.tobytes() == np.array(by_hand, dtype=float).tobytes()
    assert got.tobytes() == legacy.row_sum(values).tobytes()
    if shape[0] == 1:
        assert backtest.row_sum(values[0]).tobytes() == got.tobytes()  # a 1-D row: the live book's form

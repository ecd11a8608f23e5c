"""The NumPy engine on a prepared panel against a reference written for reading, not speed: each day and each
name in plain Python, sums left to right. Equal to the last bit (daily figures, weights) on random panels with
missing values, ties, tiny universes, exposures, both rules and costs with and without a minimum ticket.

(The pandas engine the panel replaced was compared the same way, bit for bit, before it was deleted: commit
"Backtest engine on a prepared panel", quant_assets_tests/core/research/legacy_backtest.py.)"""

import functools
import operator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_assets.core.research import backtest
from quant_assets.core.research.metrics import icir, wide_ic

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


def _left_to_right(terms) -> float:
    return functools.reduce(operator.add, terms, 0.0) + 0.0


def _long_short_day(row: list[float], q: float) -> list[float]:
    """Percentile rank = average rank of ties / names predicted; +0.5 over the top quantile, -0.5 over the bottom;
    nothing on a day with fewer than two names or an empty leg."""
    values = [v for v in row if not np.isnan(v)]
    n = len(values)
    pct = [np.nan if np.isnan(v) else (sum(x < v for x in values) + (sum(x == v for x in values) + 1) / 2) / n
           for v in row]  # fmt: skip
    top = [not np.isnan(p) and p > 1 - q for p in pct]
    bottom = [not np.isnan(p) and p <= q for p in pct]
    if n < 2 or not any(top) or not any(bottom):
        return [0.0] * len(row)
    long, short = 1.0 / sum(top) * 0.5, 1.0 / sum(bottom) * 0.5
    return [(long if t else 0.0) - (short if b else 0.0) for t, b in zip(top, bottom, strict=True)]


def _topk_day(row: list[float], held: set[int], k: int, n_drop: int) -> set[int]:
    """Sell at most n_drop held names out of today's top k (lowest first, ties by column), names without a
    prediction always; buy the best names not held (ties by column) up to k; no prediction at all: flat."""
    valid = [i for i, v in enumerate(row) if not np.isnan(v)]
    if not valid:
        return set()
    best = sorted(valid, key=lambda i: (-row[i], i))
    kept = {i for i in held if i in valid}
    leaving = sorted((i for i in kept if i not in best[:k]), key=lambda i: (row[i], i))[:n_drop]
    kept -= set(leaving)
    for i in best:
        if len(kept) >= k:
            break
        kept.add(i)
    return kept


def _reference(frame: pd.DataFrame, rule, costs, exposure) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(daily gross, cost, net, turnover; weights), a day and a name at a time."""
    pred = frame.pivot(index="date", columns="entity_key", values="prediction").sort_index()
    ret = frame.pivot(index="date", columns="entity_key", values="label").reindex_like(pred)
    scale = exposure.reindex(pred.index).fillna(1.0) if exposure is not None else pd.Series(1.0, index=pred.index)
    weights, held, before, rows = [], set(), [0.0] * len(pred.columns), []
    for day, row in pred.iterrows():
        if rule.kind == "long_short":
            target = _long_short_day(row.tolist(), rule.quantile)
        else:
            held = _topk_day(row.tolist(), held, rule.k, rule.n_drop)
            target = [1.0 / len(held) if i in held else 0.0 for i in range(len(row))]
        w = [x * scale[day] for x in target] if exposure is not None else target
        traded = [abs(a - b) for a, b in zip(w, before, strict=True)]
        bps, ticket = costs.cost_bps + costs.slippage_bps, costs.min_cost / costs.capital
        cost = [max(t * bps / 1e4, ticket if t > 0 else 0.0) for t in traded]
        labels = [0.0 if np.isnan(y) else y for y in ret.loc[day]]
        gross = _left_to_right(a * y for a, y in zip(w, labels, strict=True))
        rows.append({"gross": gross, "cost": _left_to_right(cost), "turnover": _left_to_right(traded)})
        weights.append(w)
        before = w
    daily = pd.DataFrame(rows, index=pred.index, columns=["gross", "cost", "turnover"])
    daily.insert(2, "net", daily["gross"] - daily["cost"])
    return daily, pd.DataFrame(weights, index=pred.index, columns=pred.columns, dtype=float)


def _same(result: backtest.BacktestResult, frame: pd.DataFrame, rule, costs, exposure) -> None:
    daily, weights = _reference(frame, rule, costs, exposure)
    pd.testing.assert_frame_equal(result.daily, daily, check_exact=True)
    pd.testing.assert_frame_equal(result.weights, weights, check_exact=True)
    pred = frame.pivot(index="date", columns="entity_key", values="prediction").sort_index()
    ret = frame.pivot(index="date", columns="entity_key", values="label").reindex_like(pred)
    ic = wide_ic(pred, ret)
    signal = {"ic": ic.mean(), "rank_ic": wide_ic(pred, ret, method="spearman").mean(), "icir": icir(ic),
              "turnover": daily["turnover"].mean()}  # fmt: skip
    for metrics, side in ((result.metrics, "net"), (result.gross_metrics, "gross")):
        expected = {**backtest.performance(daily[side]), **signal}
        assert metrics.keys() == expected.keys()
        assert all(metrics[m] == v or (np.isnan(v) and np.isnan(metrics[m])) for m, v in expected.items())
    pd.testing.assert_series_equal(result.quantile_returns, backtest.quantile_returns(frame), check_exact=True)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # infinite predictions: IC is NaN
@settings(max_examples=80, deadline=None)
@given(frame=panels(), data=st.data())
def test_the_panel_engine_gives_the_references_numbers(frame, data):
    """Several configurations on one prepared panel (shared ranks, orders, IC), each against the reference; the
    long frame straight into ``run`` too."""
    panel = backtest.prepare(frame)
    for _ in range(3):
        rule, cost, exposure = data.draw(rules), data.draw(costs), _exposure(data.draw, frame)
        _same(backtest.run(panel, rule, cost, exposure), frame, rule, cost, exposure)
    _same(backtest.run(frame, rule, cost, exposure), frame, rule, cost, exposure)


@settings(max_examples=300, deadline=None)
@given(
    row=st.lists(st.one_of(st.sampled_from(VALUES), st.floats(-3, 3), st.just(np.nan)), min_size=0, max_size=12),
    held=st.sets(st.integers(0, 11), max_size=9),
    k=st.integers(1, 6),
    n_drop=st.integers(0, 4),
)
def test_one_day_of_top_k_is_the_references_day(row, held, k, n_drop):
    """The live book's step (any held set, also more names than k after a change of k) as the reference chooses."""
    values = np.array(row, dtype=float)
    held = {i for i in held if i < len(values)}
    assert backtest.topk_holdings(values, held, k, n_drop) == _topk_day(values.tolist(), held, k, n_drop)


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
    got = backtest.row_sum(values)
    assert got.tobytes() == np.array([_left_to_right(row) for row in values], dtype=float).tobytes()
    if shape[0] == 1:
        assert backtest.row_sum(values[0]).tobytes() == got.tobytes()  # a 1-D row: the live book's form

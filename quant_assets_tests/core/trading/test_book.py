"""The live book (trading.book) against the backtest engine: the same predictions, labels and exposures give
the same daily turnover, costs and P&L to the last bit, one session at a time from stored positions, and a
session's book depends on nothing after it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_assets.core import sessions
from quant_assets.core.research import backtest
from quant_assets.core.research.backtest import Costs, PortfolioRule
from quant_assets.core.trading import book

RULES = [PortfolioRule("long_short", quantile=0.3), PortfolioRule("topk", k=3, n_drop=1)]
COSTS = Costs(cost_bps=5.0, slippage_bps=5.0, min_cost=1.0, capital=1e6)


def _panel(seed: int, n_days: int, n_names: int, ties: bool) -> pd.DataFrame:
    """A long frame whose names come and go (a name is absent on ~20% of its days), with some missing labels
    and, if ``ties``, predictions on a coarse grid (many equal scores)."""
    rng = np.random.default_rng(seed)
    days = sessions.sessions_between("2024-07-01", "2024-12-31")[:n_days]
    frame = pd.MultiIndex.from_product([days, [f"N{i:02d}" for i in range(n_names)]], names=["date", "entity_key"])
    frame = frame.to_frame(index=False)
    frame = frame[rng.random(len(frame)) > 0.2].reset_index(drop=True)
    scores = rng.standard_normal(len(frame))
    frame["prediction"] = np.round(scores) if ties else scores
    frame["label"] = np.where(rng.random(len(frame)) < 0.05, np.nan, 0.01 * rng.standard_normal(len(frame)))
    return frame


def _book(frame: pd.DataFrame, exposure: pd.Series, rule: PortfolioRule) -> pd.DataFrame:
    """The book run one session at a time, each from the previous session's positions as stored (a Parquet
    round trip's worth: a fresh frame of the stored columns)."""
    rows, previous = [], None
    for day, today in frame.groupby("date", sort=True):
        preds = today.set_index("entity_key")["prediction"]
        traded = book.trade(day, preds, previous, float(exposure[day]), rule, COSTS)
        rows.append({"date": day, **book.realise(traded, today.set_index("entity_key")["label"])})
        previous = traded.positions[book.POSITIONS].copy()
    return pd.DataFrame(rows).set_index("date")


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_days=st.integers(1, 25),
    n_names=st.integers(2, 12),
    ties=st.booleans(),
    rule=st.sampled_from(RULES),
)
def test_the_book_equals_the_backtest_of_the_same_predictions_to_the_last_bit(seed, n_days, n_names, ties, rule):
    frame = _panel(seed, n_days, n_names, ties)
    days = sorted(frame["date"].unique())
    rng = np.random.default_rng(seed + 1)
    exposure = pd.Series(rng.choice([1.0, 0.5, 0.0], size=len(days)), index=days)  # live, de-risked, paused
    expected = backtest.run(frame, rule, COSTS, exposure).daily
    got = _book(frame, exposure, rule)
    for column in ("gross", "cost", "net", "turnover"):
        assert got[column].to_numpy().tobytes() == expected[column].to_numpy().tobytes(), column


def test_a_paused_session_trades_out_and_holds_nothing_and_the_rule_keeps_its_names():
    frame = _panel(3, 6, 8, ties=False)
    days = sorted(frame["date"].unique())
    rule = PortfolioRule("topk", k=3, n_drop=1)
    previous = None
    for i, day in enumerate(days):
        today = frame[frame["date"] == day].set_index("entity_key")["prediction"]
        traded = book.trade(day, today, previous, 0.0 if i == 3 else 1.0, rule, COSTS)
        if i == 3:
            assert (traded.positions["weight"] == 0).all() and traded.positions["target"].gt(0).sum() == 3
            assert traded.turnover == pytest.approx(previous["weight"].abs().sum())  # everything sold
        previous = traded.positions
    with pytest.raises(ValueError, match="exposure must be in"):
        book.trade(days[0], today, None, 1.5, rule, COSTS)


def test_changing_the_future_leaves_the_past_book_identical():
    frame = _panel(7, 20, 10, ties=False)
    days = sorted(frame["date"].unique())
    exposure = pd.Series(1.0, index=days)
    cut = days[12]
    future = frame["date"] > cut
    changed = frame.copy()
    changed.loc[future, "prediction"] = -changed.loc[future, "prediction"]
    changed.loc[future, "label"] = 0.05
    for rule in RULES:
        before, after = _book(frame, exposure, rule), _book(changed, exposure, rule)
        past = before.index <= cut
        assert before[past].to_numpy().tobytes() == after[past].to_numpy().tobytes()
        assert not before[~past].equals(after[~past])  # the change did reach the future


def test_realise_prices_the_days_weights_with_its_labels_by_hand():
    day = book.trade(dt.date(2024, 7, 1), pd.Series({"A": 2.0, "B": 1.0, "C": -1.0, "D": -2.0}), None, 0.5,
                     PortfolioRule("long_short", quantile=0.25), Costs(10.0, 0.0, 0.0, 1e6))  # fmt: skip
    # top quarter A (+0.5), bottom quarter D (-0.5), times 0.5 exposure: +0.25 A, -0.25 D; traded 0.5 in all
    assert day.positions["weight"].tolist() == [0.25, 0.0, 0.0, -0.25]
    assert (day.turnover, day.cost) == (0.5, pytest.approx(0.5 * 10 / 1e4))
    pnl = book.realise(day, pd.Series({"A": 0.02, "D": -0.04, "B": 0.5}))
    assert pnl["gross"] == pytest.approx(0.25 * 0.02 + 0.25 * 0.04)
    assert pnl["net"] == pytest.approx(pnl["gross"] - 0.0005)

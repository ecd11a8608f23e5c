"""PSI, IC, rolling Sharpe and the alert matrix against hand-computed values and an independent PSI."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from quant_assets.core import backtest as bt
from quant_assets.core import drift
from quant_assets.core import time as qtime


def test_psi_by_hand():
    # Reference 1..10: decile cut points 1.9, 2.8, ..., 9.1, one reference value per bin (e = 0.1 each).
    # Actual: five 1s, then 2..6 -> shares 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0, 0, 0 (zeros clipped to 1e-4).
    value = drift.psi(np.arange(1, 11), [1, 1, 1, 1, 1, 2, 3, 4, 5, 6])
    expected = (0.5 - 0.1) * math.log(5) + 4 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert value == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(3.404114, abs=1e-6)
    assert drift.psi(np.arange(1, 11), np.arange(1, 11)) == 0.0
    assert math.isnan(drift.psi([1.0, 2.0, 3.0], [np.nan]))
    with pytest.raises(ValueError, match="no finite values"):
        drift.PsiReference.of([np.nan, np.inf])
    assert [drift.psi_band(v) for v in (0.05, 0.10, 0.25, 0.26, np.nan)] == [
        "stable",
        "watch",
        "watch",
        "act",
        "unknown",
    ]


def _psi_independent(reference: np.ndarray, actual: np.ndarray) -> float:
    """pandas.cut on right-closed bins at the reference's deciles, shares clipped at 1e-4."""
    cuts = np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))
    bins = [-np.inf, *cuts, np.inf]
    e = pd.cut(pd.Series(reference), bins, right=True).value_counts(normalize=True, sort=False).to_numpy()
    a = pd.cut(pd.Series(actual), bins, right=True).value_counts(normalize=True, sort=False).to_numpy()
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(((a - e) * np.log(a / e)).sum())


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(10, 400),
    st.integers(1, 300),
    st.floats(-2, 2),
    st.booleans(),
)
def test_psi_matches_an_independent_implementation(seed, n_ref, n_act, shift, discrete):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=n_ref)
    act = rng.normal(shift, 1.5, size=n_act)
    if discrete:  # ties and repeated cut points
        ref, act = np.round(ref), np.round(act)
    assert drift.psi(ref, act) == pytest.approx(_psi_independent(ref, act), rel=1e-9, abs=1e-12)


def _frame(preds: dict, labels: dict) -> pd.DataFrame:
    rows = []
    for date, p in preds.items():
        for name, value in p.items():
            rows.append((date, name, value, labels[date][name]))
    return pd.DataFrame(rows, columns=["date", "entity_key", "prediction", "label"])


def test_daily_signal_ic_rank_ic_hit_rate_and_net_return_by_hand():
    preds = {
        1: {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0, "E": 5.0},
        2: {"A": 5.0, "B": 4.0, "C": 3.0, "D": 2.0, "E": 1.0},
    }
    labels = {
        1: {"A": -0.02, "B": 0.01, "C": 0.0, "D": 0.03, "E": 0.02},
        2: {"A": 0.01, "B": 0.02, "C": -0.01, "D": 0.0, "E": -0.02},
    }
    costs = bt.Costs(cost_bps=10.0, slippage_bps=0.0, min_cost=0.0)
    out = drift.daily_signal(_frame(preds, labels), costs, bt.PortfolioRule("long_short", quantile=0.2))
    for d in (1, 2):
        p, y = list(preds[d].values()), list(labels[d].values())
        assert out.loc[d, "ic"] == pytest.approx(np.corrcoef(p, y)[0, 1])
        assert out.loc[d, "rank_ic"] == pytest.approx(stats.spearmanr(p, y).statistic)
    # Day 1 demeaned: preds -2, -1, 0, 1, 2; labels -0.028, 0.002, -0.008, 0.022, 0.012:
    # A (-,-) agrees, B (-,+) does not, C has a zero prediction (undecided), D and E agree -> 3 of 4.
    assert out.loc[1, "hit_rate"] == pytest.approx(3 / 4)
    assert math.isnan(out.loc[1, "net_return"])  # the warm-up day
    # Day 2: long A (+0.5), short E (-0.5); day 1 held long E, short A: every weight moves by 1 -> turnover 2.
    gross = 0.5 * 0.01 - 0.5 * (-0.02)
    assert out.loc[2, "net_return"] == pytest.approx(gross - 2 * 10 / 1e4)
    assert list(out["n"]) == [5, 5]


def test_trailing_windows_count_observed_sessions_only():
    s = pd.Series([0.01, np.nan, 0.02, 0.03, np.nan, np.nan, 0.04, -0.01], index=range(8))
    assert drift.trailing(s, 3) == [0.03, 0.04, -0.01]
    assert drift.trailing_mean(s, 5) == pytest.approx(np.mean([0.01, 0.02, 0.03, 0.04, -0.01]))
    assert math.isnan(drift.trailing_mean(s, 6))  # only five observations
    r = [0.01, -0.02, 0.03, 0.005, 0.0]
    assert drift.trailing_sharpe(pd.Series(r), 5) == pytest.approx(np.mean(r) / np.std(r, ddof=1) * np.sqrt(252))
    assert math.isnan(drift.trailing_sharpe(pd.Series([0.01] * 5), 5))  # no dispersion: undefined, not infinite
    rolled = drift.rolling_observed(s, 2, drift.trailing_mean)
    assert math.isnan(rolled[0]) and math.isnan(rolled[1]) and rolled[2] == pytest.approx(0.015)
    assert rolled[6] == pytest.approx(0.035) and math.isnan(rolled[5])


def _history(**cols) -> pd.DataFrame:
    n = max(len(v) for v in cols.values())
    return pd.DataFrame({k: list(v) + [np.nan] * (n - len(v)) for k, v in cols.items()})


def test_alert_matrix_levels_and_actions():
    cfg = drift.AlertConfig()
    ok = drift.evaluate(_history(ic_mean_5=[0.05] * 6, psi_mean=[0.05] * 6, sharpe_20=[1.0] * 12), cfg)
    assert ok.levels == {"ic": "ok", "ic_negative": "ok", "psi": "ok", "sharpe": "ok"} and ok.actions == []
    psi = drift.evaluate(_history(ic_mean_5=[0.05], psi_mean=[0.05, 0.12], sharpe_20=[1.0]), cfg)
    assert psi.levels["psi"] == "warning" and psi.worst == "warning" and psi.actions == []
    psi = drift.evaluate(_history(ic_mean_5=[0.05], psi_mean=[0.3], sharpe_20=[1.0]), cfg)
    assert psi.levels["psi"] == "critical" and psi.actions == ["retrain"]
    assert psi.reasons["psi"] == "psi_mean > 0.25"
    # IC warning needs five consecutive observations below 0.02; four is not enough.
    four = drift.evaluate(_history(ic_mean_5=[0.05, 0.015, 0.015, 0.015, 0.015], psi_mean=[0], sharpe_20=[1]), cfg)
    five = drift.evaluate(_history(ic_mean_5=[0.015] * 5, psi_mean=[0], sharpe_20=[1]), cfg)
    assert four.levels["ic"] == "ok" and five.levels["ic"] == "warning"
    crit = drift.evaluate(_history(ic_mean_5=[0.05, 0.005], psi_mean=[0], sharpe_20=[1]), cfg)
    assert crit.levels["ic"] == "critical" and crit.actions == ["retrain"]
    pause = drift.evaluate(_history(ic_mean_5=[-0.01, -0.02, -0.001], psi_mean=[0], sharpe_20=[1]), cfg)
    assert pause.levels["ic_negative"] == "critical" and pause.actions == ["pause", "retrain"]
    sharpe = drift.evaluate(_history(ic_mean_5=[0.05], psi_mean=[0], sharpe_20=[0.4] * 10), cfg)
    assert sharpe.levels["sharpe"] == "warning"
    sharpe = drift.evaluate(_history(ic_mean_5=[0.05], psi_mean=[0], sharpe_20=[0.4] * 5 + [-0.1] * 5), cfg)
    assert sharpe.levels["sharpe"] == "critical"
    custom = drift.evaluate(
        _history(ic_mean_5=[0.05], psi_mean=[0.3], sharpe_20=[1]), drift.AlertConfig(psi_critical=0.5)
    )
    assert custom.levels["psi"] == "warning"


def test_consecutive_days_count_across_gaps_and_reset_on_a_good_day():
    cfg = drift.AlertConfig()
    # Observed values below 0.02 on five sessions with missing sessions between them: still five in a row.
    gappy = _history(ic_mean_5=[0.015, np.nan, 0.01, 0.019, np.nan, np.nan, 0.011, 0.012], psi_mean=[0], sharpe_20=[1])
    assert drift.evaluate(gappy, cfg).levels["ic"] == "warning"
    # One good observation in between breaks the streak.
    broken = _history(ic_mean_5=[0.015, 0.015, 0.03, 0.015, 0.015, 0.015, 0.015], psi_mean=[0], sharpe_20=[1])
    assert drift.evaluate(broken, cfg).levels["ic"] == "ok"
    # A day with no new observation carries the last observed state (here: critical) rather than clearing it.
    carried = _history(ic_mean_5=[0.005, np.nan], psi_mean=[0], sharpe_20=[1])
    assert drift.evaluate(carried, cfg).levels["ic"] == "critical"


def _rows(levels: list[dict], start="2024-07-01") -> pd.DataFrame:
    days = qtime.sessions_between(start, "2024-12-31")[: len(levels)]
    return pd.DataFrame(
        {
            "date": days,
            "model": "model:m:v1",
            "levels": levels,
            "psi_mean": 0.3,
            "ic_mean_5": 0.0,
            "sharpe_20": -1.0,
        }
    )


def test_retrain_breaches_fire_once_per_crossing_and_respect_the_cool_down():
    ok, psi, ic = {"psi": "ok", "ic": "ok"}, {"psi": "critical", "ic": "ok"}, {"psi": "critical", "ic": "critical"}
    rows = _rows([ok, psi, psi, ic, ic, ok, ok, psi])
    breaches = drift.retrain_breaches(rows)
    assert [(b.date, b.signal) for b in breaches] == [
        ("2024-07-02", "psi"),
        ("2024-07-05", "ic"),
        ("2024-07-11", "psi"),
    ]
    assert breaches[0].run_key == "retrain:model:m:v1:psi:2024-07-02"
    assert breaches[0].metric == "psi_mean" and breaches[0].threshold == 0.25 and breaches[0].value == 0.3
    assert drift.retrain_breaches(_rows([ok, ok])) == []
    assert drift.cooled_down(breaches[0], None, 10)
    assert not drift.cooled_down(breaches[1], "2024-07-02", 10)  # 2 sessions later
    assert not drift.cooled_down(breaches[0], "2024-07-02", 10)  # the same breach again
    late = drift.Breach("model:m:v1", "2024-07-17", "ic", "ic_mean_5", 0.0, 0.01)
    assert not drift.cooled_down(late, "2024-07-02", 10)  # exactly 10 sessions: still cooling
    later = drift.Breach("model:m:v1", "2024-07-18", "ic", "ic_mean_5", 0.0, 0.01)
    assert drift.cooled_down(later, "2024-07-02", 10)


def test_a_backlog_of_breaches_asks_for_one_retrain_on_the_latest():
    ok, psi, ic = {"psi": "ok", "ic": "ok"}, {"psi": "critical", "ic": "ok"}, {"psi": "ok", "ic": "critical"}
    rows = _rows([ok, psi, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ic, ok]).assign(seq=range(1, 16))
    cfg = drift.AlertConfig()
    latest = drift.next_retrain(rows, 0, None, cfg, 10)
    assert (latest.date, latest.signal) == (str(rows["date"][13]), "ic")  # not the older psi breach
    assert drift.next_retrain(rows, 15, None, cfg, 10) is None  # nothing new since the cursor
    assert drift.next_retrain(rows, 14, None, cfg, 10) is None  # its breach row (seq 14) was already seen
    # Within the cool-down of a request on the psi breach day, the ic breach 12 sessions later qualifies...
    assert drift.next_retrain(rows, 2, str(rows["date"][1]), cfg, 10).signal == "ic"
    # ...and with a longer cool-down nothing does.
    assert drift.next_retrain(rows, 2, str(rows["date"][1]), cfg, 12) is None


def test_one_sharpe_for_the_backtest_and_the_live_signal():
    const = pd.Series([0.001] * 20)
    # The live 20-day Sharpe divided by the rounding noise of the std (2.2e-19) and returned ~7.1e16.
    assert np.mean(const) / np.std(const, ddof=1) * np.sqrt(252) == pytest.approx(7.1e16, rel=0.01)
    assert math.isnan(drift.trailing_sharpe(const, 20)) and math.isnan(drift.trailing_sharpe(const, 5))
    assert math.isnan(bt.performance(const)["sharpe"]) and math.isnan(bt.sharpe(const))
    assert bt.performance(const)["annual_volatility"] == 0.0


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.floats(0.0, 0.5))
def test_live_and_backtest_sharpe_agree_on_any_window(seed, n, gaps):
    rng = np.random.default_rng(seed)
    series = pd.Series(np.where(rng.random(n + 10) < gaps, np.nan, rng.normal(0.0005, 0.01, n + 10)))
    last = series.dropna().iloc[-n:]
    live = drift.trailing_sharpe(series, n)
    if len(last) < n:
        assert math.isnan(live)
        return
    assert live == bt.performance(last)["sharpe"] == bt.sharpe(last)
    assert live == pytest.approx(last.mean() / last.std(ddof=1) * np.sqrt(252), rel=1e-12)

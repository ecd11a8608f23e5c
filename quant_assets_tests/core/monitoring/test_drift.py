"""PSI, IC, rolling Sharpe and the alert matrix against hand-computed values and an independent PSI."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from quant_assets.core import sessions
from quant_assets.core.monitoring import alerts, drift
from quant_assets.core.research import backtest
from quant_assets_tests.core.monitoring.helpers import psi_independent, tie_aware_bins_independent

DEFAULT_POLICY = alerts.AlertConfig()  # the built-in alert matrix: psi_band takes the policy explicitly


def test_psi_by_hand():
    # Reference 1..10: each value holds 10% (>= half a bin's 10%), so each is an atom with a bin of its own, cut
    # at the midpoints 1.5, 2.5, ..., 9.5 (e = 0.1 each).
    # Actual: five 1s, then 2..6 -> shares 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0, 0, 0 (zeros clipped to 1e-4).
    value = drift.psi(np.arange(1, 11), [1, 1, 1, 1, 1, 2, 3, 4, 5, 6])
    expected = (0.5 - 0.1) * math.log(5) + 4 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert value == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(3.404114, abs=1e-6)
    assert drift.psi(np.arange(1, 11), np.arange(1, 11)) == 0.0
    assert math.isnan(drift.psi([1.0, 2.0, 3.0], [np.nan]))
    # An all-missing reference is a reference without bins that says why, not an exception: its PSI is NaN.
    empty = drift.PsiReference.of([np.nan, np.inf])
    assert empty.reason == "the reference has no finite values (of 2)" and empty.bins == 0
    assert math.isnan(empty.psi([1.0, 2.0])) and math.isnan(empty.noise(100, 0.99))
    # Bands follow the alert matrix (> 0.10 watch, > 0.25 act; exactly 0.10 is not above 0.10: stable).
    assert [alerts.psi_band(v, cfg=DEFAULT_POLICY) for v in (0.05, 0.10, 0.25, 0.26, np.nan)] == [
        "stable",
        "stable",
        "watch",
        "act",
        "unknown",
    ]
    # ...and need the value above the no-drift level of its sample as well.
    assert [alerts.psi_band(0.3, noise, cfg=DEFAULT_POLICY) for noise in (0.05, 0.28, 0.31)] == ["act", "act", "stable"]
    assert [alerts.psi_band(0.2, noise, cfg=DEFAULT_POLICY) for noise in (0.15, 0.21)] == ["watch", "stable"]
    assert alerts.psi_band(0.3, cfg=alerts.AlertConfig(psi_critical=0.5)) == "watch"


def test_tie_aware_bins_by_hand():
    # 40 zeros (an atom: 40% >= 5%) and 1..60 once each: the run of 60 non-atom values holds 60% of the
    # reference, so round(10 * 0.6) = 6 bins of 10 values, ending at 10, 20, ..., 50 (and 60).
    ref = np.concatenate([np.zeros(40), np.arange(1, 61)])
    r = drift.PsiReference.of(np.random.default_rng(0).permutation(ref))
    np.testing.assert_array_equal(r.cuts, [0.5, 10.5, 20.5, 30.5, 40.5, 50.5])
    np.testing.assert_allclose(r.shares, [0.4] + [0.1] * 6, rtol=1e-15)
    assert (r.size, r.bins) == (100, 7)
    # The old decile cuts all sat on 0 for the first four deciles: right- and left-closed bins disagreed.
    # Values one rounding apart are one value (10 ulps here), not a cut between them.
    near = np.concatenate([np.full(30, 0.3), np.full(30, 0.1 + 0.2), np.arange(1.0, 41.0)])
    assert 0.3 != 0.1 + 0.2 and drift.PsiReference.of(near).cuts[0] == pytest.approx(0.65)
    # A value exactly on a cut (no reference value is) counts half in each of the two bins beside it.
    on_cut = drift.PsiReference.of(np.arange(1, 11))
    a = np.clip([0.5, 0.5] + [0.0] * 8, 1e-4, None)
    assert on_cut.psi([1.5]) == pytest.approx(float(np.sum((a - 0.1) * np.log(a / 0.1))), rel=1e-12)
    # One distinct value: one bin, every sample has PSI 0 and no noise.
    const = drift.PsiReference.of([2.0] * 50)
    assert const.bins == 1 and const.psi([2.0, 7.0]) == 0.0 and const.noise(10, 0.99) == 0.0


def old_decile_psi(reference, actual, right: bool) -> float:
    """The PSI before issue 10: cuts at the reference's deciles, right- or left-closed."""
    edges = [-np.inf, *np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9))), np.inf]
    e = pd.cut(pd.Series(reference), edges, right=right).value_counts(normalize=True, sort=False).to_numpy()
    a = pd.cut(pd.Series(actual), edges, right=right).value_counts(normalize=True, sort=False).to_numpy()
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(((a - e) * np.log(a / e)).sum())


def point_mass_features(rng, rates: np.ndarray, n_sessions: int, zero_share: float = 0.45) -> pd.DataFrame:
    """Per (session, name): features shaped like StockNet's tweet features, with their point masses.

    ``rates``: each name's mean tweets per session (the names' number is the universe's size).

    sentiment_1: a lexicon score (pos - neg) / (pos + neg) over a few words, exactly 0 for a large share and
    NaN on days without tweets; cs_rank_sentiment_1: its cross-sectional percentile rank (as library.cs_rank),
    ties averaged, over a number of names that changes every day; user_breadth: unique users per tweet, 1.0
    for most names; tweet_count: small integers.
    """
    names = len(rates)
    tweets = rng.poisson(rates, size=(n_sessions, names))
    pos = rng.binomial(tweets, (1 - zero_share) / 2)
    neg = rng.binomial(tweets - pos, (1 - zero_share) / 2)
    sentiment = np.where(tweets > 0, (pos - neg) / np.maximum(pos + neg, 1), np.nan)
    users = np.minimum(tweets, rng.binomial(tweets, 0.9) + (tweets > 0))
    frame = pd.DataFrame(
        {
            "session": np.repeat(np.arange(n_sessions), names),
            "sentiment_1": sentiment.ravel(),
            "user_breadth": np.where(tweets > 0, users / np.maximum(tweets, 1), np.nan).ravel(),
            "tweet_count": tweets.ravel().astype(float),
        }
    )
    frame["cs_rank_sentiment_1"] = frame.groupby("session")["sentiment_1"].rank(pct=True)  # library.cs_rank
    return frame


POINT_MASS = ["sentiment_1", "cs_rank_sentiment_1", "user_breadth", "tweet_count"]


def test_psi_of_point_mass_features_does_not_depend_on_the_closedness_of_bins():
    """Issue 10.7: same PSI right- or left-closed, equal to an independent implementation, where the old one flipped."""
    rng = np.random.default_rng(10)
    rates = rng.uniform(0.5, 4, 18)
    ref = point_mass_features(rng, rates, 250)
    cuts = {f: tie_aware_bins_independent(ref[f]) for f in POINT_MASS}
    for f in POINT_MASS:
        np.testing.assert_allclose(drift.PsiReference.of(ref[f]).cuts, cuts[f], rtol=1e-15)
    flips, on_cut = [], 0
    for day in range(20):  # pooled 18 names x 5 sessions, drawn afresh (half of them from a shifted market)
        act = point_mass_features(rng, rates, 5, zero_share=0.45 if day % 2 else 0.3)
        for f in POINT_MASS:
            r, a = ref[f].to_numpy(), act[f].to_numpy()
            value = drift.psi(r, a)
            assert value == pytest.approx(psi_independent(r, a, None, cuts[f]), rel=1e-9, abs=1e-12)
            if np.isin(a, cuts[f]).any():  # a rank of another day's universe size on a midpoint: split, see above
                on_cut += 1
                continue
            assert value == pytest.approx(psi_independent(r, a, True, cuts[f]), rel=1e-9, abs=1e-12)
            assert value == pytest.approx(psi_independent(r, a, False, cuts[f]), rel=1e-9, abs=1e-12)
            rf, af = r[np.isfinite(r)], a[np.isfinite(a)]
            flips.append(abs(old_decile_psi(rf, af, True) - old_decile_psi(rf, af, False)))
    assert on_cut < 5  # almost every sample lands off the cuts, so the invariance above is tested
    assert max(flips) > 0.5  # the old decile cuts moved a PSI by more than the whole 0.10-0.25 band


def _tie_heavy(seed: int, kind: str, size: int, shift: float) -> np.ndarray:
    """Values with the ties real features have: continuous, rounded, ranks of changing universes, a point mass."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, size)
    if kind == "rounded":  # coarse grids: many values hold over 5% each
        x = np.round(x * rng.choice([1, 2, 4]))
    elif kind == "ranks":  # percentile ranks (ties averaged) of days with 5..25 names
        days = np.repeat(np.arange(size), rng.integers(5, 26, size))[:size]
        x = pd.Series(np.round(x)).groupby(days).rank(pct=True).to_numpy()
    elif kind == "point_mass":  # no tweets / no lexicon word: exactly 0
        x = np.where(rng.random(size) < rng.uniform(0.05, 0.95), 0.0, x)
    elif kind == "near_ties":  # one value reached by different rounding
        x = np.where(rng.random(size) < 0.3, 0.1 + 0.2, np.where(rng.random(size) < 0.5, 0.3, x))
    return np.where(rng.random(size) < 0.05, np.nan, x)


KINDS = st.sampled_from(["continuous", "rounded", "ranks", "point_mass", "near_ties"])


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), KINDS, st.integers(1, 400))
def test_tie_aware_bins_are_never_empty_duplicated_or_on_a_reference_value(seed, kind, size):
    ref = _tie_heavy(seed, kind, size, 0.0)
    finite = ref[np.isfinite(ref)]
    r = drift.PsiReference.of(ref)
    if len(finite) == 0:
        assert r.reason is not None and r.bins == 0
        return
    assert r.size == len(finite) and r.bins == len(r.cuts) + 1
    assert np.all(np.diff(r.cuts) > 0)  # no duplicate bins
    assert np.all(r.shares > 0) and r.shares.sum() == pytest.approx(1.0)  # no empty bin
    assert not np.isin(finite, r.cuts).any()  # no reference value on a cut...
    edges = [-np.inf, *r.cuts, np.inf]
    for right in (True, False):  # ...so the reference shares do not depend on the closedness of the bins
        shares = pd.cut(pd.Series(finite), edges, right=right).value_counts(normalize=True, sort=False)
        np.testing.assert_allclose(shares.to_numpy(), r.shares, rtol=1e-12)
    # A value holding at least half a bin's share has its bin to itself.
    for v in np.unique(finite):
        alone = np.isclose(finite, v, rtol=1e-12, atol=0).mean()  # values one rounding apart are one value
        if alone * 2 * drift.PSI_BINS >= 1:
            assert r.shares[np.searchsorted(r.cuts, v)] == pytest.approx(alone, rel=1e-12)
    np.testing.assert_allclose(r.cuts, tie_aware_bins_independent(ref), rtol=1e-15)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), KINDS, st.integers(5, 400), st.integers(1, 300), st.floats(-2, 2))
def test_psi_is_non_negative_closedness_free_and_matches_an_independent_implementation(seed, kind, m, n, shift):
    ref, act = _tie_heavy(seed, kind, m, 0.0), _tie_heavy(seed + 1, kind, n, shift)
    r = drift.PsiReference.of(ref)
    value = r.psi(act)
    if r.reason is not None or not np.isfinite(act).any():
        assert np.isnan(value)
        return
    assert value >= 0.0
    cuts = tie_aware_bins_independent(ref)
    assert value == pytest.approx(psi_independent(ref, act, None, cuts), rel=1e-9, abs=1e-12)
    if not np.isin(act, r.cuts).any():  # off the cuts, either closedness gives the same PSI
        for right in (True, False):
            assert value == pytest.approx(psi_independent(ref, act, right, cuts), rel=1e-9, abs=1e-12)
    # The reference against itself, its own values in another order or twice over: no drift at all.
    assert r.psi(ref) == 0.0 and r.psi(np.concatenate([ref, ref[::-1]])) == pytest.approx(0.0, abs=1e-12)
    # Every other value of the sorted reference: far below its no-drift level at that size.
    half = np.sort(ref[np.isfinite(ref)])[::2]
    assert r.psi(half) <= r.noise(len(half), 0.5) + 1e-12


def test_no_drift_level_is_simulated_pure_and_falls_with_the_sample():
    r = drift.PsiReference.of(np.random.default_rng(1).normal(size=4500))
    levels = [r.noise(n, 0.99) for n in (18, 90, 900, 9000)]
    assert levels == sorted(levels, reverse=True) and levels[1] == r.noise(90, 0.99)
    # 10 equal bins, 90 against 4500 values: 0.31 by simulation (chi-square would say 0.25)
    assert levels[1] == pytest.approx(0.31, abs=0.02)
    assert r.noise(905, 0.99) == levels[2] and r.noise(90, 0.0) == 0.0  # n kept to two digits; q = 0 is off
    rng = np.random.default_rng(2)  # its meaning: about 1% of no-drift samples of 90 values exceed it
    exceed = np.mean([r.psi(rng.normal(size=90)) > levels[1] for _ in range(400)])
    assert exceed <= 0.03
    with pytest.raises(ValueError, match="psi_noise_quantile"):
        alerts.AlertConfig(psi_noise_quantile=1.0)


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
    costs = backtest.Costs(cost_bps=10.0, slippage_bps=0.0, min_cost=0.0)
    out = drift.daily_signal(_frame(preds, labels), costs, backtest.PortfolioRule("long_short", quantile=0.2))
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
    cfg = alerts.AlertConfig()
    ok = alerts.evaluate(_history(ic_mean_5=[0.05] * 6, psi_mean=[0.05] * 6, sharpe_20=[1.0] * 12), cfg)
    assert ok.levels == {"ic": "ok", "ic_negative": "ok", "psi": "ok", "sharpe": "ok"} and ok.actions == []
    psi = alerts.evaluate(_history(ic_mean_5=[0.05], psi_mean=[0.05, 0.12], sharpe_20=[1.0]), cfg)
    assert psi.levels["psi"] == "warning" and psi.worst == "warning" and psi.actions == []
    psi = alerts.evaluate(_history(ic_mean_5=[0.05], psi_mean=[0.3], sharpe_20=[1.0]), cfg)
    assert psi.levels["psi"] == "critical" and psi.actions == ["retrain"]
    assert psi.reasons["psi"] == "psi_mean > 0.25"
    # IC warning needs five consecutive observations below 0.02; four is not enough.
    four = alerts.evaluate(_history(ic_mean_5=[0.05, 0.015, 0.015, 0.015, 0.015], psi_mean=[0], sharpe_20=[1]), cfg)
    five = alerts.evaluate(_history(ic_mean_5=[0.015] * 5, psi_mean=[0], sharpe_20=[1]), cfg)
    assert four.levels["ic"] == "ok" and five.levels["ic"] == "warning"
    crit = alerts.evaluate(_history(ic_mean_5=[0.05, 0.005], psi_mean=[0], sharpe_20=[1]), cfg)
    assert crit.levels["ic"] == "critical" and crit.actions == ["de-risk", "retrain"]
    pause = alerts.evaluate(_history(ic_mean_5=[-0.01, -0.02, -0.001], psi_mean=[0], sharpe_20=[1]), cfg)
    assert pause.levels["ic_negative"] == "critical" and pause.actions == ["de-risk", "pause", "retrain"]
    sharpe = alerts.evaluate(_history(ic_mean_5=[0.05], psi_mean=[0], sharpe_20=[0.4] * 10), cfg)
    assert sharpe.levels["sharpe"] == "warning"
    sharpe = alerts.evaluate(_history(ic_mean_5=[0.05], psi_mean=[0], sharpe_20=[0.4] * 5 + [-0.1] * 5), cfg)
    assert sharpe.levels["sharpe"] == "critical"
    custom = alerts.evaluate(
        _history(ic_mean_5=[0.05], psi_mean=[0.3], sharpe_20=[1]), alerts.AlertConfig(psi_critical=0.5)
    )
    assert custom.levels["psi"] == "warning"


def test_consecutive_days_count_across_gaps_and_reset_on_a_good_day():
    cfg = alerts.AlertConfig()
    # Observed values below 0.02 on five sessions with missing sessions between them: still five in a row.
    gappy = _history(ic_mean_5=[0.015, np.nan, 0.01, 0.019, np.nan, np.nan, 0.011, 0.012], psi_mean=[0], sharpe_20=[1])
    assert alerts.evaluate(gappy, cfg).levels["ic"] == "warning"
    # One good observation in between breaks the streak.
    broken = _history(ic_mean_5=[0.015, 0.015, 0.03, 0.015, 0.015, 0.015, 0.015], psi_mean=[0], sharpe_20=[1])
    assert alerts.evaluate(broken, cfg).levels["ic"] == "ok"
    # A day with no new observation carries the last observed state (here: critical) rather than clearing it.
    carried = _history(ic_mean_5=[0.005, np.nan], psi_mean=[0], sharpe_20=[1])
    assert alerts.evaluate(carried, cfg).levels["ic"] == "critical"


def _rows(levels: list[dict], start="2024-07-01") -> pd.DataFrame:
    days = sessions.sessions_between(start, "2024-12-31")[: len(levels)]
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
    breaches = alerts.retrain_breaches(rows)
    assert [(b.date, b.signal) for b in breaches] == [
        ("2024-07-02", "psi"),
        ("2024-07-05", "ic"),
        ("2024-07-11", "psi"),
    ]
    assert breaches[0].run_key == "retrain:model:m:v1:psi:2024-07-02"
    assert breaches[0].metric == "psi_mean" and breaches[0].threshold == 0.25 and breaches[0].value == 0.3
    assert alerts.retrain_breaches(_rows([ok, ok])) == []
    assert alerts.cooled_down(breaches[0], None, 10)
    assert not alerts.cooled_down(breaches[1], "2024-07-02", 10)  # 2 sessions later
    assert not alerts.cooled_down(breaches[0], "2024-07-02", 10)  # the same breach again
    late = alerts.Breach("model:m:v1", "2024-07-17", "ic", "ic_mean_5", 0.0, 0.01)
    assert not alerts.cooled_down(late, "2024-07-02", 10)  # exactly 10 sessions: still cooling
    later = alerts.Breach("model:m:v1", "2024-07-18", "ic", "ic_mean_5", 0.0, 0.01)
    assert alerts.cooled_down(later, "2024-07-02", 10)


def test_a_backlog_of_breaches_asks_for_one_retrain_on_the_latest():
    ok, psi, ic = {"psi": "ok", "ic": "ok"}, {"psi": "critical", "ic": "ok"}, {"psi": "ok", "ic": "critical"}
    rows = _rows([ok, psi, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ic, ok]).assign(seq=range(1, 16))
    cfg = alerts.AlertConfig()
    latest = alerts.next_retrain(rows, 0, None, cfg, 10)
    assert (latest.date, latest.signal) == (str(rows["date"][13]), "ic")  # not the older psi breach
    assert alerts.next_retrain(rows, 15, None, cfg, 10) is None  # nothing new since the cursor
    assert alerts.next_retrain(rows, 14, None, cfg, 10) is None  # its breach row (seq 14) was already seen
    # Within the cool-down of a request on the psi breach day, the ic breach 12 sessions later qualifies...
    assert alerts.next_retrain(rows, 2, str(rows["date"][1]), cfg, 10).signal == "ic"
    # ...and with a longer cool-down nothing does.
    assert alerts.next_retrain(rows, 2, str(rows["date"][1]), cfg, 12) is None


def _live_market(rng, rates: np.ndarray, samples: int, n_sessions: int = 5, **shift) -> list[pd.DataFrame]:
    """``samples`` pooled samples of ``n_sessions`` sessions x len(rates) names: the tweet features with point masses
    and two continuous ones; ``shift`` (mean, zero_share, tweets) moves them."""
    frame = point_mass_features(
        rng, rates * shift.get("tweets", 1.0), samples * n_sessions, shift.get("zero_share", 0.45)
    )
    frame["ret_5"] = rng.normal(shift.get("mean", 0.0), 1.0, len(frame))
    frame["vol_20"] = rng.lognormal(shift.get("mean", 0.0), 0.5, len(frame))
    size = n_sessions * len(rates)
    return [frame.iloc[i * size : (i + 1) * size] for i in range(samples)]


LIVE = ["sentiment_1", "user_breadth", "tweet_count", "ret_5", "vol_20"]


def _bands(refs: dict, samples: list[pd.DataFrame]) -> pd.DataFrame:
    """Per sample: the mean PSI's band, and each feature's own band (against its own no-drift level), with and
    without the sample-size level."""
    rows = []
    for sample in samples:
        values, noise = drift.feature_psi(refs, sample, 0.99)
        mean = float(np.mean(list(values.values())))
        own = {
            f: alerts.psi_band(values[f], refs[f].noise(int(sample[f].notna().sum()), 0.99), cfg=DEFAULT_POLICY)
            for f in refs
        }
        rows.append(
            {
                "mean": alerts.psi_band(mean, noise, cfg=DEFAULT_POLICY),
                "mean_without_noise": alerts.psi_band(mean, cfg=DEFAULT_POLICY),
                **own,
            }
        )
        rows[-1]["ret_5_without_noise"] = alerts.psi_band(values["ret_5"], cfg=DEFAULT_POLICY)
    return pd.DataFrame(rows)


def test_psi_bands_mean_drift_not_sample_size():
    """Issue 10.13: 18 names x 5 sessions without drift rarely get a band; a real shift gets it at 90 and 1000."""
    rng = np.random.default_rng(13)
    small, large = rng.uniform(0.5, 4, 18), rng.uniform(0.5, 4, 200)
    refs = {
        n: {f: drift.PsiReference.of(_live_market(rng, r, 1, 250)[0][f]) for f in LIVE}
        for n, r in ((18, small), (200, large))
    }
    shift = {"mean": 0.5, "zero_share": 0.3, "tweets": 2.0}
    calm_90 = _bands(refs[18], _live_market(rng, small, 300))
    # Without the sample-size level, half of the no-drift samples of one continuous feature were "watch" or worse.
    assert (calm_90["ret_5_without_noise"] != "stable").mean() > 0.3
    # With it: at most a few percent, per feature (iid draws: ~1 - q) and for the mean over features.
    flagged = (calm_90 != "stable").mean()
    assert flagged["mean"] <= 0.02 and (flagged[LIVE] <= 0.04).all(), flagged.to_dict()
    calm_1000 = _bands(refs[200], _live_market(rng, large, 100))
    assert (calm_1000["mean"] == "stable").mean() >= 0.98
    for n, rates in ((18, small), (200, large)):  # a real shift: act, at 90 values as at 1000
        shifted = _bands(refs[n], _live_market(rng, rates, 100, **shift))
        assert (shifted["mean"] == "act").mean() >= 0.95, (n, shifted["mean"].value_counts().to_dict())


def test_psi_rule_needs_the_value_above_its_no_drift_level():
    cfg = alerts.AlertConfig()

    def psi(mean, noise):
        return alerts.evaluate(_history(ic_mean_5=[0.05], psi_mean=[mean], psi_noise=[noise], sharpe_20=[1.0]), cfg)

    assert psi(0.3, 0.35).levels["psi"] == "ok"  # 0.3 is what a sample this small shows without drift
    critical = psi(0.3, 0.28)
    assert critical.levels["psi"] == "critical" and critical.actions == ["retrain"]
    assert critical.reasons["psi"] == "psi_mean > 0.28 (the no-drift level at its sample size, above the 0.25 set)"
    warning = psi(0.2, 0.12)
    assert warning.levels["psi"] == "warning" and warning.reasons["psi"].startswith("psi_mean > 0.12 (")
    assert psi(0.3, 0.02).reasons["psi"] == "psi_mean > 0.25"  # a large sample: the threshold decides
    assert psi(0.3, None).reasons["psi"] == "psi_mean > 0.25"  # rows stored before the level existed
    # The breach the sensor sees carries the limit the value crossed.
    ok, crit = {"psi": "ok", "ic": "ok"}, {"psi": "critical", "ic": "ok"}
    rows = _rows([ok, crit, ok, crit]).assign(psi_noise=[0.1, 0.28, 0.1, 0.05])
    assert [b.threshold for b in alerts.retrain_breaches(rows)] == [0.28, 0.25]


def test_one_sharpe_for_the_backtest_and_the_live_signal():
    const = pd.Series([0.001] * 20)
    # The live 20-day Sharpe divided by the rounding noise of the std (2.2e-19) and returned ~7.1e16.
    assert np.mean(const) / np.std(const, ddof=1) * np.sqrt(252) == pytest.approx(7.1e16, rel=0.01)
    assert math.isnan(drift.trailing_sharpe(const, 20)) and math.isnan(drift.trailing_sharpe(const, 5))
    assert math.isnan(backtest.performance(const)["sharpe"]) and math.isnan(backtest.sharpe(const))
    assert backtest.performance(const)["annual_volatility"] == 0.0


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
    assert live == backtest.performance(last)["sharpe"] == backtest.sharpe(last)
    assert live == pytest.approx(last.mean() / last.std(ddof=1) * np.sqrt(252), rel=1e-12)

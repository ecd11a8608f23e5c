"""The alert matrix's actions on a model's state (monitoring.actions.decide), on hand-built drift rows.

The rows are built from metric paths written out here, their levels set by the alert matrix itself
(``alerts.evaluate`` on each day's history), so a row is what the drift asset stores. Each expected change
and its date is worked out from the DESIGN.md defaults: IC (5-day mean) < 0.01 -> de-risked, < 0 for 3
sessions -> paused, 20-day Sharpe < 0 for 5 sessions -> de-risked, PSI > 0.25 -> retrain only.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_assets.core import sessions
from quant_assets.core.monitoring import alerts
from quant_assets.core.monitoring.actions import ActionPolicy, decide

CFG, POLICY = alerts.AlertConfig(), ActionPolicy()
DAYS = sessions.sessions_between("2024-07-01", "2024-12-31")


def _rows(ic: list[float], sharpe: list[float] | None = None, psi: list[float] | None = None) -> pd.DataFrame:
    """Drift rows over ``DAYS`` for the given daily 5-day mean IC (and 20-day Sharpe, mean PSI; healthy if
    left out), each row's levels as the alert matrix sets them from the rows up to it."""
    n = len(ic)
    frame = pd.DataFrame(
        {
            "date": [d.isoformat() for d in DAYS[:n]],
            "ic_mean_5": ic,
            "sharpe_20": sharpe if sharpe is not None else [1.0] * n,
            "psi_mean": psi if psi is not None else [0.01] * n,
        }
    )
    evaluated = [alerts.evaluate(frame.iloc[: i + 1], CFG) for i in range(n)]
    return frame.assign(levels=[e.levels for e in evaluated], reasons=[e.reasons for e in evaluated])


def _changes(rows, state="live", after=None, policy=POLICY) -> list[tuple[str, str, str, str]]:
    return [(d.date, d.from_state, d.to_state, d.signal) for d in decide(rows, state, after, CFG, policy)]


def test_a_critical_ic_de_risks_from_its_onset_and_quotes_the_value():
    rows = _rows([0.05, 0.03, 0.005, 0.004, 0.02])
    (change,) = decide(rows, "live", None, CFG, POLICY)
    assert (change.date, change.from_state, change.to_state, change.signal) == ("2024-07-03", "live", "de-risked", "ic")
    assert change.values == {"ic_mean_5": 0.005}
    assert change.reason == "ic critical: ic_mean_5 < 0.01"
    assert change.key == "drift:2024-07-03:ic:de-risked"


def test_ic_below_zero_for_three_sessions_pauses_after_de_risking_at_the_first():
    # 0.005 (07-02) de-risks; -0.01, -0.02, -0.005 are three sessions below 0: paused on the third (07-08)
    rows = _rows([0.05, 0.005, -0.01, -0.02, -0.005, -0.03])
    assert _changes(rows) == [
        ("2024-07-02", "live", "de-risked", "ic"),
        ("2024-07-08", "de-risked", "paused", "ic_negative"),
    ]


def test_a_paused_model_stays_paused_when_its_metrics_recover():
    rows = _rows([-0.01, -0.01, -0.01] + [0.05] * 30)
    assert _changes(rows) == [
        ("2024-07-01", "live", "de-risked", "ic"),
        ("2024-07-03", "de-risked", "paused", "ic_negative"),
    ]


def test_a_sharpe_below_zero_for_five_sessions_de_risks_and_psi_alone_changes_no_state():
    sharpe = [0.8, -0.1, -0.2, -0.1, -0.3, -0.2, -0.1]  # the fifth negative is 07-09 (07-04 is a holiday)
    assert _changes(_rows([0.05] * 7, sharpe=sharpe)) == [("2024-07-09", "live", "de-risked", "sharpe")]
    psi = _rows([0.05] * 5, psi=[0.01, 0.4, 0.5, 0.6, 0.3])
    assert [r["psi"] for r in psi["levels"]][1:] == ["critical"] * 4  # retrain only (the sensor's)
    assert _changes(psi) == []


def test_warnings_change_nothing():
    rows = _rows([0.015] * 12, sharpe=[0.4] * 12)  # IC warning from the 5th row, Sharpe warning from the 10th
    assert {r["ic"] for r in rows["levels"][4:]} == {"warning"} == {r["sharpe"] for r in rows["levels"][9:]}
    assert _changes(rows) == []


def test_a_de_risked_model_is_restored_after_the_clean_sessions_and_never_with_zero():
    rows = _rows([0.005] + [0.05] * 12)  # de-risked on 07-01; clean from 07-02: the 10th clean row is 07-16
    assert _changes(rows) == [
        ("2024-07-01", "live", "de-risked", "ic"),
        ("2024-07-16", "de-risked", "live", "recovered"),
    ]
    assert _changes(rows, policy=ActionPolicy(restore_sessions=0)) == [("2024-07-01", "live", "de-risked", "ic")]


def test_a_resumed_model_is_paused_again_only_by_a_new_breach():
    # paused on 07-03; a reviewer resumes it after 07-05 while IC is still negative: the continuing breach
    # does not pause it again; IC recovers (07-09, 07-10), then a new breach de-risks (07-11) and a new run
    # of three negatives pauses (07-15; 07-04 is a holiday)
    ic = [-0.01, -0.01, -0.01, -0.01, -0.01, 0.05, 0.05, -0.01, -0.01, -0.01]
    rows = _rows(ic)
    assert _changes(rows, state="live", after="2024-07-05") == [
        ("2024-07-11", "live", "de-risked", "ic"),
        ("2024-07-15", "de-risked", "paused", "ic_negative"),
    ]


@pytest.mark.parametrize("state", ["shadow", "retired"])
def test_a_shadow_or_retired_model_is_monitored_but_never_acted_on(state):
    assert _changes(_rows([-0.01] * 6), state=state) == []


def test_the_policy_refuses_bad_values_and_gives_each_state_its_exposure():
    assert [POLICY.exposure(s) for s in ("live", "de-risked", "paused", "shadow", "retired")] == [1, 0.5, 0, 0, 0]
    with pytest.raises(ValueError, match="derisk_exposure must be in"):
        ActionPolicy(derisk_exposure=1.0)
    with pytest.raises(ValueError, match="restore_sessions must be"):
        ActionPolicy(restore_sessions=-1)
    with pytest.raises(ValueError, match="unknown model state 'live!'"):
        POLICY.exposure("live!")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([0.05, 0.015, 0.005, -0.01]), min_size=1, max_size=40),
    st.lists(st.integers(1, 39), max_size=5),
)
def test_deciding_in_pieces_decides_what_deciding_at_once_does(ic, cuts):
    """A sensor that restarts, or reads the rows in batches, carries on from its last recorded change:
    the changes are those of one pass over all rows, none repeated and none lost."""
    rows = _rows(ic)
    once = decide(rows, "live", None, CFG, POLICY)
    state, after, pieces = "live", None, []
    for end in sorted({c for c in cuts if c < len(ic)} | {len(ic)}):
        new = decide(rows.iloc[:end], state, after, CFG, POLICY)
        pieces += new
        if new:
            state, after = new[-1].to_state, new[-1].date
    assert pieces == once

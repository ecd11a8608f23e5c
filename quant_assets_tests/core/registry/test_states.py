"""Model states in the registry (registry.states) on a real Postgres: every change a row, recorded once,
resumed only by a named approval or a promotion, and a promotion's two changes."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from quant_assets.core.registry import artifacts, models, promotion, states
from quant_assets.core.storage import pg

AS_OF = dt.date(2024, 7, 3)


@pytest.fixture
def registry(pg_db, tmp_path):
    """A registry whose model ``m`` v1 is champion; ``add(rank_ic)`` registers the next version."""
    oos = pd.DataFrame({"date": [1], "entity_key": ["A"], "prediction": [0.0], "label": [0.0]})
    files = artifacts.save_model_files(tmp_path, "m", b"{}", oos)
    metrics = lambda v: pd.DataFrame(  # noqa: E731
        {"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [v]}
    )
    with pg.connect(pg_db) as conn:

        def add(rank_ic: float) -> models.ModelRef:
            dataset = ("2024-01-02", "2024-06-28")
            return models.register_model(conn, "m", "S", {"x": "v1"}, {}, "c", dataset, files, metrics(rank_ic))

        champion = add(0.03)
        promotion.record(conn, champion, "promoted", "first champion", as_of=dt.date(2024, 6, 28))
        yield conn, champion, add


def _pause(date: str, from_state: str = "live") -> states.Decision:
    return states.Decision(date, from_state, "paused", "ic_negative", {"ic_mean_5": -0.01}, "ic_negative critical")


def test_a_change_is_recorded_once_and_takes_effect_the_next_session(registry):
    conn, champion, _ = registry
    assert states.current(conn, champion).state == "live"
    assert states.record(conn, champion, _pause("2024-07-03"), "sensor:act_on_drift") is True
    assert states.record(conn, champion, _pause("2024-07-03"), "sensor:act_on_drift") is False  # a restart
    assert states.current(conn, champion) == states.State("paused", AS_OF, dt.date(2024, 7, 5))  # 07-04: holiday
    rows = states.transitions(conn, "m")
    assert rows[["model", "from_state", "to_state", "rule", "actor"]].values.tolist() == [
        ["m:v1", "shadow", "live", "promotion", "job"],
        ["m:v1", "live", "paused", "ic_negative", "sensor:act_on_drift"],
    ]
    assert rows["trigger_values"].iloc[1] == {"ic_mean_5": -0.01}


def test_only_a_paused_or_de_risked_model_is_resumed_and_only_with_a_name_and_a_reason(registry):
    conn, champion, _ = registry
    with pytest.raises(states.StateError, match="m:v1 is live: only a paused or de-risked model"):
        states.approve(conn, champion, "ana", "reviewed", AS_OF)
    states.record(conn, champion, _pause("2024-07-03"), "sensor:act_on_drift")
    with pytest.raises(states.StateError, match="needs the approver's name and a reason"):
        states.approve(conn, champion, "ana", "  ", AS_OF)
    change = states.approve(conn, champion, " ana ", "data vendor outage explained the IC", dt.date(2024, 7, 8))
    assert (change.from_state, change.to_state, change.values) == ("paused", "live", {"approver": "ana"})
    assert states.current(conn, champion) == states.State("live", dt.date(2024, 7, 8), dt.date(2024, 7, 9))
    last = states.transitions(conn, "m").iloc[-1]
    assert (last["actor"], last["rule"], last["reason"]) == (
        "user:ana",
        "approval",
        "data vendor outage explained the IC",
    )


def test_a_promotion_makes_the_challenger_live_and_retires_the_paused_champion(registry):
    conn, champion, add = registry
    states.record(conn, champion, _pause("2024-07-03"), "sensor:act_on_drift")
    challenger = add(0.05)
    assert states.current(conn, challenger).state == "shadow"
    promotion.record(conn, challenger, "promoted", "net Sharpe 2.0 > 1.0", as_of=dt.date(2024, 7, 8), actor="run:r1")
    assert states.current(conn, challenger) == states.State("live", dt.date(2024, 7, 8), dt.date(2024, 7, 9))
    assert states.current(conn, champion).state == "retired"
    rows = states.transitions(conn, "m").tail(2)
    assert rows[["model", "from_state", "to_state", "actor"]].values.tolist() == [
        ["m:v2", "shadow", "live", "run:r1"],
        ["m:v1", "paused", "retired", "run:r1"],
    ]

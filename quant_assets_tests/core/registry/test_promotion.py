"""The promotion rule on its own: both models backtested on the same sessions, every test of the rule, the
shadow period, and what a decision records.

Every expected figure is worked out by hand in the comments, or read off the backtest engine run on the same
frame (the engine has its own tests), not by the rule under test.
"""

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.registry import artifacts, champion, models, promotion, states
from quant_assets.core.registry.promotion import Evidence, PromotionRule, Side
from quant_assets.core.research import backtest
from quant_assets.core.storage import pg

AS_OF = dt.date(2024, 1, 2)
RULE = PromotionRule(shadow_sessions=10, margin=0.5, min_dsr=0.9, max_turnover=1.0, min_sessions=20)


def _side(name: str, net_sharpe: float, turnover: float = 0.5) -> Side:
    return Side(name, net_sharpe, net_sharpe + 1, turnover, 0.05, 0.1, -0.05, net_sharpe / math.sqrt(252))


def _evidence(ch: Side, champ: Side | None, *, sessions=60, shadow=10, required=10, dsr=0.97) -> Evidence:
    return Evidence(ch, champ, sessions, "2024-03-01", "2024-05-24", shadow, required, dsr, 3, "2024-05-28")


def test_a_challenger_waits_until_its_shadow_sessions_have_matured():
    ev = _evidence(_side("c", 9.0), _side("k", 1.0), shadow=9)
    assert promotion.judge(ev, RULE, 1) == ("waiting", "9 of 10 shadow sessions with matured labels so far")


def test_every_test_of_the_rule_is_named_with_both_models_numbers():
    basis = " (on 60 out-of-sample sessions 2024-03-01..2024-05-24, 10 in shadow)"
    ok = promotion.judge(_evidence(_side("c", 2.0), _side("k", 1.0)), RULE, 1)
    assert ok == (
        "promoted",
        "60 common sessions >= 20; net Sharpe 2.000 > champion v1 1.000 + margin 0.5; deflated Sharpe 0.970 "
        "(3 challenger(s) tried) >= 0.9; turnover 0.500 <= cap 1" + basis,
    )
    # 1.5 = 1.0 + 0.5: an equal score never promotes
    assert promotion.judge(_evidence(_side("c", 1.5), _side("k", 1.0)), RULE, 1) == (
        "rejected",
        "net Sharpe 1.500 is not > champion v1 1.000 + margin 0.5" + basis,
    )
    everything = _evidence(_side("c", 1.2, turnover=1.01), _side("k", 1.0), sessions=19, dsr=0.5)
    decision, reason = promotion.judge(everything, RULE, 1)
    assert decision == "rejected" and reason.split("; ") == [
        "19 common sessions is not >= 20",
        "net Sharpe 1.200 is not > champion v1 1.000 + margin 0.5",
        "deflated Sharpe 0.500 (3 challenger(s) tried) is not >= 0.9",
        "turnover 1.010 is not <= cap 1 (on 19 out-of-sample sessions 2024-03-01..2024-05-24, 10 in shadow)",
    ]
    nan = promotion.judge(_evidence(_side("c", float("nan")), _side("k", 1.0)), RULE, 1)
    assert nan[0] == "rejected" and "net Sharpe nan is not >" in nan[1]


def test_a_first_model_beats_the_margin_itself_and_a_backfill_says_it_had_no_shadow_period():
    first = promotion.judge(_evidence(_side("c", 0.6), None, shadow=0, required=0), RULE)
    assert first[0] == "promoted" and "net Sharpe 0.600 > margin 0.5 (first champion)" in first[1]
    backfill = PromotionRule(shadow_sessions=0, margin=0.5, min_dsr=0.9, max_turnover=1.0)
    decision, reason = promotion.judge(_evidence(_side("c", 2.0), _side("k", 1.0), shadow=0, required=0), backfill, 1)
    assert decision == "promoted" and reason.endswith("0 in shadow; shadow_sessions 0: no shadow period (a backfill))")


def test_the_rule_refuses_settings_that_cannot_mean_anything():
    with pytest.raises(ValueError, match="min_dsr"):
        PromotionRule(min_dsr=1.0)
    with pytest.raises(ValueError, match="shadow_sessions"):
        PromotionRule(shadow_sessions=-1)
    with pytest.raises(ValueError, match="max_turnover"):
        PromotionRule(max_turnover=0.0)


def _market(seed: int = 7) -> pd.DataFrame:
    """50 names x 124 sessions: labels carry a name's stable tilt (0.2%) and daily noise (1%). The champion
    predicts the tilt (its ranks never change: no turnover after the first day); the challenger sees 30% of the
    day's noise, under more noise of its own: a higher rank IC, its holdings changing every day."""
    rng = np.random.default_rng(seed)
    days = sessions.sessions_between(dt.date(2024, 1, 2), dt.date(2024, 6, 28))
    tilt = rng.normal(size=50)
    frames = []
    for day in days:
        eps = rng.normal(size=50)
        frames.append(pd.DataFrame({
            "date": day, "entity_key": [f"N{i:02d}" for i in range(50)], "label": 0.002 * tilt + 0.01 * eps,
            "champion": tilt, "challenger": 0.3 * eps + rng.normal(size=50),
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_a_challenger_with_a_higher_rank_ic_whose_turnover_eats_its_edge_is_rejected():
    market = _market()
    costs = backtest.Costs(40.0, 40.0, 1.0, 1e7)  # 80 bps a side: an illiquid book
    ch, champ, days, net = promotion.compare(
        ("model:m:v2", market[["date", "entity_key"]].assign(prediction=market["challenger"])),
        ("model:m:v1", market[["date", "entity_key"]].assign(prediction=market["champion"])),
        market[["date", "entity_key", "label"]],
        backtest.PortfolioRule(),
        costs,
    )
    assert len(days) == 124 and ch.rank_ic > champ.rank_ic + 0.05 and ch.gross_sharpe > champ.gross_sharpe
    assert ch.turnover > 1.5 > 0.01 > champ.turnover
    assert ch.net_sharpe < 0 < champ.net_sharpe
    engine = backtest.run(market[["date", "entity_key", "label"]].assign(prediction=market["challenger"]), costs=costs)
    assert ch.net_sharpe == engine.metrics["sharpe"] and net.equals(engine.daily["net"])
    dsr, trials = promotion.deflated(net, [0.05], ch.sharpe_per_period)
    assert trials == 2 and dsr < 0.01
    ev = Evidence(ch, champ, len(days), str(days[0]), str(days[-1]), 10, 10, dsr, trials, "2024-07-01")
    decision, reason = promotion.judge(ev, PromotionRule(), 1)
    assert decision == "rejected"
    # the costs reject it (net Sharpe, and so its deflated Sharpe), not the turnover cap (2.5 of 4 a day)
    assert reason.startswith(f"net Sharpe {ch.net_sharpe:.3f} is not > champion v1 {champ.net_sharpe:.3f} + margin 0;")
    assert "deflated Sharpe 0.000 (2 challenger(s) tried) is not >= 0.95" in reason and "turnover" not in reason


def test_both_models_are_backtested_on_the_pairs_both_predicted_that_have_a_label():
    market = _market()
    challenger = market[["date", "entity_key"]].assign(prediction=market["challenger"])
    champion_rows = market[["date", "entity_key"]].assign(prediction=market["champion"])
    champion_rows = champion_rows[champion_rows["entity_key"] != "N00"]  # the champion never scored N00
    labels = market[["date", "entity_key", "label"]].copy()
    labels.loc[labels["date"] == labels["date"].iloc[0], "label"] = np.nan  # the first day's labels unknown
    ch, champ, days, _ = promotion.compare(("c", challenger), ("k", champion_rows), labels, backtest.PortfolioRule(),
                                           backtest.NO_COSTS)  # fmt: skip
    assert len(days) == 123 and days[0] == market["date"].iloc[0 + 50]
    common = market[(market["entity_key"] != "N00") & (market["date"] != market["date"].iloc[0])]
    alone = backtest.run(common[["date", "entity_key", "label"]].assign(prediction=common["challenger"]),
                         costs=backtest.NO_COSTS)  # fmt: skip
    assert ch.net_sharpe == alone.metrics["sharpe"]


# --- what a decision records ----------------------------------------------------------------------------------


@pytest.fixture
def registry(pg_db, tmp_path):
    """A registry whose model ``m`` v1 is champion; ``add()`` registers the next version (in shadow)."""
    oos = pd.DataFrame({"date": [1], "entity_key": ["A"], "prediction": [0.0], "label": [0.0]})
    files = artifacts.save_model_files(tmp_path, "m", b"{}", oos)
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.03]})
    with pg.connect(pg_db) as conn:

        def add() -> models.ModelRef:
            dataset = ("2024-01-02", "2024-06-28")
            return models.register_model(conn, "m", "S", {"x": "v1"}, {}, "c", dataset, files, metrics)

        first = add()
        assert champion.shadows(conn, "m") == [first]
        promotion.record(conn, first, "promoted", "first champion", as_of=AS_OF)
        yield conn, first, add


def _status(conn) -> list[tuple[int, str]]:
    with conn.cursor() as cur:
        cur.execute("SELECT version, status FROM quant.models ORDER BY version")
        return cur.fetchall()


def test_a_rejection_retires_the_challenger_and_a_promotion_waits_for_what_the_book_traded(registry):
    conn, first, add = registry
    loser, winner = add(), add()
    assert champion.shadows(conn, "m") == [loser, winner]
    ev = {"challenger": {"sharpe_per_period": -0.2}}
    promotion.record(conn, loser, "rejected", "net Sharpe -3.0 is not > ...", as_of=dt.date(2024, 7, 15), evidence=ev)
    assert states.current(conn, loser) == states.State("retired", dt.date(2024, 7, 15), dt.date(2024, 7, 16))
    assert champion.shadows(conn, "m") == [winner] and models.champions(conn, "m") == [first]
    # decided on 07-15's information, but the book has traded through 07-31: live from 08-01, never before
    promotion.record(conn, winner, "promoted", "net Sharpe 2.0 > ...", as_of=dt.date(2024, 7, 15),
                     effective=dt.date(2024, 8, 1), evidence={"challenger": {"sharpe_per_period": 0.1}})  # fmt: skip
    assert states.champion_on(conn, "m", dt.date(2024, 7, 31)) == first
    assert states.champion_on(conn, "m", dt.date(2024, 8, 1)) == winner
    assert states.state_on(conn, first, dt.date(2024, 8, 1)) == "retired"
    assert _status(conn) == [(1, "retired"), (2, "rejected"), (3, "champion")]
    assert promotion.earlier_trials(conn, "m", add()) == [-0.2, 0.1]
    with pytest.raises(states.StateError, match="cannot take effect"):
        promotion.record(conn, add(), "promoted", "x", as_of=dt.date(2024, 8, 1), effective=dt.date(2024, 8, 1))


def test_shadows_score_every_session_and_a_retired_model_its_first_twenty(registry):
    conn, first, add = registry
    shadow, rejected = add(), add()
    promotion.record(conn, rejected, "rejected", "net Sharpe 0.2 is not > ...", as_of=dt.date(2024, 7, 15))
    days = sessions.sessions_between("2024-07-01", "2024-08-30")
    beside = {ref: (why, mine) for ref, why, mine in champion.monitored_beside(conn, "m", days)}
    assert beside[shadow] == ("shadow", days)
    # retired from 07-16: scored 07-16 .. 08-12, the 20 sessions from then (07-16 + 19 sessions)
    assert beside[rejected] == ("retired", sessions.sessions_between("2024-07-16", "2024-08-12"))
    assert first not in beside  # the champion scores as champion
    later = sessions.sessions_between("2024-08-13", "2024-08-30")
    assert [ref for ref, _, _ in champion.monitored_beside(conn, "m", later)] == [shadow]

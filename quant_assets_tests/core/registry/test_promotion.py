"""The promotion rule on its own: the head-to-head score, the too-few-sessions fallback, min_improvement.

Every expected figure is worked out by hand in the comments, not by the code under test.
"""

import datetime as dt
import math

import pandas as pd
import pytest

from quant_assets.core.registry import artifacts, models, promotion
from quant_assets.core.registry.promotion import MIN_COMMON_DAYS, HeadToHead, head_to_head
from quant_assets.core.storage import pg

AS_OF = dt.date(2024, 1, 2)  # the session a test's promotion is decided on

D1, D2, D3, D4 = (dt.date(2024, 7, d) for d in (1, 2, 3, 5))


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["date", "entity_key", "prediction"])


def test_head_to_head_scores_both_on_the_pairs_both_predicted():
    labels = pd.DataFrame(
        [(D1, "A", 1.0), (D1, "B", 2.0), (D1, "C", 3.0)]
        + [(D2, "A", 1.0), (D2, "B", 2.0), (D2, "C", 3.0), (D2, "D", 4.0)]
        + [(D3, "A", 1.0), (D3, "B", 2.0), (D3, "C", 3.0)]
        + [(D4, "A", 1.0), (D4, "B", 2.0), (D4, "C", 3.0)],
        columns=["date", "entity_key", "label"],
    )
    challenger = _frame(
        [(D1, "A", 0.1), (D1, "B", 0.2), (D1, "C", 0.3)]  # ranks 1,2,3 vs 1,2,3: rank IC +1
        + [(D2, "A", 1.0), (D2, "B", 3.0), (D2, "C", 2.0), (D2, "D", 9.0)]  # D: champion has none, dropped
        + [(D3, "A", 0.1), (D3, "B", 0.2), (D3, "C", 0.3)]  # champion silent on D3: not common
        + [(D4, "A", 0.1), (D4, "B", 0.2)]  # two common names: no IC, the day does not count
    )
    champion = _frame(
        [(D1, "A", 0.3), (D1, "B", 0.2), (D1, "C", 0.1)]  # reversed: rank IC -1
        + [(D2, "A", 3.0), (D2, "B", 1.0), (D2, "C", 2.0)]
        + [(D4, "A", 0.1), (D4, "B", 0.2), (D4, "C", 0.3)]
    )
    result = head_to_head(challenger, champion, labels)
    # D2 on A, B, C: challenger ranks (1,3,2) vs (1,2,3): sum d^2 = 2, rho = 1 - 6*2/(3*8) = 0.5;
    # champion ranks (3,1,2): d = (2,-1,-1), sum d^2 = 6, rho = 1 - 36/24 = -0.5.
    assert (result.days, result.first, result.last) == (2, "2024-07-01", "2024-07-02")
    assert result.challenger_rank_ic == pytest.approx((1.0 + 0.5) / 2)
    assert result.champion_rank_ic == pytest.approx((-1.0 - 0.5) / 2)
    assert result.describe() == "head-to-head on 2 common out-of-sample sessions 2024-07-01..2024-07-02"


def test_head_to_head_without_common_pairs_is_empty():
    labels = pd.DataFrame([(D1, "A", 1.0)], columns=["date", "entity_key", "label"])
    result = head_to_head(_frame([(D1, "A", 0.1)]), _frame([(D2, "A", 0.1)]), labels)
    assert (result.days, result.first, result.last) == (0, None, None)
    assert math.isnan(result.challenger_rank_ic) and math.isnan(result.champion_rank_ic)


def _metrics(rank_ic: float) -> pd.DataFrame:
    return pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [rank_ic]})


@pytest.fixture
def registry(pg_db, tmp_path):
    """A registry whose model ``m`` v1 is champion on its own test rank IC 0.03; ``add(rank_ic)`` registers the next."""
    oos = pd.DataFrame({"date": [1], "entity_key": ["A"], "prediction": [0.0], "label": [0.0]})
    files = artifacts.save_model_files(tmp_path, "m", b"{}", oos)
    with pg.connect(pg_db) as conn:

        def add(rank_ic: float) -> models.ModelRef:
            dataset = ("2024-01-02", "2024-06-28")
            return models.register_model(conn, "m", "S", {"x": "v1"}, {}, "c", dataset, files, _metrics(rank_ic))

        champion = add(0.03)
        assert promotion.decide_promotion(conn, champion, as_of=AS_OF) == (
            "promoted",
            "test rank_ic 0.0300, first champion",
        )
        yield conn, add


def _h2h(days: int, challenger: float, champion: float) -> HeadToHead:
    return HeadToHead(days, challenger, champion, "2024-07-01", "2024-12-30")


def _status(conn) -> list[tuple[int, str]]:
    with conn.cursor() as cur:
        cur.execute("SELECT version, status FROM quant.models ORDER BY version")
        return cur.fetchall()


def test_head_to_head_decides_over_own_test_scores(registry):
    conn, add = registry
    basis = f" (head-to-head on {MIN_COMMON_DAYS} common out-of-sample sessions 2024-07-01..2024-12-30)"
    # own test score 0.01 loses to the champion's 0.03, but the common sessions say 0.05 against 0.02
    winner = add(0.01)
    decision = promotion.decide_promotion(conn, winner, comparison=_h2h(MIN_COMMON_DAYS, 0.05, 0.02), as_of=AS_OF)
    assert decision == ("promoted", "rank IC 0.0500 beats champion v1 0.0200 + 0.0" + basis)
    assert _status(conn) == [(1, "retired"), (2, "champion")]
    # own test score 0.10 beats the champion's 0.01, but the common sessions say 0.01 against 0.02
    loser = add(0.10)
    decision = promotion.decide_promotion(conn, loser, comparison=_h2h(MIN_COMMON_DAYS, 0.01, 0.02), as_of=AS_OF)
    assert decision == ("rejected", "rank IC 0.0100 does not beat champion v2 0.0200 + 0.0" + basis)
    assert models.champions(conn, "m")[0] == winner
    negative = add(0.10)
    decision = promotion.decide_promotion(conn, negative, comparison=_h2h(MIN_COMMON_DAYS, -0.01, -0.03), as_of=AS_OF)
    assert decision == ("rejected", "rank IC -0.0100 is not positive" + basis)


def test_too_few_common_sessions_fall_back_to_own_test_scores(registry):
    conn, add = registry
    few = MIN_COMMON_DAYS - 1
    basis = f" (only {few} common out-of-sample sessions (< {MIN_COMMON_DAYS}): own test periods)"
    # the 19 common sessions would promote (0.5 against 0.0); the own test scores decide: 0.01 < 0.03
    candidate = add(0.01)
    decision = promotion.decide_promotion(conn, candidate, comparison=_h2h(few, 0.5, 0.0), as_of=AS_OF)
    assert decision == ("rejected", "test rank_ic 0.0100 does not beat champion v1 0.0300 + 0.0" + basis)
    # and the other way round: 0.04 >= 0.03 promotes, though the common sessions say 0.0 against 0.5
    candidate = add(0.04)
    decision = promotion.decide_promotion(conn, candidate, comparison=_h2h(few, 0.0, 0.5), as_of=AS_OF)
    assert decision == ("promoted", "test rank_ic 0.0400 beats champion v1 0.0300 + 0.0" + basis)


def test_a_first_model_ignores_any_comparison(pg_db, tmp_path):
    oos = pd.DataFrame({"date": [1], "entity_key": ["A"], "prediction": [0.0], "label": [0.0]})
    files = artifacts.save_model_files(tmp_path, "m", b"{}", oos)
    with pg.connect(pg_db) as conn:
        ref = models.register_model(conn, "m", "S", {}, {}, "c", ("2024-01-02", "2024-06-28"), files, _metrics(0.02))
        decision = promotion.decide_promotion(conn, ref, comparison=_h2h(50, -0.5, 0.5), as_of=AS_OF)
        assert decision == ("promoted", "test rank_ic 0.0200, first champion")


def test_min_improvement_is_a_margin_the_challenger_must_reach(registry):
    conn, add = registry
    basis = f" (head-to-head on {MIN_COMMON_DAYS} common out-of-sample sessions 2024-07-01..2024-12-30)"
    # 0.5 against 0.25: the margin 0.375 is not reached (0.5 < 0.625), the margin 0.25 exactly is not beaten
    # (0.5 = 0.5: an equal score never promotes), the margin 0.125 is (0.5 > 0.375)
    candidate = add(0.01)
    decision = promotion.decide_promotion(conn, candidate, 0.375, _h2h(MIN_COMMON_DAYS, 0.5, 0.25), as_of=AS_OF)
    assert decision == ("rejected", "rank IC 0.5000 does not beat champion v1 0.2500 + 0.375" + basis)
    decision = promotion.decide_promotion(conn, candidate, 0.25, _h2h(MIN_COMMON_DAYS, 0.5, 0.25), as_of=AS_OF)
    assert decision == ("rejected", "rank IC 0.5000 does not beat champion v1 0.2500 + 0.25" + basis)
    decision = promotion.decide_promotion(conn, candidate, 0.125, _h2h(MIN_COMMON_DAYS, 0.5, 0.25), as_of=AS_OF)
    assert decision == ("promoted", "rank IC 0.5000 beats champion v1 0.2500 + 0.125" + basis)
    # on own test scores too: 0.04 against 0.01 (candidate v2, now champion) with margin 0.05 is rejected
    later = add(0.04)
    decision = promotion.decide_promotion(conn, later, min_improvement=0.05, as_of=AS_OF)
    assert decision == ("rejected", "test rank_ic 0.0400 does not beat champion v2 0.0100 + 0.05")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM quant.model_promotions")
        assert cur.fetchone()[0] == 5  # v1, three for v2, one for v3: every decision recorded

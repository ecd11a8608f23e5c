"""The promotion rule, and champion versus challenger on the same out-of-sample sessions.

A candidate becomes champion when its rank IC is positive and beats the current champion's plus
``min_improvement`` (strictly: an equal score never promotes); otherwise it is rejected. Both are scored on
the same out-of-sample sessions when there are enough of them (``head_to_head``), else on their own
walk-forward test periods (the reason says which). Both decisions are recorded.

Each model's own walk-forward test score covers a different period, and across a regime change the
older period flatters the older model. So both are scored on the sessions where both have
out-of-sample predictions: the challenger's walk-forward test predictions, and the champion's
track record (its walk-forward test predictions, then its live predictions after its training as-of),
with the same labels (the challenger's snapshot, the latest price versions).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.registry import states
from quant_assets.core.registry.models import PROMOTION_METRIC, ModelRef, champions, metric
from quant_assets.core.research import scoring
from quant_assets.core.research.metrics import daily_ic
from quant_assets.core.storage import lake

MIN_COMMON_DAYS = 20


@dataclass(frozen=True)
class HeadToHead:
    days: int
    challenger_rank_ic: float
    champion_rank_ic: float
    first: str | None
    last: str | None

    def describe(self) -> str:
        return f"head-to-head on {self.days} common out-of-sample sessions {self.first}..{self.last}"


def head_to_head(challenger: pd.DataFrame, champion: pd.DataFrame, labels: pd.DataFrame) -> HeadToHead:
    """Mean daily rank IC of both on the (date, entity) pairs both predicted; frames: date, entity_key, prediction."""
    key = ["date", "entity_key"]
    both = (
        challenger[key + ["prediction"]]
        .merge(champion[key + ["prediction"]], on=key, suffixes=("_challenger", "_champion"))
        .merge(labels[key + ["label"]], on=key)
    )
    if both.empty:
        return HeadToHead(0, math.nan, math.nan, None, None)
    ric = {
        side: daily_ic(both, pred=f"prediction_{side}", method="spearman").dropna()
        for side in ("challenger", "champion")
    }
    days = ric["challenger"].index.intersection(ric["champion"].index)
    return HeadToHead(
        len(days),
        float(ric["challenger"].loc[days].mean()) if len(days) else math.nan,
        float(ric["champion"].loc[days].mean()) if len(days) else math.nan,
        str(min(days)) if len(days) else None,
        str(max(days)) if len(days) else None,
    )


def track_record(root, oos: pd.DataFrame, node: str, after, until) -> pd.DataFrame:
    """A model's out-of-sample predictions: its walk-forward test rows, then its live predictions in (after, until]."""
    frames = [oos[["date", "entity_key", "prediction"]]]
    days = sessions.sessions_between(sessions.next_session(after), until)
    for day, live in lake.read_partitions(root, scoring.DATASET, days).items():
        if len(live):
            live = lake.latest_versions(live[live["model"] == node], ["entity_key"])
            frames.append(live[["entity_key", "prediction"]].assign(date=day))
    out = pd.concat(frames, ignore_index=True)
    return out.drop_duplicates(["date", "entity_key"], keep="last")


def decide_promotion(
    conn,
    candidate: ModelRef,
    min_improvement: float = 0.0,
    comparison: HeadToHead | None = None,
    *,
    as_of: dt.date,
    actor: str = "job",
) -> tuple[str, str]:
    """Apply the promotion rule, record the decision, return (decision, reason). A promotion is also a change
    of state of both models (``states``): the candidate goes live and the champion it replaces is retired,
    from the session after ``as_of`` (the information the candidate was trained on)."""
    current = champions(conn, candidate.name)
    incumbent = current[0] if current else None
    label = f"test {PROMOTION_METRIC}"
    if incumbent is not None and comparison is not None and comparison.days >= MIN_COMMON_DAYS:
        score, incumbent_score = comparison.challenger_rank_ic, comparison.champion_rank_ic
        basis, label = comparison.describe(), "rank IC"
    else:
        score = metric(conn, candidate)
        incumbent_score = metric(conn, incumbent) if incumbent else None
        basis = None
        if incumbent is not None and comparison is not None:
            basis = f"only {comparison.days} common out-of-sample sessions (< {MIN_COMMON_DAYS}): own test periods"
    if score is None or not score > 0:
        shown = "missing" if score is None else f"{score:.4f}"
        decision, reason = "rejected", f"{label} {shown} is not positive"
    elif incumbent_score is not None and not score > incumbent_score + min_improvement:
        decision, reason = (
            "rejected",
            f"{label} {score:.4f} does not beat champion v{incumbent.version} {incumbent_score:.4f} + "
            f"{min_improvement}",
        )
    else:
        decision = "promoted"
        reason = f"{label} {score:.4f}" + (
            f" beats champion v{incumbent.version} {incumbent_score:.4f} + {min_improvement}"
            if incumbent
            else ", first champion"
        )
    if basis:
        reason = f"{reason} ({basis})"
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO quant.model_promotions (name, model_id, decision, reason) VALUES (%s, %s, %s, %s)",
            (candidate.name, candidate.model_id, decision, reason),
        )
        if decision == "promoted":
            _change_states(conn, candidate, incumbent, as_of, reason, actor)
            cur.execute(
                "UPDATE quant.models SET status = 'retired' WHERE name = %s AND status = 'champion'", (candidate.name,)
            )
        cur.execute(
            "UPDATE quant.models SET status = %s WHERE model_id = %s",
            ("champion" if decision == "promoted" else "rejected", candidate.model_id),
        )
    return decision, reason


def _change_states(conn, candidate: ModelRef, incumbent: ModelRef | None, as_of: dt.date, why: str, actor: str) -> None:
    """The promotion's two state changes, keyed by the candidate (a retried decision records them once)."""
    key = f"promotion:{candidate.node}"
    changes = [(candidate, "live")] + ([(incumbent, "retired")] if incumbent else [])
    for ref, to_state in changes:
        before = states.current(conn, ref).state
        change = states.Decision(as_of.isoformat(), before, to_state, "promotion", {"promoted": candidate.node}, why)
        states.record(conn, ref, change, actor, key)

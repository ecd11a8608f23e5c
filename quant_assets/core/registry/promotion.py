"""The promotion rule: a challenger replaces the champion only on evidence, net of costs (DESIGN.md: Promotion).

The evidence (``compare``) is a backtest of the challenger and of the champion with the same portfolio rule and
costs on the same out-of-sample sessions: the challenger's walk-forward test sessions and its shadow sessions (the
sessions it scored beside the champion after its training as-of), on the (date, name) pairs both predicted, with
the labels known at the decision. The champion's predictions there are its track record (``track_record``): its
own walk-forward test predictions, then its live ones. Across a regime change each model's own test period
flatters the older model, so only common sessions count.

The rule (``PromotionRule``, ``judge``) promotes when the challenger

- has ``shadow_sessions`` shadow sessions with matured labels (0 allowed for backfills: the decision says so;
  a first model has no champion to shadow and needs none), else it waits;
- has at least ``min_sessions`` common out-of-sample sessions;
- has a net Sharpe above the champion's plus ``margin`` (strictly: an equal score never promotes; a first model
  must beat ``margin`` itself);
- has a deflated Sharpe (given the per-period net Sharpe of every challenger tried for the model name,
  this one included) of at least ``min_dsr``;
- trades a mean daily turnover of at most ``max_turnover``;

and rejects it otherwise, naming every test it failed. A decision quotes both models' numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.registry import states
from quant_assets.core.registry.models import ModelRef, champions
from quant_assets.core.research import backtest, scoring

PROMOTIONS_EVIDENCE = """
ALTER TABLE quant.model_promotions ADD COLUMN IF NOT EXISTS evidence jsonb;
ALTER TABLE quant.model_promotions ADD COLUMN IF NOT EXISTS as_of date;
ALTER TABLE quant.model_promotions ADD COLUMN IF NOT EXISTS effective date;
"""


@dataclass(frozen=True)
class PromotionRule:
    """What a challenger must show to be promoted (DESIGN.md defaults)."""

    shadow_sessions: int = 10
    margin: float = 0.0
    min_dsr: float = 0.95
    max_turnover: float = 2.5
    min_sessions: int = 20

    def __post_init__(self) -> None:
        for name in ("shadow_sessions", "min_sessions"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 0):
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if not 0.0 <= self.min_dsr < 1.0:
            raise ValueError(f"min_dsr is a probability in [0, 1), got {self.min_dsr!r}")
        if not self.max_turnover > 0:
            raise ValueError(f"max_turnover must be positive, got {self.max_turnover!r}")


@dataclass(frozen=True)
class Side:
    """One model's backtest on the common sessions."""

    model: str
    net_sharpe: float
    gross_sharpe: float
    turnover: float
    rank_ic: float
    annual_return: float
    max_drawdown: float
    sharpe_per_period: float

    @classmethod
    def of(cls, model: str, result: backtest.BacktestResult) -> Side:
        m, net = result.metrics, result.daily["net"]
        return cls(model, m["sharpe"], result.gross_metrics["sharpe"], m["turnover"], m["rank_ic"],
                   m["annual_return"], m["max_drawdown"], backtest.sharpe(net, periods=1))  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    """Both models on the same out-of-sample sessions, and what the rule reads besides."""

    challenger: Side
    champion: Side | None
    sessions: int
    first: str | None
    last: str | None
    shadow: int  # shadow sessions among them
    shadow_required: int
    dsr: float
    trials: int
    decided_on: str  # the session whose information (labels known by its close) the decision used

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=float).replace("NaN", "null"))


def track_record(root, oos: pd.DataFrame, node: str, after, until) -> pd.DataFrame:
    """A model's out-of-sample predictions: its walk-forward test rows, then its live predictions in (after, until]."""
    days = sessions.sessions_between(sessions.next_session(after), until)
    frames = [oos[["date", "entity_key", "prediction"]], *scoring.stored(root, node, days).values()]
    out = pd.concat(frames, ignore_index=True)
    return out.drop_duplicates(["date", "entity_key"], keep="last")


def compare(
    challenger: tuple[str, pd.DataFrame],
    champion: tuple[str, pd.DataFrame] | None,
    labels: pd.DataFrame,
    rule: backtest.PortfolioRule,
    costs: backtest.Costs,
) -> tuple[Side, Side | None, list, pd.Series]:
    """Backtest (model, predictions) pairs on the (date, entity) pairs both predicted that have a label;
    returns both sides, the common sessions and the challenger's daily net returns. Frames: date, entity_key,
    prediction (labels: label)."""
    key = ["date", "entity_key"]
    both = challenger[1][key + ["prediction"]].rename(columns={"prediction": "challenger"})
    if champion is not None:
        both = both.merge(champion[1][key + ["prediction"]].rename(columns={"prediction": "champion"}), on=key)
    both = both.merge(labels[key + ["label"]].dropna(), on=key).sort_values(key, ignore_index=True)
    days = sorted(both["date"].unique())
    if not days:
        return Side.of(challenger[0], empty_backtest()), None, [], pd.Series(dtype=float)

    def run(column: str) -> backtest.BacktestResult:
        return backtest.run(both[key + [column, "label"]].rename(columns={column: "prediction"}), rule, costs)

    mine = run("challenger")
    theirs = Side.of(champion[0], run("champion")) if champion else None
    return Side.of(challenger[0], mine), theirs, days, mine.daily["net"]


def empty_backtest() -> backtest.BacktestResult:
    """A backtest of nothing: every figure NaN (a side with no common session)."""
    nan = dict.fromkeys(["sharpe", "turnover", "rank_ic", "annual_return", "max_drawdown"], math.nan)
    return backtest.BacktestResult(pd.DataFrame({"net": []}), pd.DataFrame(), nan, nan, pd.Series(dtype=float))


def deflated(net_daily: pd.Series, earlier: list[float], sharpe_per_period: float) -> tuple[float, int]:
    """The challenger's deflated Sharpe given ``earlier`` challengers' per-period net Sharpes and its own."""
    trials = np.array([*earlier, sharpe_per_period], dtype=float)
    trials = trials[np.isfinite(trials)]
    if len(net_daily.dropna()) < 3 or not len(trials):
        return math.nan, len(trials)
    return backtest.deflated_sharpe(net_daily, trials)["dsr"], len(trials)


def judge(ev: Evidence, rule: PromotionRule, champion_version: int | None = None) -> tuple[str, str]:
    """``promoted``, ``rejected`` or ``waiting``, and why (every failed test named, both models' numbers)."""
    if ev.shadow < ev.shadow_required:
        return "waiting", f"{ev.shadow} of {ev.shadow_required} shadow sessions with matured labels so far"
    ch, champ = ev.challenger, ev.champion
    bar = (champ.net_sharpe if champ else 0.0) + rule.margin
    against = f"champion v{champion_version} {champ.net_sharpe:.3f} + margin {rule.margin:g}" if champ else (
        f"margin {rule.margin:g} (first champion)")  # fmt: skip
    tests = [
        (ev.sessions >= rule.min_sessions, f"{ev.sessions} common sessions", f">= {rule.min_sessions}"),
        (ch.net_sharpe > bar, f"net Sharpe {ch.net_sharpe:.3f}", f"> {against}"),
        (ev.dsr >= rule.min_dsr, f"deflated Sharpe {ev.dsr:.3f} ({ev.trials} challenger(s) tried)",
         f">= {rule.min_dsr:g}"),
        (ch.turnover <= rule.max_turnover, f"turnover {ch.turnover:.3f}", f"<= cap {rule.max_turnover:g}"),
    ]  # fmt: skip
    failed = [f"{what} is not {need}" for ok, what, need in tests if not ok]
    shown = "" if rule.shadow_sessions else "; shadow_sessions 0: no shadow period (a backfill)"
    basis = f"on {ev.sessions} out-of-sample sessions {ev.first}..{ev.last}, {ev.shadow} in shadow{shown}"
    if failed:
        return "rejected", f"{'; '.join(failed)} ({basis})"
    return "promoted", f"{'; '.join(f'{what} {need}' for _, what, need in tests)} ({basis})"


def earlier_trials(conn, name: str, candidate: ModelRef) -> list[float]:
    """The per-period net Sharpe of every earlier challenger of ``name`` decided on evidence."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT (evidence -> 'challenger' ->> 'sharpe_per_period')::float FROM quant.model_promotions
               WHERE name = %s AND model_id <> %s AND evidence IS NOT NULL ORDER BY promotion_id""",
            (name, candidate.model_id),
        )
        return [v for (v,) in cur.fetchall() if v is not None]


def record(
    conn,
    candidate: ModelRef,
    decision: str,
    reason: str,
    *,
    as_of: dt.date,
    effective: dt.date | None = None,
    evidence: dict | None = None,
    actor: str = "job",
) -> None:
    """Record a decision on ``candidate`` (made on the information of ``as_of``; a promotion applies from
    ``effective``, default the next session) and the states it changes: promoted, the candidate goes live and
    the champion it replaces is retired; rejected, the candidate is retired. Keyed by the candidate, so a
    retried decision records its state changes once."""
    effective = effective or sessions.next_session(as_of)
    if effective <= as_of:
        raise states.StateError(f"{candidate.node}: a decision on {as_of} cannot take effect on {effective}")
    current = champions(conn, candidate.name)
    incumbent = current[0] if current and decision == "promoted" else None
    moves = [(candidate, "live" if decision == "promoted" else "retired")] + (
        [(incumbent, "retired")] if incumbent else []
    )
    before = [states.current(conn, ref).state for ref, _ in moves]  # before the statuses below change them
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO quant.model_promotions (name, model_id, decision, reason, evidence, as_of, effective)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (candidate.name, candidate.model_id, decision, reason, json.dumps(evidence) if evidence else None,
             as_of, effective),
        )  # fmt: skip
        if incumbent is not None:
            cur.execute("UPDATE quant.models SET status = 'retired' WHERE model_id = %s", (incumbent.model_id,))
        cur.execute(
            "UPDATE quant.models SET status = %s WHERE model_id = %s",
            ("champion" if decision == "promoted" else "rejected", candidate.model_id),
        )
    for (ref, to_state), from_state in zip(moves, before, strict=True):
        change = states.Decision(
            as_of.isoformat(), from_state, to_state, "promotion", {"decided": candidate.node}, reason
        )
        states.record(conn, ref, change, actor, f"promotion:{candidate.node}", effective)

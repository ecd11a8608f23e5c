"""What the alert matrix does to a model: the state changes its critical levels call for (DESIGN.md: Model states).

A model's state says how much it trades: ``live`` (the champion, full exposure), ``de-risked`` (the
champion at ``derisk_exposure``), ``paused`` (the champion, no new positions until a review or a promoted
challenger), ``shadow`` (scores beside the champion, trades nothing) and ``retired`` (replaced; still scored
and monitored, never acted on).

The alert matrix names each critical signal's actions (``alerts.AlertConfig.signals``): ``de-risk``,
``pause`` and ``retrain``. ``decide`` turns a model's drift rows into the state changes, as a pure function
of the rows, so a sensor that restarts, or reads a backlog, decides the same changes:

- a change is made at the *onset* of a critical level (critical on this row, not on the model's previous
  row): a level that continues is the same breach, so a model resumed by a reviewer is not paused again by
  the breach the reviewer saw, only by a new one;
- pause outranks de-risk: a paused model is not de-risked, a de-risked one can be paused;
- a de-risked model is restored to live after ``restore_sessions`` observed sessions in a row with no
  de-risk or pause signal critical (0: only a promotion or a reviewer restores it);
- a paused model resumes only by a recorded approval or the promotion of a challenger (registry.states);
- every change takes effect from the decision time of the session after the row's (``sessions``): the
  drift row of day D is known after D's close, so it can change only what is traded from D+1 on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.monitoring import history
from quant_assets.core.monitoring.alerts import AlertConfig
from quant_assets.core.registry import states
from quant_assets.core.registry.models import ModelRef
from quant_assets.core.registry.states import STATES, Decision, StateError

CHAMPION_STATES = ("live", "de-risked", "paused")  # the champion's states: it scores, and trades as they say
ACTION_STATE = {"pause": "paused", "de-risk": "de-risked"}  # the alert matrix's actions that change a state
_RANK = {"live": 0, "de-risked": 1, "paused": 2}  # a change only ever escalates, but for a restore


@dataclass(frozen=True)
class ActionPolicy:
    """How the alert matrix's actions act (DESIGN.md defaults)."""

    derisk_exposure: float = 0.5
    restore_sessions: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < self.derisk_exposure < 1.0:
            raise ValueError(f"derisk_exposure must be in (0, 1), got {self.derisk_exposure!r}")
        if not (isinstance(self.restore_sessions, int) and self.restore_sessions >= 0):
            raise ValueError(f"restore_sessions must be a whole number >= 0, got {self.restore_sessions!r}")

    def exposure(self, state: str) -> float:
        """The multiplier of the portfolio rule's weights in ``state``: only the champion trades."""
        if state not in STATES:
            raise ValueError(f"unknown model state {state!r}; states: {', '.join(STATES)}")
        return {"live": 1.0, "de-risked": self.derisk_exposure}.get(state, 0.0)


def _acting(cfg: AlertConfig) -> dict[str, str]:
    """Signal name -> the state its critical level moves a champion to (signals without one left out)."""
    out = {}
    for signal in cfg.signals():
        moves = [ACTION_STATE[a] for a in signal.actions if a in ACTION_STATE]
        if moves:
            out[signal.name] = max(moves, key=_RANK.__getitem__)
    return out


def _values(row, cfg: AlertConfig, signal: str) -> dict:
    metric = next(s for s in cfg.signals() if s.name == signal).critical.metric
    value = getattr(row, metric, None)
    return {metric: None if value is None or pd.isna(value) else float(value)}


def decide(rows: pd.DataFrame, state: str, after: str | None, cfg: AlertConfig, policy: ActionPolicy) -> list[Decision]:
    """The state changes of one model from ``state`` that its drift rows dated after ``after`` call for.

    ``rows``: the model's drift rows in date order (``date``, ``levels`` as a dict, ``reasons``, the
    metrics), including the rows up to ``after`` that onsets and the restore streak read; ``state``: its
    state as recorded after ``after`` (the session of the last change, or None for all rows). Models
    outside the champion's states are monitored but never acted on.
    """
    acting, out, previous, clean = _acting(cfg), [], {}, 0
    for row in rows.itertuples(index=False):
        date, levels = str(row.date), dict(row.levels)
        onsets = [s for s in acting if levels.get(s) == "critical" and previous.get(s) != "critical"]
        critical = any(levels.get(s) == "critical" for s in acting)
        clean = 0 if critical else clean + 1
        previous = levels
        if (after is not None and date <= after) or state not in CHAMPION_STATES:
            continue
        fired = [s for s in onsets if _RANK[acting[s]] > _RANK[state]]
        if fired:
            signal = max(fired, key=lambda s: _RANK[acting[s]])
            reason = f"{signal} critical: {dict(row.reasons).get(signal, signal)}"
            out.append(Decision(date, state, acting[signal], signal, _values(row, cfg, signal), reason))
            state, clean = acting[signal], 0
        elif state == "de-risked" and policy.restore_sessions and clean >= policy.restore_sessions:
            reason = f"no de-risk or pause signal critical for {clean} observed sessions"
            out.append(Decision(date, state, "live", "recovered", {"clean_sessions": clean}, reason))
            state = "live"
    return out


class MissingDrift(LookupError):
    """The session before the one to trade has no drift row of a model that has them: its state is not settled."""


def settle(
    conn, ref: ModelRef, before: dt.date | None, cfg: AlertConfig, policy: ActionPolicy, actor: str
) -> list[Decision]:
    """Record the changes of ``ref``'s state that its drift rows dated before session ``before`` (None: all of
    them) call for, from its state in force then; returns those recorded now (none twice: each is keyed).

    The state sensor settles everything as soon as drift rows land; the live book settles up to the session it
    trades, so a backfill that computes the drift of many sessions and then trades them acts on each drift row
    from the next session, as the daily runs would have. Both decide with ``decide``, so they agree.
    """
    end = None if before is None else sessions.previous_session(before)
    rows = history.read(conn, model=ref.node, end=end)
    if end is not None and len(rows) and rows["date"].iloc[-1] < end:
        raise MissingDrift(
            f"{ref.node} has no drift row for {end} (its last is {rows['date'].iloc[-1]}): materialise "
            f"drift_metrics for {end} first, so the state it calls for is in force on {before}"
        )
    now = states.in_force(conn, ref, before)
    after = now.as_of.isoformat() if now.as_of else None
    changes = decide(rows, now.state, after, cfg, policy)
    return [c for c in changes if states.record(conn, ref, c, actor)]


def review_day(conn, ref: ModelRef, as_of: str | None) -> dt.date:
    """The session whose information a review saw: ``as_of`` (a session), else the model's newest drift row."""
    if as_of:
        return sessions.parse_session(as_of)
    last = history.last_date(conn, ref.node)
    if last is None:
        raise StateError(f"{ref.node} has no drift rows: give the session the review saw (as_of)")
    return last

"""Model states in the registry: every change of a model's state is a row of ``quant.model_states``.

A row says which model went from which state to which, from which session on (``effective``: a change
decided on the information of session D applies from D+1's decision time, never to what was already traded),
on what information (``as_of``, the session it was decided on), by which rule and values, by whom (``actor``:
``sensor:<name>``, ``job:<name>`` or ``user:<name>``) and why. Rows are never updated or deleted; a change
is named by a ``key`` unique per model, so a sensor that decides a change again (after a restart, or on a
backlog) records nothing new. What a model's states mean, and which drift rows change them:
``monitoring.actions``.

A model without a row is in the state its registration left it: the champion ``live``, a model that lost its
promotion ``retired``, any other ``shadow``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.registry.models import ModelRef, champions

STATES = ("shadow", "live", "de-risked", "paused", "retired")  # monitoring.actions says what each means


@dataclass(frozen=True)
class Decision:
    """One change of a model's state: called for by its drift rows (monitoring.actions), an approval or a
    promotion."""

    date: str  # the session whose information decided it; the change applies from the next session
    from_state: str
    to_state: str
    signal: str  # the rule: the alert signal that fired, "recovered", "approval" or "promotion"
    values: dict = field(default_factory=dict)  # the values the rule read
    reason: str = ""

    @property
    def key(self) -> str:
        """Names the change once: a sensor that decides it again records nothing new."""
        return f"drift:{self.date}:{self.signal}:{self.to_state}"


STATES_TABLE = f"""
CREATE TABLE IF NOT EXISTS quant.model_states (
    transition_id  bigserial PRIMARY KEY,
    model_id       bigint NOT NULL REFERENCES quant.models,
    from_state     text NOT NULL,
    to_state       text NOT NULL CHECK (to_state IN ({", ".join(f"'{s}'" for s in STATES)})),
    as_of          date NOT NULL,
    effective      date NOT NULL,
    rule           text NOT NULL,
    trigger_values jsonb NOT NULL,
    actor          text NOT NULL,
    reason         text NOT NULL,
    key            text NOT NULL,
    decided_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_id, key)
);
"""
_INITIAL = {"champion": "live", "rejected": "retired", "retired": "retired"}


class StateError(ValueError):
    """A change the model's state does not allow (resuming a live model, an unknown state, no approver)."""


@dataclass(frozen=True)
class State:
    """A model's state and the session of the information that set it (None: as registered)."""

    state: str
    as_of: dt.date | None
    effective: dt.date | None


def in_force(conn, ref: ModelRef, day: dt.date | None = None) -> State:
    """The model's state in force on session ``day`` (None: now), with the session whose information set it:
    its last change effective by then (a change decided on ``day``'s own information applies from the next
    session), else as its registration left it (``shadow`` before a first change that comes later)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT to_state, as_of, effective FROM quant.model_states
               WHERE model_id = %s AND (%s::date IS NULL OR effective <= %s::date)
               ORDER BY effective DESC, transition_id DESC LIMIT 1""",
            (ref.model_id, day, day),
        )
        row = cur.fetchone()
        if row is not None:
            return State(*row)
        cur.execute(
            "SELECT status, (SELECT count(*) FROM quant.model_states WHERE model_id = %s) FROM quant.models "
            "WHERE model_id = %s",
            (ref.model_id, ref.model_id),
        )
        status, changes = cur.fetchone()
    if day is not None and changes:
        return State("shadow", None, None)  # its first change comes later: before it, it was not yet the champion
    return State(_INITIAL.get(status, "shadow"), None, None)


def current(conn, ref: ModelRef) -> State:
    """The model's state now (its last change, or as its registration left it)."""
    return in_force(conn, ref)


def state_on(conn, ref: ModelRef, day: dt.date) -> str:
    """The model's state in force on session ``day``."""
    return in_force(conn, ref, day).state


def champion_on(conn, name: str, day: dt.date) -> ModelRef:
    """The champion of model ``name`` on session ``day``: the version whose promotion was last effective by
    then, else (a registry from before states were recorded) today's champion."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.model_id, m.name, m.version FROM quant.model_states s JOIN quant.models m USING (model_id)
               WHERE m.name = %s AND s.rule = 'promotion' AND s.to_state = 'live' AND s.effective <= %s
               ORDER BY s.effective DESC, s.transition_id DESC LIMIT 1""",
            (name, day),
        )
        row = cur.fetchone()
        if row is not None:
            return ModelRef(*row)
        cur.execute(
            """SELECT min(s.effective) FROM quant.model_states s JOIN quant.models m USING (model_id)
               WHERE m.name = %s AND s.rule = 'promotion' AND s.to_state = 'live'""",
            (name,),
        )
        first = cur.fetchone()[0]
    found = [] if first is not None else champions(conn, name)
    if not found:
        since = f": its first champion is live from {first}" if first else ""
        raise LookupError(f"no champion of {name!r} on {day}{since}")
    return found[0]


def record(
    conn, ref: ModelRef, change: Decision, actor: str, key: str | None = None, effective: dt.date | None = None
) -> bool:
    """Record ``change`` of ``ref`` (decided on the information of ``change.date``, effective the next
    session, or ``effective`` when what was traded already runs later) under ``key`` (default: the change's
    own, for drift onsets); False when that key of the model was recorded already."""
    as_of = sessions.as_date(change.date)
    effective = effective or sessions.next_session(as_of)
    if effective <= as_of:
        raise StateError(f"{ref.node}: a change decided on {as_of} cannot take effect on {effective}")
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO quant.model_states (model_id, from_state, to_state, as_of, effective, rule,
                   trigger_values, actor, reason, key)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (model_id, key) DO NOTHING""",
            (
                ref.model_id, change.from_state, change.to_state, as_of, effective,
                change.signal, json.dumps(change.values, sort_keys=True), actor, change.reason, key or change.key,
            ),
        )  # fmt: skip
        return cur.rowcount == 1


def approve(conn, ref: ModelRef, approver: str, reason: str, as_of: dt.date) -> Decision:
    """A reviewer's approval: a paused or de-risked model back to live from the session after ``as_of``.

    Refused (``StateError``) for a model in any other state, and without an approver's name and a reason:
    the audit must say who resumed trading and why.
    """
    approver, reason = approver.strip(), reason.strip()
    if not approver or not reason:
        raise StateError("an approval needs the approver's name and a reason")
    state = current(conn, ref).state
    if state not in ("paused", "de-risked"):
        raise StateError(f"{ref.node} is {state}: only a paused or de-risked model is resumed by approval")
    change = Decision(as_of.isoformat(), state, "live", "approval", {"approver": approver}, reason)
    record(conn, ref, change, f"user:{approver}", f"approval:{as_of.isoformat()}:{approver}:{state}")
    return change


def transitions(conn, name: str | None = None) -> pd.DataFrame:
    """Every recorded change (of one model name's versions), oldest first, for the CLI and the UI."""
    where, params = ("WHERE m.name = %s", (name,)) if name else ("", ())
    with conn.cursor() as cur:
        cur.execute(
            f"""SELECT m.name || ':v' || m.version AS model, s.from_state, s.to_state, s.as_of, s.effective,
                       s.rule, s.trigger_values, s.actor, s.reason, s.decided_at::timestamp(0) AS decided_at
                FROM quant.model_states s JOIN quant.models m USING (model_id) {where}
                ORDER BY s.transition_id""",
            params,
        )
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def overview(conn, name: str) -> pd.DataFrame:
    """Every version of model ``name`` with its state now and the session that state applies from."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.name || ':v' || m.version AS model, m.status, s.to_state AS state, s.effective AS since,
                      m.created_at::timestamp(0) AS registered
               FROM quant.models m LEFT JOIN LATERAL (
                   SELECT to_state, effective FROM quant.model_states x WHERE x.model_id = m.model_id
                   ORDER BY transition_id DESC LIMIT 1) s ON true
               WHERE m.name = %s ORDER BY m.version""",
            (name,),
        )
        frame = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    frame["state"] = frame["state"].fillna(frame["status"].map(_INITIAL).fillna("shadow"))
    frame["since"] = frame["since"].astype(object).where(frame["since"].notna(), "as registered")
    return frame.drop(columns="status")

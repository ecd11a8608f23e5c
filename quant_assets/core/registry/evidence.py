"""The evidence a promotion is decided on (the rule: ``promotion``): the challenger's shadow sessions, scored
beside the champion, and both models' out-of-sample predictions with the labels known at the decision.

A challenger's shadow sessions are the sessions after its training as-of that it scored, under its own name, as
the champion did (the ``predictions`` asset scores every model in shadow; ``score_missing`` scores the sessions it
missed, such as those before it was registered, with the same code, so the result is the one the daily runs
would have stored). The decision reads the first ``shadow_sessions`` of them, so it is the same whenever it is
made, and it is made on the information of the session their last label matured on (``decided_on``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.registry import artifacts, champion, models, promotion
from quant_assets.core.research import backtest, scoring, snapshots
from quant_assets.core.storage.fs import Location

KEY = ["date", "entity_key"]


def score_missing(
    conn,
    root: Location,
    store: FeatureStore,
    ref: models.ModelRef,
    manifest: dict,
    days: list,
    provenance: Mapping[str, str] | None = None,
) -> list:
    """Score ``ref`` (trained on the snapshot of ``manifest``) on those of ``days`` after its training as-of that
    it has not scored yet, the rows stamped with ``provenance``; returns their ``scoring.DayScores`` (what their
    lineage names). The champion's own scoring path (``scoring.score_days``), so nothing differs but the model."""
    after = [d for d in days if d > sessions.as_date(manifest["as_of"])]
    missing = [d for d in after if d not in scoring.stored(root, ref.node, after)]
    if not missing:
        return []
    model = artifacts.load_model(conn, ref)
    return scoring.score_days(root, store, model, ref.node, missing, manifest["universe"], provenance)


def since_training(manifest: dict, through: dt.date) -> list[dt.date]:
    """The sessions after the training as-of of ``manifest`` up to ``through``: a shadow's shadow period so far."""
    as_of = sessions.as_date(manifest["as_of"])
    return sessions.sessions_between(sessions.next_session(as_of), through) if through > as_of else []


def gather(
    conn,
    root: Location,
    candidate: models.ModelRef,
    snap: snapshots.Snapshot,
    rule: promotion.PromotionRule,
    portfolio: backtest.PortfolioRule,
    costs: backtest.Costs,
    through: dt.date,
) -> promotion.Evidence:
    """The evidence on ``candidate`` (trained on ``snap``) with what is known at the close of ``through``: its
    walk-forward test sessions and its first ``rule.shadow_sessions`` shadow sessions (none for a first model),
    against the champion's track record on the same (date, name) pairs."""
    as_of, horizon = sessions.as_date(snap.manifest["as_of"]), int(snap.manifest["label"]["horizon"])
    champs = [c for c in models.champions(conn, candidate.name) if c != candidate]
    incumbent = champs[0] if champs else None
    required = rule.shadow_sessions if incumbent else 0
    scored = scoring.stored(root, candidate.node, since_training(snap.manifest, through))
    matured = [d for d in sorted(scored) if sessions.session_offset(d, horizon) <= through]
    use = matured[:required]
    decided_on = sessions.session_offset(use[-1], horizon) if use else as_of
    if len(use) < required:
        empty = promotion.Side.of(candidate.node, promotion.empty_backtest())
        return promotion.Evidence(empty, None, 0, None, None, len(matured), required, float("nan"), 0,
                                  through.isoformat())  # fmt: skip
    oos = artifacts.load_oos(conn, candidate)[KEY + ["prediction"]]
    mine = pd.concat([oos, *(scored[d] for d in use)], ignore_index=True)
    labels = snap.data[KEY + ["label"]]
    if use:
        shadow_labels = snapshots.labels(root, use, horizon, known_by_close(decided_on))
        labels = pd.concat([labels, shadow_labels[KEY + ["label"]]], ignore_index=True)
    theirs = None
    if incumbent is not None:
        theirs = (incumbent.node, _track_record(conn, root, incumbent, use[-1] if use else as_of))
    ch, champ, days, net = promotion.compare((candidate.node, mine), theirs, labels, portfolio, costs)
    dsr, trials = promotion.deflated(
        net, promotion.earlier_trials(conn, candidate.name, candidate), ch.sharpe_per_period
    )
    first, last = (str(days[0]), str(days[-1])) if days else (None, None)
    return promotion.Evidence(
        ch, champ, len(days), first, last, len(use), required, dsr, trials, decided_on.isoformat()
    )


def _track_record(conn, root: Location, ref: models.ModelRef, until: dt.date) -> pd.DataFrame:
    """The champion's out-of-sample predictions: walk-forward test rows, then its live ones up to ``until``."""
    oos = artifacts.load_oos(conn, ref)
    if oos is None:
        oos = pd.DataFrame(columns=KEY + ["prediction"])
    after = champion.snapshot_of(conn, root, ref).manifest["as_of"]
    return promotion.track_record(root, oos, ref.node, after, until)

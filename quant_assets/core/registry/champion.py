"""The champion of a model name: who it is, what it is trained on, how a challenger is registered against it,
how it is loaded for scoring (falling back to an earlier champion) and backtested.

These compose the registry (core/registry/models.py), the promotion rule (core/registry/promotion.py) and the
research stage; the Dagster assets call one function each, so a notebook or the CLI gets the same behaviour.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.registry import artifacts, lineage, models, promotion
from quant_assets.core.research import backtest, scoring, snapshots, training
from quant_assets.core.research.training import Ensemble, WalkForwardResult
from quant_assets.core.storage.fs import Location


class NoChampion(LookupError):
    """Nothing of the name was ever promoted: train one first."""


class NoTrackRecord(LookupError):
    """The champion was registered before out-of-sample predictions were recorded: nothing to backtest."""


class InSample(ValueError):
    """Scoring a session the model's labels covered would report in-sample predictions as live ones."""


def current(conn, name: str) -> models.ModelRef:
    """The champion of ``name``; NoChampion saying what to materialise when there is none."""
    champs = models.champions(conn, name)
    if not champs:
        raise NoChampion(f"no champion for {name}: materialise trained_model first")
    return champs[0]


def snapshot_of(conn, root: Location, ref: models.ModelRef) -> snapshots.Snapshot:
    """The verified training snapshot of a registered model (its path follows from the recorded fingerprint)."""
    return snapshots.read(snapshots.locate(root, artifacts.model_files(conn, ref)[1]))


def load(conn, name: str) -> tuple[models.ModelRef, Ensemble, list[str]]:
    """The champion of ``name`` loaded, or else the most recent earlier champion whose artifact verifies, so a
    tampered or lost artifact degrades scoring to the previous model instead of stopping it.

    Returns (the model used, its ensemble, notes saying what failed and whether it fell back); NoChampion
    when there is no champion, ArtifactTampered when none of them loads.
    """
    first = current(conn, name)
    notes = []
    for ref in models.champions(conn, name):
        try:
            model = artifacts.load_model(conn, ref)
        except artifacts.ArtifactTampered as exc:
            notes.append(f"{ref.node} could not load: {exc}")
            continue
        if ref != first:
            notes.append(f"FELL BACK from {first.node} to previous champion {ref.node}")
        return ref, model, notes
    raise artifacts.ArtifactTampered("no champion or previous champion could be loaded: " + "; ".join(notes))


def check_out_of_sample(node: str, trained_as_of: dt.date, days: list[dt.date]) -> None:
    """InSample naming the first (and last) offending session when any of ``days`` is not after the model's
    training as-of: its labels were known at that close, so a score there is no prediction."""
    early = [d for d in days if d <= trained_as_of]
    if early:
        raise InSample(
            f"{node} learned from labels known at the close of {trained_as_of}: scoring {early[0]}"
            f"{'..' + str(early[-1]) if len(early) > 1 else ''} would be in-sample; "
            f"score sessions after {trained_as_of}"
        )


@dataclass(frozen=True)
class Scorer:
    """The model that scores: the champion or the fallback, with notes on why, and its training manifest."""

    ref: models.ModelRef
    model: Ensemble
    notes: list[str]
    manifest: dict

    @property
    def fell_back(self) -> bool:
        return any(n.startswith("FELL BACK") for n in self.notes)


def for_scoring(conn, root: Location, name: str, days: list[dt.date]) -> Scorer:
    """The champion (or fallback) that may score ``days``: loaded, its snapshot read, and out of sample on them."""
    ref, model, notes = load(conn, name)
    manifest = snapshot_of(conn, root, ref).manifest
    check_out_of_sample(ref.node, sessions.as_date(manifest["as_of"]), days)
    return Scorer(ref, model, notes, manifest)


def metric_rows(fold_metrics: pd.DataFrame) -> pd.DataFrame:
    """Walk-forward fold metrics as registry rows (dataset_type 'test', scope 'fold<k>' or 'overall')."""
    cols = ["ic", "rank_ic", "icir", "rank_icir", "hit_rate"]
    long = fold_metrics.melt(id_vars=["fold"], value_vars=cols, var_name="metric", value_name="value")
    return long.assign(dataset_type="test", scope=long["fold"].map(lambda f: f if f == "overall" else f"fold{f}"))


@dataclass(frozen=True)
class Registration:
    """A trained model as registered (in shadow until ``promotion_decision`` decides), or the registered model a
    retrain reproduced bit for bit (``identical``)."""

    ref: models.ModelRef
    files: artifacts.ModelFiles
    identical: bool
    note: str
    champion: models.ModelRef | None


def register(
    conn,
    root: Location,
    name: str,
    snap: snapshots.Snapshot,
    result: WalkForwardResult,
    code_version: str,
    run_id: str | None = None,
) -> Registration:
    """Write the model's artifact and out-of-sample predictions and register it with its metrics and lineage,
    in shadow: the one way a trained model enters the registry. A run that reproduces a registered model bit
    for bit is that model: nothing is registered."""
    files = artifacts.save_model_files(root, name, result.artifact, result.predictions)
    params = result.final.params
    champs = models.champions(conn, name)
    same = models.identical(conn, name, snap.fingerprint, params, code_version, files.artifact.sha256)
    if same is not None:
        note = (
            f"reproduces {same.node} bit for bit (snapshot {snap.fingerprint[:12]}, the same parameters and code "
            f"{code_version[:12]}, artifact SHA-256 {files.artifact.sha256[:12]}): not registered again"
        )
        return Registration(same, files, True, note, champs[0] if champs else None)
    ref = models.register_model(
        conn,
        name,
        snap.fingerprint,
        snap.manifest["features"],
        params,
        code_version,
        tuple(snap.manifest["date_range"]),
        files,
        metric_rows(result.fold_metrics),
        run_id,
    )
    note = f"registered in shadow beside {champs[0].node}" if champs else "registered; no champion yet"
    return Registration(ref, files, False, note, champs[0] if champs else None)


def reuse(
    conn, name: str, ref: models.ModelRef, snap: snapshots.Snapshot, config: training.TrainConfig
) -> tuple[Registration, WalkForwardResult]:
    """A training that need not run (``trainings``): the model its training key gave, with the result rebuilt from
    that model's files, each verified against the registry's hashes (ArtifactTampered naming one that is not)."""
    files = artifacts.registered_files(conn, ref)
    result = training.rebuild(
        snap.data["date"].unique(), config, artifacts.load_oos(conn, ref), files.artifact.read_bytes(ref.node)
    )
    champs = models.champions(conn, name)
    note = (
        f"is {ref.node}: the same snapshot {snap.fingerprint[:12]}, configuration, code and environment trained it "
        "before: not trained again"
    )
    return Registration(ref, files, True, note, champs[0] if champs else None), result


def shadows(conn, name: str) -> list[models.ModelRef]:
    """The versions of ``name`` registered and not yet decided on (in shadow): they score beside the champion."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.model_id, m.name, m.version FROM quant.models m WHERE m.name = %s AND m.status = 'candidate'
               AND NOT EXISTS (SELECT 1 FROM quant.model_promotions p WHERE p.model_id = m.model_id)
               ORDER BY m.version""",
            (name,),
        )
        return [models.ModelRef(*row) for row in cur.fetchall()]


RETIRED_MONITORING_SESSIONS = 20  # a retired model is scored and monitored this long beside its successor


def monitored_beside(conn, name: str, days: list[dt.date]) -> list[tuple[models.ModelRef, str, list[dt.date]]]:
    """The models of ``name`` scored beside the champion on ``days``, with the days each scores: every shadow
    (its evidence) all of them, and a retired model the first RETIRED_MONITORING_SESSIONS sessions from its
    retirement (whether retiring it was right shows in its drift beside its successor's)."""
    first = sessions.session_offset(days[0], -RETIRED_MONITORING_SESSIONS)
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.model_id, m.name, m.version, s.effective FROM quant.models m JOIN LATERAL (
                   SELECT to_state, effective FROM quant.model_states s WHERE s.model_id = m.model_id
                   ORDER BY effective DESC, transition_id DESC LIMIT 1) s ON true
               WHERE m.name = %s AND s.to_state = 'retired' AND s.effective > %s AND s.effective <= %s
               ORDER BY m.version""",
            (name, first, days[-1]),
        )
        retired = [(models.ModelRef(*row[:3]), row[3]) for row in cur.fetchall()]
    out = [(ref, "shadow", list(days)) for ref in shadows(conn, name)]
    for ref, since in retired:
        until = sessions.session_offset(since, RETIRED_MONITORING_SESSIONS - 1)
        out.append((ref, "retired", [d for d in days if since <= d <= until]))
    return [(ref, why, mine) for ref, why, mine in out if mine]


@dataclass(frozen=True)
class ChampionBacktest:
    """The champion's out-of-sample predictions backtested net and gross of costs, and the recorded node."""

    ref: models.ModelRef
    node: str
    frame: pd.DataFrame
    net: backtest.BacktestResult
    gross: backtest.BacktestResult
    periods: dict[str, str]  # "walk-forward test" and "live": first..last (sessions)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"net": self.net.metrics, "gross (no costs)": self.gross.metrics}).round(4)


def track_record(conn, root: Location, ref: models.ModelRef) -> tuple[pd.DataFrame, dict[str, str]]:
    """The model's out-of-sample record with labels: its walk-forward test predictions (labels of its snapshot),
    then its live predictions after its training as-of (labels as known once each matured), and the span of
    each part; NoTrackRecord for a model registered before out-of-sample predictions were recorded."""
    oos = artifacts.load_oos(conn, ref)
    if oos is None:
        raise NoTrackRecord(f"{ref.node} has no recorded out-of-sample predictions: retrain it to backtest it")
    return record_of(root, ref.node, oos, snapshot_of(conn, root, ref).manifest)


def record_of(root: Location, node: str, oos: pd.DataFrame, manifest: dict) -> tuple[pd.DataFrame, dict[str, str]]:
    """``track_record`` from its parts: the walk-forward test predictions ``oos``, then the predictions of ``node``
    stored under ``root`` after the training as-of of ``manifest``, with their labels (a replay passes its own)."""
    as_of, horizon = sessions.as_date(manifest["as_of"]), int(manifest["label"]["horizon"])
    frame, periods = oos[["date", "entity_key", "prediction", "label"]], {"walk-forward test": _span(oos["date"])}
    days = scoring.scored_days(root, as_of)
    if days:
        live = promotion.track_record(root, oos.iloc[:0], node, as_of, days[-1])
        if len(live):
            known = known_by_close(sessions.session_offset(live["date"].max(), horizon))
            labels = snapshots.labels(root, sorted(live["date"].unique()), horizon, known)
            live = live.merge(labels[["date", "entity_key", "label"]], on=["date", "entity_key"]).dropna(
                subset=["label"]
            )
            frame, periods["live"] = pd.concat([frame, live], ignore_index=True), _span(live["date"])
    return frame, periods


def _span(dates: pd.Series) -> str:
    return f"{min(dates)}..{max(dates)} ({dates.nunique()} sessions)" if len(dates) else "none"


def _prediction_reads(conn, ref: models.ModelRef, node: str, dates: pd.Series) -> list[tuple[str, str]]:
    """Edges from the stored prediction days the backtest ``node`` read (its live part; the test folds' predictions
    are the model's own files, downstream of its snapshot) to it."""
    read = {lineage.prediction_node(ref.node, sessions.as_date(d)) for d in dates.unique()}
    return [(p, node) for p in sorted(read & lineage.children(conn, ref.node, "prediction"))]


def net_and_gross(
    frame: pd.DataFrame, rule: backtest.PortfolioRule, costs: backtest.Costs
) -> tuple[backtest.BacktestResult, backtest.BacktestResult]:
    """A track record backtested under ``rule`` net of ``costs`` and gross: the figures a champion backtest records
    (``{"net": net.metrics, "gross": gross.metrics}``)."""
    return backtest.run(frame, rule, costs), backtest.run(frame, rule, backtest.NO_COSTS)


def backtest_champion(
    conn,
    root: Location,
    name: str,
    rule: backtest.PortfolioRule,
    costs: backtest.Costs,
    config: dict,
    code_version: str | None = None,
    run_id: str | None = None,
) -> ChampionBacktest:
    """Backtest the champion's track record (walk-forward test folds, then live) under ``rule``, net of ``costs``
    and gross; recorded as a backtest (id: model version + hash of ``config``, so a rerun updates it, and the
    ``code_version`` and ``run_id`` that computed it) and as 'backtest' metrics of the model."""
    ref = current(conn, name)
    frame, periods = track_record(conn, root, ref)
    net, gross = net_and_gross(frame, rule, costs)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    snapshot = artifacts.model_files(conn, ref)[1]
    metrics = {"net": net.metrics, "gross": gross.metrics}
    backtest_id = f"{ref.name}:v{ref.version}:{digest}"
    node = models.record_backtest(conn, backtest_id, "champion", snapshot, config, metrics, ref, code_version, run_id)
    lineage.add_edges(conn, _prediction_reads(conn, ref, node, frame["date"]))
    rows = [("backtest", m, scope, v) for scope in ("net", "gross") for m, v in metrics[scope].items()]
    models.record_metrics(conn, ref, pd.DataFrame(rows, columns=["dataset_type", "metric", "scope", "value"]))
    return ChampionBacktest(ref, node, frame, net, gross, periods)

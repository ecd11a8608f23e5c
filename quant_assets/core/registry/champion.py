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
from quant_assets.core.registry import artifacts, models, promotion
from quant_assets.core.research import backtest, snapshots
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


def head_to_head(
    conn, root: Location, challenger: pd.DataFrame, snap: snapshots.Snapshot, name: str
) -> promotion.HeadToHead | None:
    """The challenger against the current champion on their common out-of-sample sessions (None: no champion).

    The champion's track record is its walk-forward test predictions, then its live ones up to the challenger's
    as-of; a champion without recorded predictions compares on zero sessions, so the rule falls back to the
    models' own test periods.
    """
    champs = models.champions(conn, name)
    if not champs:
        return None
    champ = champs[0]
    oos = artifacts.load_oos(conn, champ)
    if oos is None:
        return promotion.HeadToHead(0, float("nan"), float("nan"), None, None)
    after = snapshot_of(conn, root, champ).manifest["as_of"]
    track = promotion.track_record(root, oos, champ.node, after, snap.manifest["as_of"])
    return promotion.head_to_head(challenger, track, snap.data)


def metric_rows(fold_metrics: pd.DataFrame) -> pd.DataFrame:
    """Walk-forward fold metrics as registry rows (dataset_type 'test', scope 'fold<k>' or 'overall')."""
    cols = ["ic", "rank_ic", "icir", "rank_icir", "hit_rate"]
    long = fold_metrics.melt(id_vars=["fold"], value_vars=cols, var_name="metric", value_name="value")
    return long.assign(dataset_type="test", scope=long["fold"].map(lambda f: f if f == "overall" else f"fold{f}"))


@dataclass(frozen=True)
class Registration:
    """A trained model as registered: its files, the head-to-head it was judged on, and the decision."""

    ref: models.ModelRef
    files: artifacts.ModelFiles
    comparison: promotion.HeadToHead | None
    decision: str
    reason: str
    champion: models.ModelRef | None  # after the decision


def register(
    conn,
    root: Location,
    name: str,
    snap: snapshots.Snapshot,
    result: WalkForwardResult,
    code_version: str,
    run_id: str | None = None,
    min_improvement: float = 0.0,
) -> Registration:
    """Write the model's artifact and out-of-sample predictions, compare it with the champion, register it with
    its metrics and lineage, and apply the promotion rule: the one way a trained model enters the registry."""
    files = artifacts.save_model_files(root, name, result.artifact, result.predictions)
    params = result.final.params
    same = models.identical(conn, name, snap.fingerprint, params, code_version, files.artifact.sha256)
    if same is not None:
        champs = models.champions(conn, name)
        reason = (
            f"reproduces {same.node} bit for bit (snapshot {snap.fingerprint[:12]}, the same parameters and code "
            f"{code_version[:12]}, artifact SHA-256 {files.artifact.sha256[:12]}): not registered again"
        )
        return Registration(same, files, None, "identical", reason, champs[0] if champs else None)
    comparison = head_to_head(conn, root, result.predictions, snap, name)
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
    as_of = sessions.as_date(snap.manifest["as_of"])
    actor = f"run:{run_id}" if run_id else "job"
    decision, reason = promotion.decide_promotion(conn, ref, min_improvement, comparison, as_of=as_of, actor=actor)
    champs = models.champions(conn, name)
    return Registration(ref, files, comparison, decision, reason, champs[0] if champs else None)


@dataclass(frozen=True)
class ChampionBacktest:
    """The champion's out-of-sample predictions backtested net and gross of costs, and the recorded node."""

    ref: models.ModelRef
    node: str
    frame: pd.DataFrame
    net: backtest.BacktestResult
    gross: backtest.BacktestResult

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"net": self.net.metrics, "gross (no costs)": self.gross.metrics}).round(4)


def backtest_champion(
    conn, name: str, rule: backtest.PortfolioRule, costs: backtest.Costs, config: dict
) -> ChampionBacktest:
    """Backtest the champion's walk-forward predictions under ``rule``, net of ``costs`` and gross; recorded as a
    backtest (id: model version + hash of ``config``, so a rerun updates it) and as 'backtest' metrics of the model."""
    ref = current(conn, name)
    frame = artifacts.load_oos(conn, ref)
    if frame is None:
        raise NoTrackRecord(f"{ref.node} has no recorded out-of-sample predictions: retrain it to backtest it")
    net, gross = backtest.run(frame, rule, costs), backtest.run(frame, rule, backtest.NO_COSTS)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    snapshot = artifacts.model_files(conn, ref)[1]
    metrics = {"net": net.metrics, "gross": gross.metrics}
    node = models.record_backtest(
        conn, f"{ref.name}:v{ref.version}:{digest}", "champion", snapshot, config, metrics, ref
    )
    rows = [("backtest", m, scope, v) for scope in ("net", "gross") for m, v in metrics[scope].items()]
    models.record_metrics(conn, ref, pd.DataFrame(rows, columns=["dataset_type", "metric", "scope", "value"]))
    return ChampionBacktest(ref, node, frame, net, gross)

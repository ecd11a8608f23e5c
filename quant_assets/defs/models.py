"""Training snapshot, model (walk-forward LightGBM ensemble in the registry) and daily predictions."""

import json
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.registry import artifacts, champion, evidence, lineage, lineage_view, trainings
from quant_assets.core.research import scoring, snapshots, training
from quant_assets.core.research.metrics import daily_ic
from quant_assets.defs import plots, reporting
from quant_assets.defs.config import SnapshotConfig, TrainingConfig
from quant_assets.defs.features import alt_features, price_features
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.resources import LakeResource, RegistryResource
from quant_assets.provenance import code_version

OWNERS = ["team:quant-research"]


@dg.asset(
    group_name="models",
    owners=OWNERS,
    kinds={"python", "parquet"},
    deps=[price_features, alt_features],
    description="Point-in-time training matrix (features at each decision time, adjusted open-to-open label "
    "over `horizon` sessions, only labels matured by `as_of`) in <data root>/snapshots/<fingerprint>/.",
)
def training_snapshot(
    context: dg.AssetExecutionContext, config: SnapshotConfig, lake: LakeResource, registry: RegistryResource
) -> dg.Output[str]:
    path, created, manifest = snapshots.create(
        lake.path,
        lake.feature_store(),
        config.start,
        config.end,
        config.as_of,
        config.features,
        config.horizon,
        code_version(lake.code_version),
        context.run_id,
    )
    with registry.connect() as conn:
        families, windows = snapshots.lineage_windows(manifest)
        sources = snapshots.stored_partitions(lake.path, windows)
        lineage.add_edges(conn, lineage.snapshot_edges(manifest, families, sources))
    summary = {k: v for k, v in manifest.items() if k not in ("universe", "features", "producer_versions")}
    return dg.Output(
        str(path),
        metadata={
            "fingerprint": dg.MetadataValue.text(manifest["fingerprint"]),
            "created": dg.MetadataValue.bool(created),
            "dagster/row_count": dg.MetadataValue.int(manifest["row_count"]),
            "universe_size": dg.MetadataValue.int(len(manifest["universe"])),
            "path": dg.MetadataValue.path(str(path)),
            "manifest": dg.MetadataValue.json(summary),
            "features": dg.MetadataValue.md(
                pd.Series(manifest["features"], name="version")
                .rename_axis("feature")
                .reset_index()
                .to_markdown(index=False)
            ),
        },
    )


# --- training: plan -> one step per fold and one for the production model -> assemble and register -----------


@dataclass(frozen=True)
class FoldStep:
    """One training step's input, small enough to ship to any worker: where the snapshot is (the step reads it
    itself, from the lake), the training settings and the fold."""

    snapshot: str
    config: training.TrainConfig
    fold: training.Fold


def _train_config(config: TrainingConfig, snap: snapshots.Snapshot) -> training.TrainConfig:
    return training.TrainConfig(
        n_folds=config.n_folds,
        horizon=snap.manifest["label"]["horizon"],
        min_train_days=config.min_train_days,
        num_boost_round=config.num_boost_round,
        seeds=tuple(config.seeds),
    )


def _training_key(config: TrainingConfig, snap: snapshots.Snapshot, registry: RegistryResource) -> str:
    return trainings.key(snap.fingerprint, _train_config(config, snap), code_version(registry.code_version))


def _trained_before(
    config: TrainingConfig, snap: snapshots.Snapshot, registry: RegistryResource
) -> tuple[str, tuple[champion.Registration, training.WalkForwardResult] | None]:
    """The run's training key, and the registered model and result it gave before (None: train; always None
    with ``retrain``). A model whose files fail verification is trained again, and said so."""
    key = _training_key(config, snap, registry)
    if config.retrain:
        return key, None
    with registry.connect() as conn:
        ref = trainings.find(conn, registry.name, key)
        try:
            return key, (
                None if ref is None else champion.reuse(conn, registry.name, ref, snap, _train_config(config, snap))
            )
        except artifacts.ArtifactTampered as exc:
            dg.get_dagster_logger().warning(f"training again: {exc}")
            return key, None


@dg.op(
    out=dg.DynamicOut(FoldStep),
    description="The snapshot's walk-forward folds and the production model; none when this snapshot, "
    "configuration, code and environment trained a registered model before (``retrain`` trains anyway).",
)
def plan_folds(
    context: dg.OpExecutionContext, config: TrainingConfig, training_snapshot: str, registry: RegistryResource
):
    snap = snapshots.read(training_snapshot)
    _, before = _trained_before(config, snap, registry)
    if before is not None:
        context.log.info(f"{before[0].ref.node}: {before[0].note}")
        return
    cfg = _train_config(config, snap)
    for fold in training.plan(snap.data["date"].unique(), cfg):
        key = f"fold_{fold.index}" if fold.test else "final"
        yield dg.DynamicOutput(FoldStep(training_snapshot, cfg, fold), mapping_key=key)


@dg.op(description="Train on the fold's purged training dates and predict its test dates; or the production model.")
def train_fold(step: FoldStep) -> training.FoldResult:
    snap = snapshots.read(step.snapshot)
    return training.train_fold(snap.data, snap.features, step.config, step.fold)


@dg.op(
    description="The folds' results in fold order, registered in shadow with metrics and lineage; with no folds "
    "(trained before), the model that training gave, its figures rebuilt from its verified files."
)
def register_model(
    context: dg.OpExecutionContext,
    config: TrainingConfig,
    training_snapshot: str,
    folds: list[training.FoldResult],
    lake: LakeResource,
    registry: RegistryResource,
) -> dg.Output[str]:
    snap = snapshots.read(training_snapshot)
    if not folds:  # plan_folds found the model trained before
        _, before = _trained_before(config, snap, registry)
        if before is None:
            raise dg.Failure("the model trained before no longer verifies (see the log): run again to train it")
        reg, result = before
    else:
        result = training.assemble(folds)
        with registry.connect() as conn:
            reg = champion.register(
                conn, lake.path, registry.name, snap, result, code_version(registry.code_version), context.run_id
            )
            trainings.record(conn, _training_key(config, snap, registry), reg.ref)
    context.log.info(f"{reg.ref.node}: {reg.note}")
    upstream = reporting.table(lineage_view.upstream_table(snap.manifest, code_version(registry.code_version)))
    return dg.Output(reg.ref.node, metadata={**_training_metadata(snap, result, reg), "lineage": upstream})


@dg.config_mapping
def training_config(config: TrainingConfig) -> dict:
    """The asset's one config (ops: trained_model: config), handed to the ops that plan and register."""
    return {op: {"config": config.model_dump()} for op in ("plan_folds", "register_model")}


@dg.graph_asset(
    group_name="models",
    owners=OWNERS,
    kinds={"python", "lightgbm", "postgres"},
    config=training_config,
    description="Walk-forward LightGBM ensemble on the training snapshot (purged folds, fixed seeds, one thread), "
    "each fold and the production model one step (the multiprocess or celery executor trains them at once); "
    "registered with metrics, artifact SHA-256 and lineage (its upstream shown as the `lineage` table: snapshot, "
    "feature versions, code, environment), in shadow: promotion_decision decides on it. A "
    "retrain that reproduces a registered model bit for bit is that model (not registered again).",
)
def trained_model(training_snapshot: str):
    return register_model(training_snapshot, plan_folds(training_snapshot).map(train_fold).collect())


def _training_metadata(
    snap: snapshots.Snapshot, result: training.WalkForwardResult, reg: champion.Registration
) -> dict:
    """What the UI shows of a training run: the champion, how this model was registered, test metrics, folds,
    plots, files."""
    overall = result.fold_metrics.set_index("fold").loc["overall"]
    return {  # the champion first: what trades, whatever this run trained
        "champion": dg.MetadataValue.text(reg.champion.node if reg.champion else "none yet"),
        "model": dg.MetadataValue.text(reg.ref.node),
        "registration": dg.MetadataValue.text(reg.note),
        "identical": dg.MetadataValue.bool(reg.identical),
        "snapshot": dg.MetadataValue.text(snap.fingerprint),
        "test_rank_ic": dg.MetadataValue.float(float(overall["rank_ic"])),
        "test_ic": dg.MetadataValue.float(float(overall["ic"])),
        "test_icir": dg.MetadataValue.float(float(overall["icir"])),
        "test_hit_rate": dg.MetadataValue.float(float(overall["hit_rate"])),
        "folds": dg.MetadataValue.md(result.fold_metrics.round(4).to_markdown(index=False)),
        "feature_importance": plots.importance(result.final.importance()),
        "oos_rank_ic": plots.daily_ic(daily_ic(result.predictions, method="spearman"), "out-of-sample daily rank IC"),
        "artifact": dg.MetadataValue.path(str(reg.files.artifact.path)),
        "oos_predictions": dg.MetadataValue.path(str(reg.files.oos.path)),
        "params": dg.MetadataValue.json(json.loads(json.dumps(result.final.params, default=str))),
    }


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="models",
    owners=OWNERS,
    kinds={"python", "parquet"},
    deps=[price_features, alt_features, trained_model, "promotion_decision"],
    check_specs=[
        dg.AssetCheckSpec(
            "inputs_fresh",
            asset="predictions",
            description="Warns when alternative data is missing for most names on a scored day (an outage): "
            "those names are scored without it, and the gap's length in sessions is shown.",
        )
    ],
    description="The champion's score for each name at the session's decision time (09:00 ET), from features "
    "known then under the staleness rule training uses too (prices from the previous session, alternative data "
    "up to 4 sessions old, else missing), in <data root>/predictions/date=YYYY-MM-DD; falls back to the previous "
    "champion if the champion's artifact fails verification. Every challenger in shadow, and a model in its first "
    "20 sessions of retirement, scores the same sessions (after its training as-of) under its own name, so their drift "
    "rows (and a shadow's promotion evidence) build up. Each scored session gets a receipt "
    "(predictions/date=YYYY-MM-DD/_receipt-<key>.json: its row count, first rows and input gaps, under the hash of the "
    "model, universe, scoring code and the names of the feature files its read answers from): a rerun over sessions "
    "whose inputs have not changed takes them from their receipts (sessions_unchanged) and reads, predicts and "
    "writes nothing for them.",
)
def predictions(
    context: dg.AssetExecutionContext, lake: LakeResource, registry: RegistryResource
) -> dg.MaterializeResult:
    days = [sessions.as_date(k) for k in context.partition_keys]
    with registry.connect() as conn:
        try:
            scorer = champion.for_scoring(conn, lake.path, registry.name, days)
        except (LookupError, artifacts.ArtifactTampered, champion.InSample) as exc:
            raise dg.Failure(str(exc)) from exc
    for note in scorer.notes:
        context.log.warning(note)
    stamp = lake.provenance("predictions", context.run_id)
    scores = scoring.score_days(
        lake.path, lake.feature_store(), scorer.model, scorer.ref.node, days, scorer.manifest["universe"], stamp
    )
    code = code_version(lake.code_version)
    with registry.connect() as conn:  # the models monitored beside it score the same days, under their names
        lineage.add_edges(conn, lineage.scoring_edges(scorer.ref.node, code, scores))
        for ref, why, mine in champion.monitored_beside(conn, registry.name, days):
            manifest = champion.snapshot_of(conn, lake.path, ref).manifest
            scored = evidence.score_missing(conn, lake.path, lake.feature_store(), ref, manifest, mine, stamp)
            lineage.add_edges(conn, lineage.scoring_edges(ref.node, code, scored))
            context.log.info(f"{ref.node} ({why}) scored {len(scored)} session(s)")
    empty = [s.day for s in scores if not s.rows]
    if empty:  # the other days are stored
        raise dg.Failure(
            f"no name has usable price features at the decision time of {', '.join(map(str, empty))}: "
            "materialise price_features for the session before each"
        )
    return dg.MaterializeResult(
        metadata=_prediction_metadata(scorer, scores, lake), check_results=[_inputs_check(scores)]
    )


def _prediction_metadata(scorer: champion.Scorer, scores: list[scoring.DayScores], lake: LakeResource) -> dict:
    """The same for a rerun over unchanged days as for their first run (their receipts hold it), but the writes."""
    head = pd.concat([s.head for s in scores], ignore_index=True).head(scoring.PREVIEW_ROWS)
    return {
        "model": dg.MetadataValue.text(scorer.ref.node),
        "fallback": dg.MetadataValue.bool(scorer.fell_back),
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in scorer.notes) or "champion loaded"),
        "dagster/row_count": dg.MetadataValue.int(sum(s.rows for s in scores)),
        "rows_written": dg.MetadataValue.int(sum(s.written for s in scores)),
        "sessions_unchanged": dg.MetadataValue.int(sum(s.unchanged for s in scores)),
        "path": dg.MetadataValue.path(str(lake.path / scoring.DATASET)),
        "preview": dg.MetadataValue.md(head.to_markdown(index=False) if len(head) else "-"),
    }


def _inputs_check(scores: list[scoring.DayScores]) -> dg.AssetCheckResult:
    """Warns (never blocks) when an optional input family is missing for most names on a day, with how long."""
    gaps = [(s.day, g) for s in scores for g in s.gaps if g.outage or g.missing_share > 0.5]
    return dg.AssetCheckResult(
        asset_key="predictions",
        check_name="inputs_fresh",
        passed=not gaps,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(gaps)} day(s) scored with an input family missing" if gaps else "every input usable",
        metadata={
            "gaps": dg.MetadataValue.md("\n".join(f"- {g.describe(d)}" for d, g in gaps[:50]) or "none"),
            "longest_gap_sessions": dg.MetadataValue.int(max((g.newest_age or 0 for _, g in gaps), default=0)),
        },
    )

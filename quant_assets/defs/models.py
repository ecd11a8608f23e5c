"""Training snapshot, model (walk-forward LightGBM ensemble in the registry) and daily predictions."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features import compute
from quant_assets.core.features.library import ALL_FEATURES, FAMILIES
from quant_assets.core.provenance import code_version
from quant_assets.core.registry import models, promotion
from quant_assets.core.research import scoring, snapshots
from quant_assets.core.research.training import TrainConfig, train_walk_forward
from quant_assets.defs import plots
from quant_assets.defs.config import SnapshotConfig, TrainingConfig
from quant_assets.defs.features import alt_features, price_features
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.resources import LakeResource, RegistryResource

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
    store = lake.feature_store()
    data, manifest = snapshots.build(
        lake.path,
        store,
        config.start,
        config.end,
        config.as_of,
        config.features,
        config.horizon,
        code_version=code_version(lake.code_version),
    )
    path, created = snapshots.write(lake.path, data, manifest)
    manifest = snapshots.read(path).manifest
    feature_family = {
        f: f"{ALL_FEATURES[f].family}@{FAMILIES[ALL_FEATURES[f].family].version}" for f in manifest["features"]
    }
    first, last = sessions.as_date(manifest["date_range"][0]), sessions.as_date(manifest["date_range"][1])
    windows = {}
    for fam in sorted(set(feature_family.values())):
        family = FAMILIES[fam.split("@")[0]]
        parts = sessions.sessions_between(compute.window_partitions(family, first)[0], last)
        windows[fam] = ([d.isoformat() for d in parts], family.source)
    with registry.connect() as conn:
        models.add_edges(conn, models.snapshot_edges(manifest, feature_family, windows))
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


def _metric_rows(folds: pd.DataFrame) -> pd.DataFrame:
    cols = ["ic", "rank_ic", "icir", "rank_icir", "hit_rate"]
    long = folds.melt(id_vars=["fold"], value_vars=cols, var_name="metric", value_name="value")
    return long.assign(dataset_type="test", scope=long["fold"].map(lambda f: f if f == "overall" else f"fold{f}"))


def _importance_plot(importance: pd.Series) -> dg.MetadataValue:
    fig, ax = plots.figure()
    top = importance.head(15)[::-1]
    ax.barh(top.index, top.to_numpy())
    ax.set_title("feature importance (mean gain over ensemble members)")
    return plots.as_markdown(fig, "feature importance")


def _ic_plot(predictions: pd.DataFrame) -> dg.MetadataValue:
    from quant_assets.core.research.metrics import daily_ic

    ric = daily_ic(predictions, method="spearman")
    fig, ax = plots.figure()
    ax.bar(range(len(ric)), ric.to_numpy(), width=1.0)
    ax.plot(range(len(ric)), ric.rolling(20, min_periods=5).mean().to_numpy(), color="black")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_title("out-of-sample daily rank IC (bars) and its 20-day mean")
    return plots.as_markdown(fig, "daily rank IC")


def _head_to_head(conn, root: Path, challenger: pd.DataFrame, snap, name: str) -> promotion.HeadToHead | None:
    """The challenger against the current champion on their common out-of-sample sessions (None: no champion)."""
    champs = models.champions(conn, name)
    if not champs:
        return None
    champion = champs[0]
    oos = models.load_oos(conn, champion)
    if oos is None:
        return promotion.HeadToHead(0, float("nan"), float("nan"), None, None)
    champion_snapshot = snapshots.read(snapshots.locate(root, models.model_files(conn, champion)[1]))
    track = promotion.track_record(
        root, oos, champion.node, champion_snapshot.manifest["as_of"], snap.manifest["as_of"]
    )
    return promotion.head_to_head(challenger, track, snap.data)


@dg.asset(
    group_name="models",
    owners=OWNERS,
    kinds={"python", "lightgbm", "postgres"},
    description="Walk-forward LightGBM ensemble on the training snapshot (purged folds, fixed seeds, one thread); "
    "registered with metrics, artifact SHA-256 and lineage; champion/challenger decision recorded.",
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    training_snapshot: str,
    lake: LakeResource,
    registry: RegistryResource,
) -> dg.Output[str]:
    snap = snapshots.read(Path(training_snapshot))
    cfg = TrainConfig(
        n_folds=config.n_folds,
        horizon=snap.manifest["label"]["horizon"],
        min_train_days=config.min_train_days,
        num_boost_round=config.num_boost_round,
        seeds=tuple(config.seeds),
    )
    result = train_walk_forward(snap.data, snap.features, cfg)
    files = models.save_model_files(lake.path, registry.name, result.final.to_bytes(), result.predictions)
    with registry.connect() as conn:
        comparison = _head_to_head(conn, lake.path, result.predictions, snap, registry.name)
        ref = models.register_model(
            conn,
            registry.name,
            snap.fingerprint,
            snap.manifest["features"],
            result.final.params,
            code_version(registry.code_version),
            tuple(snap.manifest["date_range"]),
            files,
            _metric_rows(result.fold_metrics),
            context.run_id,
        )
        decision, reason = models.decide_promotion(conn, ref, config.min_improvement, comparison)
        champion = models.champions(conn, registry.name)
    overall = result.fold_metrics.set_index("fold").loc["overall"]
    context.log.info(f"{ref.node}: {decision} ({reason})")
    return dg.Output(
        ref.node,
        metadata={
            "model": dg.MetadataValue.text(ref.node),
            "snapshot": dg.MetadataValue.text(snap.fingerprint),
            "promotion": dg.MetadataValue.text(f"{decision}: {reason}"),
            "head_to_head": dg.MetadataValue.json(comparison.__dict__ if comparison else {"champion": None}),
            "champion": dg.MetadataValue.text(champion[0].node if champion else "-"),
            "test_rank_ic": dg.MetadataValue.float(float(overall["rank_ic"])),
            "test_ic": dg.MetadataValue.float(float(overall["ic"])),
            "test_icir": dg.MetadataValue.float(float(overall["icir"])),
            "test_hit_rate": dg.MetadataValue.float(float(overall["hit_rate"])),
            "folds": dg.MetadataValue.md(result.fold_metrics.round(4).to_markdown(index=False)),
            "feature_importance": _importance_plot(result.final.importance()),
            "oos_rank_ic": _ic_plot(result.predictions),
            "artifact": dg.MetadataValue.path(str(files.artifact.path)),
            "oos_predictions": dg.MetadataValue.path(str(files.oos.path)),
            "params": dg.MetadataValue.json(json.loads(json.dumps(result.final.params, default=str))),
        },
    )


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="models",
    owners=OWNERS,
    kinds={"python", "parquet"},
    deps=[price_features, alt_features, trained_model],
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
    "champion if the champion's artifact fails verification.",
)
def predictions(
    context: dg.AssetExecutionContext, lake: LakeResource, registry: RegistryResource
) -> dg.MaterializeResult:
    days = [sessions.as_date(k) for k in context.partition_keys]
    with registry.connect() as conn:
        try:
            used, model, notes = models.load_champion(conn, registry.name)
        except (LookupError, models.ArtifactTampered) as exc:
            raise dg.Failure(str(exc)) from exc
        manifest = snapshots.read(snapshots.locate(lake.path, models.model_files(conn, used)[1])).manifest
    for note in notes:
        context.log.warning(note)
    trained_as_of = sessions.as_date(manifest["as_of"])
    early = [d for d in days if d <= trained_as_of]
    if early:
        raise dg.Failure(
            f"{used.node} learned from labels known at the close of {trained_as_of}: scoring {early[0]}"
            f"{'..' + str(early[-1]) if len(early) > 1 else ''} would be in-sample; "
            f"score sessions after {trained_as_of}"
        )
    store = lake.feature_store()
    scores = scoring.score_days(lake.path, store, model, used.node, days, manifest["universe"])
    empty = [s.day for s in scores if s.predictions.empty]
    if empty:  # the other days are stored
        raise dg.Failure(
            f"no name has usable price features at the decision time of {', '.join(map(str, empty))}: "
            "materialise price_features for the session before each"
        )
    return dg.MaterializeResult(
        metadata=_prediction_metadata(used, notes, scores, lake), check_results=[_inputs_check(scores)]
    )


def _prediction_metadata(used: models.ModelRef, notes: list[str], scores: list, lake: LakeResource) -> dict:
    allp = pd.concat([s.predictions for s in scores], ignore_index=True)
    return {
        "model": dg.MetadataValue.text(used.node),
        "fallback": dg.MetadataValue.bool(any(n.startswith("FELL BACK") for n in notes)),
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes) or "champion loaded"),
        "dagster/row_count": dg.MetadataValue.int(len(allp)),
        "rows_written": dg.MetadataValue.int(sum(s.written for s in scores)),
        "path": dg.MetadataValue.path(str(lake.path / scoring.DATASET)),
        "preview": dg.MetadataValue.md(allp.head(5).to_markdown(index=False) if len(allp) else "-"),
    }


def _inputs_check(scores: list) -> dg.AssetCheckResult:
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

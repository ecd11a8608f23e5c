"""Every job of the pipeline: ingest, the daily run, retraining, the parameter sweep, compaction and a reviewer's
approval of a paused model. Schedules
and sensors (defs/automation.py) name these. None names an executor: each runs on the one in defs/executor.py,
whose run config picks in-process, multiprocess (the default) or Celery."""

import dagster as dg

from quant_assets.core.features.compaction import compact
from quant_assets.core.monitoring import actions
from quant_assets.core.registry import models, states
from quant_assets.core.storage import fs
from quant_assets.defs import reporting
from quant_assets.defs.backtests import backtest_sweep, champion_backtest
from quant_assets.defs.config import ApprovalConfig, CompactionConfig
from quant_assets.defs.drift import drift_metrics
from quant_assets.defs.features import alt_features, price_features
from quant_assets.defs.lineage import model_lineage
from quant_assets.defs.models import predictions, trained_model, training_snapshot
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.promotion import promotion_decision
from quant_assets.defs.raw import alt_data, raw_prices
from quant_assets.defs.resources import LakeResource, RegistryResource
from quant_assets.defs.trading import live_book

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=[raw_prices, alt_data, price_features, alt_features],
    partitions_def=trading_days,
    description="Ingest market and alternative data and compute their features for the selected trading days.",
)

daily_job = dg.define_asset_job(
    "daily_job",
    selection=[
        raw_prices,
        alt_data,
        price_features,
        alt_features,
        predictions,
        drift_metrics,
        live_book,
        model_lineage,
    ],  # fmt: skip
    partitions_def=trading_days,
    description="One trading session end to end: ingest -> features -> predictions -> drift metrics -> the live "
    "book (traded under the champion's state, settled from the drift rows before the session) -> each model "
    "version's downstream lineage. Its steps run in "
    "the run's own process by default: a session's steps take about a second each, less than a step process's "
    "start-up (a range backfill may pick the multiprocess executor in its run config).",
    config={"execution": {"config": {"in_process": {}}}},
)

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=[training_snapshot, trained_model, promotion_decision, champion_backtest],
    description="Snapshot -> walk-forward training (the new model in shadow) -> the promotion decision on a "
    "net-of-cost backtest beside the champion -> the champion's backtest. "
    "Requested by the retrain_on_drift sensor with the breach's date as the snapshot's as-of.",
)

promotion_job = dg.define_asset_job(
    "promotion_job",
    selection=[promotion_decision],
    description="The promotion decision alone: every challenger in shadow judged once its shadow sessions have "
    "matured (requested by the promote_after_shadow sensor as shadows gain drift rows).",
)

sweep_job = dg.define_asset_job(
    "sweep_job",
    selection=[backtest_sweep],
    description="The parameter sweep alone: its models dealt into a few steps (SweepConfig.steps), run in parallel "
    "processes (or on Celery workers with deploy/celery.yaml as run config).",
)


@dg.op(description="One compacted file per month and feature family version, beside the originals.")
def compact_feature_files(context: dg.OpExecutionContext, config: CompactionConfig, lake: LakeResource) -> int:
    done = compact(lake.path, min_files=config.min_files, months=config.months)
    for c in done:
        context.log.info(f"{fs.relative(c.record, lake.path)}: {c.files} files, {c.rows} rows")
    return len(done)


@dg.job(
    description="Compact the feature store's small daily files (nothing rewritten; queries answer the same). One "
    "op: the CLI runs it with the in_process executor, which saves a step process's start-up.",
)
def compaction_job():
    compact_feature_files()


@dg.op(description="A reviewer's approval: a paused or de-risked model back to live from the next session.")
def approve_model(context: dg.OpExecutionContext, config: ApprovalConfig, registry: RegistryResource) -> str:
    with registry.connect() as conn:
        try:
            ref = models.model(conn, config.model)
            day = actions.review_day(conn, ref, config.as_of)
            change = states.approve(conn, ref, config.approver, config.reason, day)
        except (LookupError, ValueError) as exc:
            raise dg.Failure(str(exc)) from None
    context.log_event(reporting.state_change(ref.node, change, approver=config.approver.strip()))
    return ref.node


@dg.job(
    tags={"quant/trigger": "review"},
    description="Resume a paused (or de-risked) model after a review: launch from the UI's launchpad with the "
    "model, the approver's name and the reason. Recorded in quant.model_states; `quant-assets approve` does the same.",
)
def approve_model_job():
    approve_model()

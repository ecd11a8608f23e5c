"""Every job of the pipeline: ingest, the daily run, retraining, the parameter sweep and compaction. Schedules
and sensors (defs/automation.py) name these. None names an executor: each runs on the one in defs/executor.py,
whose run config picks in-process, multiprocess (the default) or Celery."""

import dagster as dg

from quant_assets.core.features.compaction import compact
from quant_assets.core.storage import fs
from quant_assets.defs.backtests import backtest_sweep, champion_backtest
from quant_assets.defs.config import CompactionConfig
from quant_assets.defs.drift import drift_metrics
from quant_assets.defs.features import alt_features, price_features
from quant_assets.defs.models import predictions, trained_model, training_snapshot
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.raw import alt_data, raw_prices
from quant_assets.defs.resources import LakeResource

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=[raw_prices, alt_data, price_features, alt_features],
    partitions_def=trading_days,
    description="Ingest market and alternative data and compute their features for the selected trading days.",
)

daily_job = dg.define_asset_job(
    "daily_job",
    selection=[raw_prices, alt_data, price_features, alt_features, predictions, drift_metrics],
    partitions_def=trading_days,
    description="One trading session end to end: ingest -> features -> predictions -> drift metrics.",
)

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=[training_snapshot, trained_model, champion_backtest],
    description="Snapshot -> walk-forward training -> champion/challenger decision -> the champion's backtest. "
    "Requested by the retrain_on_drift sensor with the breach's date as the snapshot's as-of.",
)

sweep_job = dg.define_asset_job(
    "sweep_job",
    selection=[backtest_sweep],
    description="The parameter sweep alone: one step per (configuration, fold) cell, run in parallel processes "
    "(or on Celery workers with deploy/celery.yaml as run config).",
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

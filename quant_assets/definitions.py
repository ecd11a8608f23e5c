"""The one Definitions object."""

from __future__ import annotations

import os

import dagster as dg

from quant_assets.defs.automation import (
    compaction_job,
    compaction_schedule,
    daily_job,
    daily_schedule,
    record_run_failures,
    retrain_job,
    retrain_on_drift,
)
from quant_assets.defs.backtests import backtest_sweep, champion_backtest
from quant_assets.defs.drift import drift_metrics
from quant_assets.defs.features import alt_features, feature_catalog, price_features
from quant_assets.defs.models import predictions, trained_model, training_snapshot
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.raw import alt_data, raw_prices
from quant_assets.defs.resources import default_resources

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=[raw_prices, alt_data, price_features, alt_features],
    partitions_def=trading_days,
    description="Ingest market and alternative data and compute their features for the selected trading days.",
)


def sweep_executor() -> dg.ExecutorDefinition:
    """Multiprocess by default; ``QUANT_EXECUTOR=celery`` runs the same cells on Celery workers."""
    if os.environ.get("QUANT_EXECUTOR", "multiprocess") == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    return dg.multiprocess_executor


sweep_job = dg.define_asset_job(
    "sweep_job",
    selection=[backtest_sweep],
    executor_def=sweep_executor(),
    description="The parameter sweep alone: one step per (configuration, fold) cell, run in parallel.",
)

defs = dg.Definitions(
    assets=[
        raw_prices,
        alt_data,
        feature_catalog,
        price_features,
        alt_features,
        training_snapshot,
        trained_model,
        predictions,
        champion_backtest,
        backtest_sweep,
        drift_metrics,
    ],
    jobs=[ingest_job, daily_job, retrain_job, sweep_job, compaction_job],
    schedules=[daily_schedule, compaction_schedule],
    sensors=[retrain_on_drift, record_run_failures],
    resources=default_resources(),
)

"""The lineage the UI shows beside the daily run: per model version, what it spread to."""

import dagster as dg

from quant_assets.core.registry import lineage_view
from quant_assets.defs import reporting
from quant_assets.defs.drift import drift_metrics
from quant_assets.defs.models import predictions
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.resources import RegistryResource
from quant_assets.defs.trading import live_book

OWNERS = ["team:quant-research"]


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="monitoring",
    owners=OWNERS,
    kinds={"postgres"},
    deps=[predictions, drift_metrics, live_book],
    description="Every version of the model with its downstream lineage after the session's run: prediction days, "
    "book sessions and drift rows (count, first..last) and its backtests, from quant.lineage_edges (one walk per "
    "version). Last in the daily run, after every asset that writes those edges, so the table is the session's "
    "whole; `quant-assets lineage --downstream NODE` answers the same question for any node.",
)
def model_lineage(registry: RegistryResource) -> dg.MaterializeResult:
    with registry.connect() as conn:
        table = lineage_view.model_downstream(conn, registry.name)
    return dg.MaterializeResult(
        metadata={
            "models": dg.MetadataValue.int(len(table)),
            "downstream": reporting.table(table),
        }
    )

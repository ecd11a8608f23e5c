"""raw_prices and alt_data: daily-partitioned, validated ingest into the lake."""

import os
from collections.abc import Callable

import dagster as dg
import pandas as pd

from quant_assets.core import time as qtime
from quant_assets.core.ingest import ALT, PRICES, IngestReport, ingest_alt, ingest_prices
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.reporting import ingest_metadata, quarantine_check
from quant_assets.defs.resources import LakeResource, MarketDataResource

OWNERS = ["team:quant-data"]


class IngestConfig(dg.Config):
    clock: str = "backfill"
    max_bad_share: float = float(os.environ.get("QUANT_MAX_BAD_SHARE", "0.05"))


def _check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "quarantine_share",
        asset=asset,
        blocking=True,
        description="Share of quarantined records per partition stays under max_bad_share.",
    )


def _run(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    lake: LakeResource,
    dataset: str,
    ingest: Callable[..., IngestReport],
    source,
) -> dg.MaterializeResult:
    if config.clock not in ("backfill", "live"):
        raise dg.Failure(f"clock must be 'backfill' or 'live', got {config.clock!r}")
    reports, errors = [], []
    now = pd.Timestamp.now(tz="UTC")  # one knowledge time for the whole run: its corrections arrive together
    for key in context.partition_keys:
        try:
            reports.append(ingest(source, qtime.as_date(key), lake.path, config.clock, now=now))
        except Exception as exc:  # noqa: BLE001 - keep going, report every bad partition at the end
            errors.append(f"{key}: {type(exc).__name__}: {exc}")
            context.log.error(f"{dataset} partition {key} failed: {exc}")
    if errors:
        raise dg.Failure(
            description=f"{len(errors)} of {len(context.partition_keys)} partition(s) of {dataset} failed",
            metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors[:50]))},
        )
    for r in reports:
        if r.rows_quarantined:
            context.log.warning(f"{dataset} {r.partition}: quarantined {r.rows_quarantined} ({dict(r.reasons)})")
    return dg.MaterializeResult(
        metadata=ingest_metadata(reports, str(lake.path / dataset)),
        check_results=[quarantine_check(dataset, reports, config.max_bad_share)],
    )


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="raw",
    owners=OWNERS,
    kinds={"python", "parquet"},
    check_specs=[_check_spec(PRICES)],
    pool="lake_ingest",
    description=(
        "Daily OHLCV bars per ticker for one NYSE session, validated row by row. "
        "Parquet under <data root>/raw_prices/date=YYYY-MM-DD; event_time = session close, "
        "ingest_time = close + 15 min (backfill) or the wall clock (live). "
        "Bad rows go to <data root>/quarantine/raw_prices with their reason, file and line."
    ),
)
def raw_prices(
    context: dg.AssetExecutionContext, config: IngestConfig, lake: LakeResource, market: MarketDataResource
) -> dg.MaterializeResult:
    prices, _ = market.sources()
    return _run(context, config, lake, PRICES, ingest_prices, prices)


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="raw",
    owners=OWNERS,
    kinds={"python", "parquet"},
    check_specs=[_check_spec(ALT)],
    pool="lake_ingest",
    description=(
        "Alternative data: tweet count, unique users, lexicon word counts and mean sentiment per ticker "
        "and UTC day. A session's partition owns the calendar days since the previous session "
        "(weekends fold into Monday). event_time = end of the UTC day, ingest_time = +30 min (backfill)."
    ),
)
def alt_data(
    context: dg.AssetExecutionContext, config: IngestConfig, lake: LakeResource, market: MarketDataResource
) -> dg.MaterializeResult:
    _, alt = market.sources()
    return _run(context, config, lake, ALT, ingest_alt, alt)

"""raw_prices and alt_data: daily-partitioned, validated ingest into the lake."""

import functools
from collections.abc import Callable

import dagster as dg
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.ingest.pipeline import ALT, PRICES, ingest_alt, ingest_prices
from quant_assets.core.ingest.report import IngestReport
from quant_assets.defs.config import IngestConfig
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.reporting import (
    excluded_check,
    ingest_metadata,
    quarantine_check,
    source_check,
    steps_check,
)
from quant_assets.defs.resources import LakeResource, MarketDataResource

OWNERS = ["team:quant-data"]


def _check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            "quarantine_share",
            asset=asset,
            blocking=True,
            description="Damaged records quarantined / records read from the source, per partition, stays "
            "under max_bad_share (records excluded on purpose, such as late tweet deliveries, do not count).",
        ),
        dg.AssetCheckSpec(
            "source_complete",
            asset=asset,
            description="Warns, naming each, about universe tickers without a source file and entries of the "
            "source directory that are not data files.",
        ),
    ]
    if asset == PRICES:
        specs.append(
            dg.AssetCheckSpec(
                "price_steps",
                asset=asset,
                description="Warns, naming ticker, date and ratio, about bars kept although adj_close or volume "
                "moved beyond the flag factors since the previous stored bar ('reverted' when it undoes one).",
            )
        )
    else:
        specs.append(
            dg.AssetCheckSpec(
                "excluded_records",
                asset=asset,
                description="Warns about valid records left out on purpose (tweets delivered days late): "
                "quarantined with their reason, not counted as damage.",
            )
        )
    return specs


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
    max_bad_share = config.bad_share_limit()
    reports, errors = [], []
    now = pd.Timestamp.now(tz="UTC")  # one knowledge time for the whole run: its corrections arrive together
    for key in context.partition_keys:
        try:
            day, provenance = sessions.as_date(key), lake.provenance(dataset, context.run_id)
            reports.append(ingest(source, day, lake.path, config.clock, now=now, provenance=provenance))
        except Exception as exc:  # noqa: BLE001 - keep going, report every bad partition at the end
            errors.append(f"{key}: {type(exc).__name__}: {exc}")
            context.log.error(f"{dataset} partition {key} failed: {exc}")
    if errors:
        raise dg.Failure(
            description=f"{len(errors)} of {len(context.partition_keys)} partition(s) of {dataset} failed; the first: "
            f"{errors[0]}",
            metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors[:50]))},
        )
    for r in reports:
        if r.rows_quarantined:
            context.log.warning(f"{dataset} {r.partition}: quarantined {r.rows_quarantined} ({dict(r.reasons)})")
    for notice in sorted({n for r in reports for n in r.notices}, key=lambda n: (n.code, n.subject)):
        context.log.warning(f"{dataset} source: {notice.code} {notice.subject}: {notice.detail}")
    extra = steps_check(dataset, reports) if dataset == PRICES else excluded_check(dataset, reports)
    return dg.MaterializeResult(
        metadata=ingest_metadata(reports, str(lake.path / dataset)),
        check_results=[quarantine_check(dataset, reports, max_bad_share), source_check(dataset, reports), extra],
    )


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="raw",
    owners=OWNERS,
    kinds={"python", "parquet"},
    check_specs=_check_specs(PRICES),
    pool="lake_ingest",
    description=(
        "Daily OHLCV bars per ticker for one NYSE session, validated row by row, against plausibility "
        "bounds and against the ticker's previous stored bar. "
        "Parquet under <data root>/raw_prices/date=YYYY-MM-DD; event_time = session close, "
        "ingest_time = close + 15 min (backfill) or the wall clock (live). "
        "Bad rows go to <data root>/quarantine/raw_prices with their reason, file and line."
    ),
)
def raw_prices(
    context: dg.AssetExecutionContext, config: IngestConfig, lake: LakeResource, market: MarketDataResource
) -> dg.MaterializeResult:
    prices, _ = market.sources()
    ingest = functools.partial(ingest_prices, limits=config.limits())
    return _run(context, config, lake, PRICES, ingest, prices)


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="raw",
    owners=OWNERS,
    kinds={"python", "parquet"},
    check_specs=_check_specs(ALT),
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

"""raw_prices and alt_data: daily-partitioned, validated ingest into the lake."""

import functools
import os
from collections.abc import Callable

import dagster as dg
import pandas as pd
from pydantic import Field

from quant_assets.core import sessions
from quant_assets.core.ingest.pipeline import ALT, PRICES, IngestReport, ingest_alt, ingest_prices
from quant_assets.core.ingest.validate import DEFAULT_LIMITS, PriceLimits
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
DEFAULT_MAX_BAD_SHARE = 0.05


class IngestConfig(dg.Config):
    clock: str = Field(
        default="backfill",
        description="'backfill' stamps ingest_time = event time + availability lag (a row not yet available "
        "by the run's start is quarantined as not_yet_available); 'live' stamps the wall clock and refuses a "
        "partition whose data is not yet available.",
    )
    max_bad_share: float | None = Field(
        default=None,
        description="Blocking limit on damaged records quarantined / records read, per partition. "
        "Unset: QUANT_MAX_BAD_SHARE, else 0.05 (read when the run starts).",
    )
    max_price: float = Field(default=DEFAULT_LIMITS.max_price, description="A price above this is implausible.")
    max_volume: float = Field(default=DEFAULT_LIMITS.max_volume, description="A volume above this is implausible.")
    step_reject_factor: float = Field(
        default=DEFAULT_LIMITS.step_reject,
        description="adj_close moving by more than this factor (either way) from the ticker's previous stored "
        "bar is quarantined as implausible_step.",
    )
    step_flag_factor: float = Field(
        default=DEFAULT_LIMITS.step_flag,
        description="adj_close moving by more than this factor is kept and flagged in the price_steps check.",
    )
    volume_flag_factor: float = Field(
        default=DEFAULT_LIMITS.volume_flag,
        description="volume moving by more than this factor is kept and flagged in the price_steps check.",
    )
    step_lookback_sessions: int = Field(
        default=DEFAULT_LIMITS.lookback,
        description="How many sessions back the step check looks for the previous stored bar.",
    )

    def limits(self) -> PriceLimits:
        return PriceLimits(
            self.max_price,
            self.max_volume,
            self.step_reject_factor,
            self.step_flag_factor,
            self.volume_flag_factor,
            self.step_lookback_sessions,
        )

    def bad_share_limit(self) -> float:
        """The run config's limit, else QUANT_MAX_BAD_SHARE at run time, else 5%."""
        if self.max_bad_share is not None:
            return self.max_bad_share
        return float(os.environ.get("QUANT_MAX_BAD_SHARE", DEFAULT_MAX_BAD_SHARE))


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
            reports.append(ingest(source, sessions.as_date(key), lake.path, config.clock, now=now))
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

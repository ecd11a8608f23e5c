"""Feature assets: one daily-partitioned asset per feature family, plus the catalog in Postgres."""

import dagster as dg
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features import catalog, compute
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.features.files import family_dir
from quant_assets.core.features.library import ALL_FEATURES, FAMILIES
from quant_assets.core.features.materialize import FamilyRun, materialize
from quant_assets.core.registry import lineage
from quant_assets.defs.config import FeatureConfig
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.resources import LakeResource, RegistryResource
from quant_assets.provenance import code_version

OWNERS = ["team:quant-research"]


def catalog_table() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "feature": f.name,
                "version": f.version,
                "family": f.family,
                "inputs": ",".join(f.inputs),
                "depends_on": ",".join(d.name for d in f.depends_on) or "-",
                "lookback": f.lookback,
                "lag": str(f.lag),
                "description": f.description,
            }
            for f in ALL_FEATURES.values()
        ]
    )


@dg.asset(
    group_name="features",
    owners=OWNERS,
    kinds={"python", "postgres"},
    description="Registers every feature definition (name, version, inputs, lookback, lag, owner) in "
    "Postgres quant.feature_definitions; old versions stay registered.",
)
def feature_catalog(registry: RegistryResource) -> dg.MaterializeResult:
    with registry.connect() as conn:
        new = catalog.register_features(conn, ALL_FEATURES.values(), code_version(registry.code_version))
        registered = catalog.feature_catalog(conn)
    table = catalog_table()
    return dg.MaterializeResult(
        metadata={
            "features": dg.MetadataValue.int(len(table)),
            "newly_registered": dg.MetadataValue.int(new),
            "versions_in_postgres": dg.MetadataValue.int(len(registered)),
            "catalog": dg.MetadataValue.md(table.to_markdown(index=False)),
        }
    )


def _specs(asset: str, blocking_freshness: bool) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "no_lookahead_recompute",
            asset=asset,
            blocking=True,
            description="A sample of rows recomputed from inputs cut at each row's as-of time equals what was stored.",
        ),
        dg.AssetCheckSpec(
            "ingest_not_before_inputs",
            asset=asset,
            blocking=True,
            description="No row's ingest_time precedes event_time + lag or its own input's arrival.",
        ),
        dg.AssetCheckSpec(
            "fresh",
            asset=asset,
            blocking=blocking_freshness,
            description="Each partition's latest event_time is its own day's (alt data: a warning, since a day "
            "without any tweet is real).",
        ),
        dg.AssetCheckSpec(
            "files_intact",
            asset=asset,
            blocking=True,
            description="Every file this run wrote and a random sample (verify_sample) of the family's stored "
            "files read back as their content-addressed names, records and manifest say.",
        ),
        dg.AssetCheckSpec(
            "null_rate", asset=asset, description="Share of missing values per feature stays under max_null_rate."
        ),
    ]


def _feature_asset(family: FeatureFamily) -> dg.AssetsDefinition:
    name = f"{family.name}_features"

    @dg.asset(
        name=name,
        partitions_def=trading_days,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[
            dg.AssetDep(
                family.source,
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-compute.partition_span(family)),
            )
        ],
        group_name="features",
        owners=OWNERS,
        kinds={"python", "parquet", "duckdb"},
        check_specs=_specs(name, blocking_freshness=family.source != "alt_data"),
        pool="features",
        description=f"{family.description} Lookback {family.lookback} "
        f"{'UTC days' if family.source == 'alt_data' else 'sessions'}. Bitemporal rows in "
        f"<data root>/features/{family.name}/fv=<version>/date=YYYY-MM-DD. Each day computed is a lineage node "
        f"(features:{family.name}/fv=<unit>:<date>) with edges from its feature versions, the raw partitions its "
        "window read and its code version.",
        metadata={
            "features": dg.MetadataValue.md(catalog_table().query("family == @family.name").to_markdown(index=False))
        },
    )
    def _asset(
        context: dg.AssetExecutionContext, config: FeatureConfig, lake: LakeResource, registry: RegistryResource
    ) -> dg.MaterializeResult:
        days = [sessions.as_date(k) for k in context.partition_keys]
        provenance = lake.provenance(name, context.run_id)
        run = materialize(lake.path, family, days, provenance, config.lookahead_sample, config.verify_sample)
        with registry.connect() as conn:  # the days computed; an unchanged day's edges were written with it
            lineage.add_edges(conn, _edges(run, provenance["producer_version"]))
        return dg.MaterializeResult(
            metadata=_metadata(family, run, lake), check_results=_checks(name, family, run, config)
        )

    return _asset


def _edges(run: FamilyRun, producer: str) -> list[tuple[str, str]]:
    """Lineage of each stored (unit, day): its feature versions, its window's raw partitions, its code version."""
    return [
        edge
        for s in run.stored
        for edge in lineage.feature_partition_edges(s.directory, s.day, s.features, s.source, s.partitions, producer)
    ]


def _metadata(family: FeatureFamily, run: FamilyRun, lake: LakeResource) -> dict:
    frame = run.emitted
    worst = run.null_rates().sort_values(ascending=False).head(10)
    computed = {unit.name: sorted(f.name for f in unit.family.features) for unit, _ in run.computed}
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "rows_written": dg.MetadataValue.int(run.written),
        "entities": dg.MetadataValue.int(frame["entity_key"].nunique() if len(frame) else 0),
        "family_version": dg.MetadataValue.text(family.version),
        "path": dg.MetadataValue.path(str(family_dir(lake.path, family).parent)),
        "units_computed": dg.MetadataValue.json(computed),
        "unit_days_unchanged": dg.MetadataValue.int(run.skipped),
        "preview": dg.MetadataValue.md(frame.head(5).to_markdown(index=False) if len(frame) else "-"),
        "null_rates": dg.MetadataValue.md(worst.rename("null_rate").to_frame().to_markdown()),
    }


def _checks(asset: str, family: FeatureFamily, run: FamilyRun, config: FeatureConfig) -> list[dg.AssetCheckResult]:
    nulls = run.null_rates()
    fresh_severity = dg.AssetCheckSeverity.ERROR if family.source != "alt_data" else dg.AssetCheckSeverity.WARN
    files = [f"{p.path}: {p.error}" for p in run.files.problems]
    return [
        _result(asset, "no_lookahead_recompute", run.lookahead, {"rows_recomputed": run.recomputed}),
        _result(asset, "ingest_not_before_inputs", run.early, {"rows_checked": len(run.emitted)}),
        _result(asset, "fresh", run.stale, {"partitions": run.days}, fresh_severity),
        _result(asset, "files_intact", files, {"files_checked": sum(run.files.checked.values())}),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name="null_rate",
            passed=bool((nulls <= config.max_null_rate).all()),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "max_null_rate": float(nulls.max()) if len(nulls) else 0.0,
                "worst_feature": str(nulls.idxmax()) if len(nulls) else "-",
            },
        ),
    ]


def _result(
    asset: str,
    check: str,
    failures: list[str],
    extra: dict,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check,
        passed=not failures,
        severity=severity,
        metadata={
            "failures": len(failures),
            "examples": dg.MetadataValue.md("\n".join(f"- {f}" for f in failures[:20]) or "none"),
            **extra,
        },
    )


price_features = _feature_asset(FAMILIES["price"])
alt_features = _feature_asset(FAMILIES["alt"])

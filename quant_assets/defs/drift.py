"""Daily drift metrics of the live models, the alert matrix, and its blocking check."""

import dagster as dg
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.monitoring import history, window
from quant_assets.core.monitoring.alerts import AlertConfig
from quant_assets.core.research import backtest
from quant_assets.defs import plots
from quant_assets.defs.config import DriftConfig, OnCritical
from quant_assets.defs.models import predictions
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.raw import raw_prices
from quant_assets.defs.resources import AlertPolicy, LakeResource, RegistryResource

OWNERS = ["team:quant-research"]
CHECK = "alert_levels"
PSI_BANDS = (
    "PSI bands (psi_band, the psi alert level): stable (ok); watch (warning) when the mean PSI is above "
    "psi_warning; act (critical, asks for a retrain) when above psi_critical. Each band also needs the mean PSI "
    "above psi_noise, its no-drift level: what psi_n values drawn from the training snapshot itself exceed with "
    "probability 1 - psi_noise_quantile (simulated per feature, averaged over the features). Sampling noise alone "
    "gives a small universe a PSI of 0.1-0.3; below psi_noise such a PSI is no band."
)


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="monitoring",
    owners=OWNERS,
    kinds={"python", "postgres"},
    deps=[predictions, raw_prices],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="drift_metrics",
            blocking=True,
            description="Fails when any day's alert level is critical (IC, PSI or 20-day Sharpe under the "
            "alert matrix): the breach shows in the UI and the run stops.",
        )
    ],
    description="Per session and live model: IC, rank IC, 5-day mean IC and hit rate of the predictions whose "
    "label matured that day; PSI of every model feature and of the predictions against the training snapshot; "
    "5- and 20-day Sharpe of the live long-short signal net of costs; alert levels. Upserted into "
    "quant.drift_metrics (re-running a day replaces its row). " + PSI_BANDS,
)
def drift_metrics(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    lake: LakeResource,
    registry: RegistryResource,
    alert_policy: AlertPolicy,
) -> dg.MaterializeResult:
    days = [sessions.as_date(k) for k in context.partition_keys]
    store = lake.feature_store()
    rule, costs = backtest.PortfolioRule("long_short", quantile=config.quantile), config.costs.costs()
    with registry.connect() as conn:
        try:
            run = window.drift_rows(
                conn, lake.path, store, registry.name, days, alert_policy.rules(registry.name), costs, rule
            )
        except window.NoPredictions as exc:
            raise dg.Failure(str(exc)) from exc
        written = history.upsert(conn, run.rows, context.run_id)
    if run.failed:  # the good days are stored; the bad ones say why
        raise dg.Failure(
            f"{len(run.failed)} of {len(days)} days have no drift row: "
            + "; ".join(f"{d}: {e[0]}" for d, e in run.failed.items()),
            metadata={"rows_written": written},
        )
    for feature, reason in run.without_psi.items():
        context.log.warning(f"no PSI for {feature}: {reason}")
    return _result(context, run, config, alert_policy.rules(registry.name))


def _result(
    context: dg.AssetExecutionContext, run: window.DriftRun, config: DriftConfig, rules: AlertConfig
) -> dg.MaterializeResult:
    """The materialisation's metadata (latest rows with their PSI band, plots) and the alert_levels check, under
    the model's alert matrix (``rules``)."""
    table = run.table(rules)
    critical = table[table["level"] == "critical"]
    for r in critical.itertuples():
        breached = {name: f"{level}: {r.reasons.get(name)}" for name, level in r.levels.items() if level != "ok"}
        context.log.warning(f"critical {r.date} {r.model}: {breached}, actions {list(r.actions)}")
    recent = table.tail(60)
    shown = ["date", "model", "ic", "ic_mean_5", "hit_rate", "psi_mean", "psi_noise", "psi_n", "psi_max"]
    shown += ["prediction_psi", "sharpe_20", "psi_band", "level", "actions"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "models": dg.MetadataValue.text(", ".join(run.nodes)),
            "critical_days": dg.MetadataValue.int(len(critical)),
            "latest": dg.MetadataValue.md(table.tail(10)[shown].round(4).to_markdown(index=False)),
            "psi_bands": dg.MetadataValue.md(PSI_BANDS),
            "features_without_psi": dg.MetadataValue.json(run.without_psi),
            "ic_plot": plots.series(
                recent,
                ["ic", "ic_mean_5"],
                "IC and its 5-day mean",
                {"critical": rules.ic_critical, "warning": rules.ic_warning},
            ),
            "psi_plot": plots.series(
                recent,
                ["psi_mean", "psi_noise", "psi_max", "prediction_psi"],
                "PSI against the training snapshot",
                {"critical": rules.psi_critical, "warning": rules.psi_warning},
            ),
        },
        check_results=[_alert_check(critical, config)],
    )


def _alert_check(critical: pd.DataFrame, config: DriftConfig) -> dg.AssetCheckResult:
    """Fails (or warns, when replaying known history) on any critical day, listing the breaches."""
    severity = dg.AssetCheckSeverity.ERROR if config.on_critical is OnCritical.fail else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name=CHECK,
        passed=critical.empty,
        severity=severity,
        metadata={
            "critical_days": dg.MetadataValue.int(len(critical)),
            "breaches": dg.MetadataValue.md(
                critical[["date", "model", "levels", "reasons"]].astype(str).to_markdown(index=False)
                if len(critical)
                else "none"
            ),
        },
    )

"""Daily drift metrics of the live models, the alert matrix, and its blocking check."""

import dagster as dg
import duckdb
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.monitoring import drift, history
from quant_assets.core.monitoring.window import DriftInputError, DriftRange, ModelProfile
from quant_assets.core.registry import models
from quant_assets.core.research import backtest, scoring, snapshots
from quant_assets.core.storage import lake
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


def monitored_models(root, days: list, lookback: int, name: str) -> list[str]:
    """Models of ``name`` that scored any session the days' windows read (the model column only)."""
    first = sessions.session_offset(days[0], -(lookback + 2))  # + the horizon, with room to spare
    files = [
        str(f)
        for d in sessions.sessions_between(first, days[-1])
        for f in lake.partition_dir(root, scoring.DATASET, d).glob(f"{lake.PART_PREFIX}*.parquet")
    ]
    if not files:
        return []
    rows = duckdb.sql(
        "SELECT DISTINCT model FROM read_parquet(?) WHERE starts_with(model, ?)",
        params=[files, f"model:{name}:v"],
    ).fetchall()
    return sorted((m for (m,) in rows), key=lambda m: int(m.rsplit(":v", 1)[1]))


def _profile(conn, root, store: FeatureStore, node: str) -> ModelProfile:
    ref = models.model(conn, node.removeprefix("model:"))
    model = models.load_model(conn, ref)
    snap = snapshots.read(snapshots.locate(root, models.model_files(conn, ref)[1]))
    return ModelProfile.of(node, snap, model)


def _series_plot(frame: pd.DataFrame, columns: list[str], title: str, lines: dict[str, float]) -> dg.MetadataValue:
    fig, ax = plots.figure()
    x = pd.to_datetime(frame["date"])
    for col in columns:
        ax.plot(x, frame[col].astype(float).to_numpy(), label=col, marker=".", lw=1)
    for label, y in lines.items():
        ax.axhline(y, color="firebrick" if "critical" in label else "orange", lw=0.8, ls="--", label=label)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return plots.as_markdown(fig, title)


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
    rows, errors, without_psi = [], {}, {}
    with registry.connect() as conn:
        nodes = monitored_models(lake.path, days, alert_policy.rules().lookback, registry.name)
        if not nodes:
            raise dg.Failure(f"no predictions of {registry.name} around {days[0]}..{days[-1]}: materialise predictions")
        for node in nodes:
            profile = _profile(conn, lake.path, store, node)
            without_psi.update({f"{node} {f}": r.reason for f, r in profile.feature_refs.items() if r.reason})
            window = DriftRange(lake.path, store, profile, days, alert_policy.rules(), costs, rule)
            for day in days:
                try:
                    rows.append(window.row(day))
                except DriftInputError as exc:
                    errors.setdefault(day, []).append(str(exc))
        written = history.upsert(conn, rows, context.run_id)
    covered = {r["date"] for r in rows}
    failed = {d: e for d, e in errors.items() if d not in covered}
    if failed:  # the good days are stored; the bad ones say why
        raise dg.Failure(
            f"{len(failed)} of {len(days)} days have no drift row: "
            + "; ".join(f"{d}: {e[0]}" for d, e in failed.items()),
            metadata={"rows_written": written},
        )
    for feature, reason in without_psi.items():
        context.log.warning(f"no PSI for {feature}: {reason}")
    return _result(context, pd.DataFrame(rows), nodes, without_psi, config, alert_policy)


def _result(
    context: dg.AssetExecutionContext,
    table: pd.DataFrame,
    models: list[str],
    without_psi: dict[str, str],
    config: DriftConfig,
    alert_policy: AlertPolicy,
) -> dg.MaterializeResult:
    """The materialisation's metadata (latest rows with their PSI band, plots) and the alert_levels check."""
    rules = alert_policy.rules()
    table["psi_band"] = [
        drift.psi_band(_float(v), _float(z), cfg=rules)
        for v, z in zip(table["psi_mean"], table["psi_noise"], strict=True)
    ]
    critical = table[table["level"] == "critical"]
    for r in critical.itertuples():
        breached = {name: f"{level}: {r.reasons.get(name)}" for name, level in r.levels.items() if level != "ok"}
        context.log.warning(f"critical {r.date} {r.model}: {breached}, actions {list(r.actions)}")
    recent = table.tail(60)
    severity = dg.AssetCheckSeverity.ERROR if config.on_critical is OnCritical.fail else dg.AssetCheckSeverity.WARN
    shown = ["date", "model", "ic", "ic_mean_5", "hit_rate", "psi_mean", "psi_noise", "psi_n", "psi_max"]
    shown += ["prediction_psi", "sharpe_20", "psi_band", "level", "actions"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "models": dg.MetadataValue.text(", ".join(models)),
            "critical_days": dg.MetadataValue.int(len(critical)),
            "latest": dg.MetadataValue.md(table.tail(10)[shown].round(4).to_markdown(index=False)),
            "psi_bands": dg.MetadataValue.md(PSI_BANDS),
            "features_without_psi": dg.MetadataValue.json(without_psi),
            "ic_plot": _series_plot(
                recent,
                ["ic", "ic_mean_5"],
                "IC and its 5-day mean",
                {"critical": rules.ic_critical, "warning": rules.ic_warning},
            ),
            "psi_plot": _series_plot(
                recent,
                ["psi_mean", "psi_noise", "psi_max", "prediction_psi"],
                "PSI against the training snapshot",
                {"critical": rules.psi_critical, "warning": rules.psi_warning},
            ),
        },
        check_results=[
            dg.AssetCheckResult(
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
        ],
    )


def _float(value) -> float:
    return float("nan") if value is None else float(value)

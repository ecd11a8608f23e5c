"""Daily drift metrics of the live models, the alert matrix, and its blocking check."""

import dagster as dg
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.monitoring import history, window
from quant_assets.core.monitoring.alerts import AlertConfig
from quant_assets.core.registry import lineage, states
from quant_assets.core.research import backtest
from quant_assets.defs import plots
from quant_assets.defs.config import DriftConfig, OnCritical
from quant_assets.defs.models import predictions
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.raw import raw_prices
from quant_assets.defs.resources import AlertPolicy, LakeResource, RegistryResource

OWNERS = ["team:quant-research"]
CHECK = "alert_levels"
PLOT_SESSIONS = 60  # sessions of stored history the plots show
SESSION_FIGURES = ("ic", "rank_ic", "ic_mean_5", "hit_rate", "psi_mean", "prediction_psi", "sharpe_20", "net_return")
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
            description="Fails (red, severity ERROR; WARN with on_critical: warn) when any day's alert level is "
            "critical (IC, PSI or 20-day Sharpe under the alert matrix). Not blocking: the breach is acted on by "
            "the champion's state (model_states_on_drift, live_book), so the live book downstream still trades, "
            "de-risked or paused, the sessions after it.",
        )
    ],
    description="Per session and live model: IC, rank IC, 5-day mean IC and hit rate of the predictions whose "
    "label matured that day; PSI of every model feature and of the predictions against the training snapshot; "
    "5- and 20-day Sharpe of the live long-short signal net of costs; alert levels. Upserted into "
    "quant.drift_metrics with the fingerprint of the row's inputs (the model's profile, alert policy, costs, "
    "code and the lake parts its windows read). Re-running a day whose stored row has the fingerprint of its "
    "inputs as they are now skips it and reads that row back; a new or restated part in its windows, another "
    "alert policy or other costs compute it again and replace its row. " + PSI_BANDS,
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
    rules = alert_policy.rules(registry.name)
    rule, costs = backtest.PortfolioRule("long_short", quantile=config.quantile), config.costs.costs()
    with registry.connect() as conn:
        try:
            run = window.drift_rows(conn, lake.path, store, registry.name, days, rules, costs, rule)
        except window.NoPredictions as exc:
            raise dg.Failure(str(exc)) from exc
        written = history.upsert(conn, run.fresh, context.run_id)
        lineage.add_edges(conn, run.edges)
        conn.commit()
        acting = _acting(conn, registry.name, days)
        shown = _stored(conn, registry.name, acting.get(days[-1]), days[-1])
    if run.failed:  # the good days are stored; the bad ones say why
        raise dg.Failure(
            f"{len(run.failed)} of {len(days)} days have no drift row: "
            + "; ".join(f"{d}: {e[0]}" for d, e in run.failed.items()),
            metadata={"rows_written": written},
        )
    context.log.info(f"{len(run.fresh)} rows computed, {run.unchanged} read back (inputs unchanged)")
    for feature, reason in run.without_psi.items():
        context.log.warning(f"no PSI for {feature}: {reason}")
    table = run.table(rules)
    table["acted_on"] = [acting.get(d, (None,))[0] == m for d, m in zip(table["date"], table["model"], strict=True)]
    for observation in _session_figures(table, acting):
        context.log_event(observation)
    return _result(context, table, run, config, rules, shown)


def _acting(conn, name: str, days: list) -> dict:
    """Each session's champion (the model the alert matrix acts on) and its state: {day: (node, state)}."""
    out = {}
    for day in days:
        try:
            ref = states.champion_on(conn, name, day)
        except LookupError:
            continue
        out[day] = (ref.node, states.state_on(conn, ref, day))
    return out


def _stored(conn, name: str, acting: tuple | None, last) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The acting model's stored drift rows of the PLOT_SESSIONS up to ``last`` (the plots show the history,
    not only the run's sessions) and its changes of state that took effect in them."""
    if acting is None:
        return pd.DataFrame(columns=history.COLUMNS), pd.DataFrame(columns=["effective", "to_state"])
    first = sessions.session_offset(last, -(PLOT_SESSIONS - 1))
    rows = history.read(conn, model=acting[0], start=first, end=last)
    changes = states.transitions(conn, name)
    changes = changes[(changes["model"] == acting[0].removeprefix("model:")) & (changes["effective"] >= first)]
    return rows, changes


def _session_figures(table: pd.DataFrame, acting: dict) -> list[dg.AssetObservation]:
    """One observation per session's partition with the acting model's key figures as numbers, so Dagster's
    Plots tab and partition views chart them across sessions, also after a single-run backfill (whose one
    materialisation would give every partition the same metadata)."""
    out = []
    for r in table[table["acted_on"]].itertuples():
        numbers = {k: float(getattr(r, k)) for k in SESSION_FIGURES if pd.notna(getattr(r, k))}
        text = {"model": r.model, "state": acting[r.date][1], "level": r.level}
        out.append(dg.AssetObservation(asset_key="drift_metrics", partition=r.date.isoformat(),
                                       metadata={**numbers, **text}))  # fmt: skip
    return out


def _result(
    context: dg.AssetExecutionContext,
    table: pd.DataFrame,
    run: window.DriftRun,
    config: DriftConfig,
    rules: AlertConfig,
    shown: tuple[pd.DataFrame, pd.DataFrame],
) -> dg.MaterializeResult:
    """The materialisation's metadata (latest rows with their PSI band, plots of the stored history) and the
    alert_levels check, under the model's alert matrix (``rules``). Only the acting champion's critical days
    fail the check: a shadow or retired model is monitored, its levels shown, and nothing is asked of it."""
    critical = table[(table["level"] == "critical") & table["acted_on"]]
    for r in critical.itertuples():
        breached = {name: f"{level}: {r.reasons.get(name)}" for name, level in r.levels.items() if level != "ok"}
        context.log.warning(f"critical {r.date} {r.model}: {breached}, actions {list(r.actions)}")
    stored, changes = shown
    shown_cols = ["date", "model", "ic", "ic_mean_5", "hit_rate", "psi_mean", "psi_noise", "psi_n", "psi_max"]
    shown_cols += ["prediction_psi", "sharpe_20", "psi_band", "level", "actions", "acted_on"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            # the others were read back: their stored rows' inputs are unchanged
            "rows_computed": dg.MetadataValue.int(len(run.fresh)),
            "models": dg.MetadataValue.text(", ".join(run.nodes)),
            "critical_days": dg.MetadataValue.int(len(critical)),
            "critical_days_monitored_only": dg.MetadataValue.int(
                int(((table["level"] == "critical") & ~table["acted_on"]).sum())
            ),  # fmt: skip
            "latest": dg.MetadataValue.md(table.tail(10)[shown_cols].round(4).to_markdown(index=False)),
            "psi_bands": dg.MetadataValue.md(PSI_BANDS),
            "features_without_psi": dg.MetadataValue.json(run.without_psi),
            "ic_plot": plots.series(
                stored,
                ["ic", "ic_mean_5"],
                "IC and its 5-day mean",
                {"critical": rules.ic_critical, "warning": rules.ic_warning},
                changes,
            ),
            "psi_plot": plots.series(
                stored,
                ["psi_mean", "psi_noise", "psi_max", "prediction_psi"],
                "PSI against the training snapshot",
                {"critical": rules.psi_critical, "warning": rules.psi_warning},
                changes,
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

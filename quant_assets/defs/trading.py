"""The live book: what the champion's predictions trade each session, under its state (core/trading)."""

import dagster as dg
import pandas as pd
from pydantic import Field

from quant_assets.core import sessions
from quant_assets.core.monitoring import actions
from quant_assets.core.registry import lineage, states
from quant_assets.core.trading import live
from quant_assets.defs import plots
from quant_assets.defs.config import BacktestConfig
from quant_assets.defs.drift import drift_metrics
from quant_assets.defs.models import predictions
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.raw import raw_prices
from quant_assets.defs.resources import AlertPolicy, LakeResource, RegistryResource
from quant_assets.provenance import code_version

OWNERS = ["team:quant-research"]
SESSION_FIGURES = ("exposure", "long_exposure", "short_exposure", "turnover", "cost", "gross", "net")


class LiveBookConfig(BacktestConfig):
    """The live book's portfolio rule and costs: the backtest's, so a backtest of the same predictions and
    states gives the same P&L to the last bit."""

    history_sessions: int = Field(250, ge=1, description="Sessions of the book the equity plot shows.")


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="trading",
    owners=OWNERS,
    kinds={"python", "parquet", "postgres"},
    deps=[predictions, drift_metrics, raw_prices],
    description="Each session's positions of the champion on that day: its predictions under the portfolio rule, "
    "times its state's exposure (1 live, 0.5 de-risked, 0 paused), traded at the open with the backtest's costs, "
    "in <data root>/live_book/date=YYYY-MM-DD; quant.live_book holds the session's figures and, once its labels "
    "mature (the next session), its net P&L. Before each session it records the state changes the champion's "
    "drift rows up to the session before call for (as model_states_on_drift would have), so a backfill acts on "
    "each breach from the next session. Sessions are traded in order; a traded session is never rewritten. Each "
    "row keeps the hash of its inputs (the champion, its state and exposure, rule, costs, code, the day's "
    "predictions parts, the previous session's positions, the prices its labels are read from): a rerun over "
    "sessions whose inputs have not changed rebuilds them from their rows, reading and writing nothing. Each session "
    "traded is a lineage node (book:<date>) with edges from the prediction day it traded and the price partitions "
    "it realised with; positions carry from the session before, which is not an edge (walks stay short).",
)
def live_book(
    context: dg.AssetExecutionContext,
    config: LiveBookConfig,
    lake: LakeResource,
    registry: RegistryResource,
    alert_policy: AlertPolicy,
) -> dg.MaterializeResult:
    rule, costs = config.parts()
    rules, policy = alert_policy.rules(registry.name), alert_policy.actions(registry.name)
    traded, changes = [], []
    days = [sessions.as_date(key) for key in context.partition_keys]
    parts = live.input_parts(lake.path, days)  # listed once for the range: what each session reads, by name
    producer = (context.run_id, code_version(registry.code_version))
    with registry.connect() as conn:
        for day in days:  # in order: each session trades from the one before
            try:
                ref = states.champion_on(conn, registry.name, day)
                changes += actions.settle(conn, ref, day, rules, policy, f"run:{context.run_id}")
                traded.append(live.trade_session(conn, lake.path, registry.name, day, rule, costs, policy.exposure,
                                                 parts, *producer))  # fmt: skip
                if not traded[-1].unchanged:  # an unchanged session's edges were written when it was traded
                    lineage.add_edges(conn, lineage.book_edges(day, traded[-1].model, parts[day]))
            except (LookupError, ValueError, live.BookError) as exc:
                raise dg.Failure(str(exc)) from exc
            conn.commit()  # a session traded is recorded even if a later one fails
        rows = live.history(conn, sessions.session_offset(traded[-1].date, -config.history_sessions))
    for c in changes:
        context.log.warning(f"{c.from_state} -> {c.to_state} after {c.date}: {c.reason}")
    touched = {s.date for s in traded} | {sessions.as_date(s.realised["date"]) for s in traded if s.realised}
    for row in rows[rows["date"].isin(touched)].itertuples(index=False):
        context.log_event(_session_figures(row))
    for s in traded:
        if not s.unchanged:  # an unchanged session's figures are its observation's, as when it was traded
            context.log.info(f"{s.date} {s.model} {s.state} x{s.exposure:g}: turnover {s.turnover:.4f}")
    unchanged = [s.date for s in traded if s.unchanged]
    if unchanged:
        context.log.info(f"{len(unchanged)} of {len(traded)} sessions ({unchanged[0]}..{unchanged[-1]}) unchanged "
                         "since traded: rebuilt from quant.live_book, nothing read or written")  # fmt: skip
    return dg.MaterializeResult(metadata={**_metadata(traded[-1], rows), "sessions_unchanged": len(unchanged)})


def _session_figures(row) -> dg.AssetObservation:
    """A session's figures on its own partition, as numbers Dagster's Plots tab charts across sessions (also
    after a single-run backfill); re-observed once its P&L matures, with the net and gross return."""
    numbers = {k: float(getattr(row, k)) for k in SESSION_FIGURES if pd.notna(getattr(row, k))}
    return dg.AssetObservation(
        asset_key="live_book",
        partition=row.date.isoformat(),
        metadata={**numbers, "names": int(row.n_names), "model": row.model, "state": row.state},
    )


def _metadata(last: live.Session, rows) -> dict:
    """The last session's figures as numbers (Dagster's plots chart them across partitions) and the curve."""
    realised = rows.dropna(subset=["net"])
    meta = {
        "model": dg.MetadataValue.text(last.model),
        "state": dg.MetadataValue.text(last.state),
        "exposure": dg.MetadataValue.float(last.exposure),
        "turnover": dg.MetadataValue.float(last.turnover),
        "cost": dg.MetadataValue.float(last.cost),
        "names": dg.MetadataValue.int(last.names),
        "positions": dg.MetadataValue.path(str(last.path)),
        "equity": plots.book_equity(rows) if len(realised) else dg.MetadataValue.text("no realised session yet"),
    }
    if last.realised:
        meta["net_return"] = dg.MetadataValue.float(last.realised["net"])
        meta["realised_session"] = dg.MetadataValue.text(last.realised["date"])
    return meta

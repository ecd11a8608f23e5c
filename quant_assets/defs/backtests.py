"""Backtest of the champion and the parameter sweep, its models fanned out over a bounded number of steps."""

import dagster as dg
import numpy as np

from quant_assets.core.registry import champion, models
from quant_assets.core.research import sweep
from quant_assets.core.research.metrics import daily_ic
from quant_assets.defs import plots
from quant_assets.defs.config import BacktestConfig, SweepConfig
from quant_assets.defs.promotion import promotion_decision
from quant_assets.defs.resources import LakeResource, RegistryResource
from quant_assets.provenance import code_version

OWNERS = ["team:quant-research"]


@dg.asset(
    group_name="backtests",
    owners=OWNERS,
    kinds={"python", "postgres"},
    deps=[promotion_decision],
    description="Out-of-sample backtest of the champion, gross and net of costs, over its track record: its "
    "walk-forward test sessions, then its live sessions (predictions after its training as-of, labels once "
    "matured); equity curve, drawdown, daily IC, metrics, the sessions of each part; recorded in quant.backtests "
    "and as 'backtest' metrics of the model.",
)
def champion_backtest(
    context: dg.AssetExecutionContext, config: BacktestConfig, lake: LakeResource, registry: RegistryResource
) -> dg.MaterializeResult:
    rule, costs = config.parts()
    with registry.connect() as conn:
        try:
            run = champion.backtest_champion(conn, lake.path, registry.name, rule, costs, config.model_dump(),
                                             code_version(registry.code_version), context.run_id)  # fmt: skip
        except LookupError as exc:  # no champion, or one without a track record: say what to materialise
            raise dg.Failure(str(exc)) from exc
    net, gross = run.net, run.gross
    equity, drawdown = plots.equity_and_drawdown(net.daily.assign(gross=gross.daily["gross"]))
    return dg.MaterializeResult(
        metadata={
            "model": dg.MetadataValue.text(run.ref.node),
            "backtest": dg.MetadataValue.text(run.node),
            "sessions": dg.MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in run.periods.items())),
            "metrics": dg.MetadataValue.md(run.table().to_markdown()),
            "net_sharpe": dg.MetadataValue.float(float(net.metrics["sharpe"])),
            "gross_sharpe": dg.MetadataValue.float(float(gross.metrics["sharpe"])),
            "mean_daily_turnover": dg.MetadataValue.float(float(net.metrics["turnover"])),
            "quantile_returns": dg.MetadataValue.md(net.quantile_returns.rename("mean label").to_frame().to_markdown()),
            "equity_curve": equity,
            "drawdown": drawdown,
            "daily_ic": plots.daily_ic(daily_ic(run.frame), "daily IC"),
        }
    )


# --- the sweep: plan -> a few steps, each training its models once and backtesting every rule -> aggregate --------


@dg.op(out=dg.DynamicOut(dict), description="The grid's models (learning rate x leaves x fold) dealt into steps.")
def plan_sweep(config: SweepConfig, training_snapshot: str):
    for key, step in sweep.plan(training_snapshot, config.grid(), config.steps):
        yield dg.DynamicOutput(step, mapping_key=key)


@dg.op(
    description="Each of the step's models: train on the fold's purged training dates, predict its test dates, "
    "backtest every rule net and gross of costs on one prepared panel."
)
def run_cells(step: dict) -> list[dict]:
    return sweep.run_step(step)


@dg.op(description="Stitch each configuration's folds into one out-of-sample series; DSR of the best; PBO.")
def aggregate_sweep(
    context: dg.OpExecutionContext, config: SweepConfig, steps: list[list[dict]], registry: RegistryResource
) -> dg.Output[dict]:
    result = sweep.aggregate(sweep.gather(steps, config.grid()), config.pbo_blocks)
    settings = config.settings()
    with registry.connect() as conn:
        sid = sweep.record_id(result.snapshot, settings)
        models.record_backtest(conn, f"sweep:{sid}", "sweep", result.snapshot, settings, result.record(), None,
                               code_version(registry.code_version), context.run_id)  # fmt: skip
    dsr, pbo = result.dsr["dsr"], result.overfit["pbo"]
    context.log.info(f"sweep: best {result.best}, DSR {dsr:.3f}, PBO {pbo:.3f}")
    return dg.Output(
        result.summary,
        metadata={
            "results": dg.MetadataValue.md(result.table.round(4).to_markdown(index=False)),
            "best_config": dg.MetadataValue.text(result.best),
            "deflated_sharpe": dg.MetadataValue.float(float(np.round(dsr, 6))),
            "pbo": dg.MetadataValue.float(float(pbo)),
            "trials": dg.MetadataValue.int(len(result.net.columns)),
            "cells": dg.MetadataValue.int(result.cells),
            "equity_curves": plots.equity_curves(result.net, result.best),
        },
    )


@dg.graph_asset(
    group_name="backtests",
    owners=OWNERS,
    kinds={"python", "lightgbm"},
    description="Grid of model and portfolio parameters x walk-forward folds: each model trained once and every "
    "rule backtested on its predictions, the models dealt into a few steps (SweepConfig.steps; the multiprocess "
    "executor runs them in parallel, a celery or k8s executor runs the same graph), aggregated with the deflated "
    "Sharpe ratio of the best configuration and the probability of backtest overfitting over the grid.",
)
def backtest_sweep(training_snapshot: str):
    return aggregate_sweep(plan_sweep(training_snapshot).map(run_cells).collect())

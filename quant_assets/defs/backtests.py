"""Backtest of the champion and the parameter sweep fanned out as one step per (config, fold) cell."""

import hashlib
import itertools
import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from quant_assets.core.registry import models
from quant_assets.core.research import backtest, snapshots
from quant_assets.core.research.metrics import daily_ic
from quant_assets.core.research.training import Ensemble, TrainConfig, walk_forward
from quant_assets.defs import plots
from quant_assets.defs.config import BacktestConfig, SweepConfig
from quant_assets.defs.models import trained_model
from quant_assets.defs.resources import RegistryResource

OWNERS = ["team:quant-research"]


def _curves(daily: pd.DataFrame) -> tuple[dg.MetadataValue, dg.MetadataValue]:
    x = pd.to_datetime(pd.Series(daily.index))
    fig, ax = plots.figure()
    for col in ("gross", "net"):
        ax.plot(x, (1 + daily[col]).cumprod().to_numpy(), label=col)
    ax.legend()
    ax.set_title("equity curve (compounded), gross and net of costs")
    equity = plots.as_markdown(fig, "equity curve")
    wealth = (1 + daily["net"]).cumprod()
    fig, ax = plots.figure()
    ax.fill_between(x, (wealth / wealth.cummax() - 1).to_numpy(), 0, color="firebrick")
    ax.set_title("drawdown of net wealth")
    return equity, plots.as_markdown(fig, "drawdown")


def _ic_plot(frame: pd.DataFrame) -> dg.MetadataValue:
    ic = daily_ic(frame)
    fig, ax = plots.figure()
    x = pd.to_datetime(pd.Series(ic.index))
    ax.bar(x, ic.to_numpy(), width=1.0)
    ax.plot(x, ic.rolling(20, min_periods=5).mean().to_numpy(), color="black")
    ax.set_title("daily IC (bars) and 20-day mean")
    return plots.as_markdown(fig, "daily IC")


@dg.asset(
    group_name="backtests",
    owners=OWNERS,
    kinds={"python", "postgres"},
    deps=[trained_model],
    description="Walk-forward out-of-sample backtest of the champion, gross and net of costs: equity curve, "
    "drawdown, daily IC, metrics; recorded in quant.backtests and as 'backtest' metrics of the model.",
)
def champion_backtest(
    context: dg.AssetExecutionContext, config: BacktestConfig, registry: RegistryResource
) -> dg.MaterializeResult:
    rule, costs = config.parts()
    with registry.connect() as conn:
        champs = models.champions(conn, registry.name)
        if not champs:
            raise dg.Failure(f"no champion for {registry.name}: materialise trained_model first")
        ref = champs[0]
        snapshot = models.model_files(conn, ref)[1]
        frame = models.load_oos(conn, ref)
        if frame is None:
            raise dg.Failure(f"{ref.node} has no recorded out-of-sample predictions: retrain it to backtest it")
        net = backtest.run(frame, rule, costs)
        gross = backtest.run(frame, rule, backtest.NO_COSTS)
        table = pd.DataFrame({"net": net.metrics, "gross (no costs)": gross.metrics}).round(4)
        cfg = config.model_dump()
        bid = f"{ref.name}:v{ref.version}:{hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]}"
        node = models.record_backtest(
            conn, bid, "champion", snapshot, cfg, {"net": net.metrics, "gross": gross.metrics}, ref
        )
        rows = [("backtest", m, "net", v) for m, v in net.metrics.items()]
        rows += [("backtest", m, "gross", v) for m, v in gross.metrics.items()]
        models.record_metrics(conn, ref, pd.DataFrame(rows, columns=["dataset_type", "metric", "scope", "value"]))
    equity, drawdown = _curves(net.daily.assign(gross=gross.daily["gross"]))
    return dg.MaterializeResult(
        metadata={
            "model": dg.MetadataValue.text(ref.node),
            "backtest": dg.MetadataValue.text(node),
            "metrics": dg.MetadataValue.md(table.to_markdown()),
            "net_sharpe": dg.MetadataValue.float(float(net.metrics["sharpe"])),
            "gross_sharpe": dg.MetadataValue.float(float(gross.metrics["sharpe"])),
            "mean_daily_turnover": dg.MetadataValue.float(float(net.metrics["turnover"])),
            "quantile_returns": dg.MetadataValue.md(net.quantile_returns.rename("mean label").to_frame().to_markdown()),
            "equity_curve": equity,
            "drawdown": drawdown,
            "daily_ic": _ic_plot(frame),
        }
    )


# --- the sweep: plan -> one step per (configuration, fold) -> aggregate ---------------------------------------


def _rule(spec: str) -> backtest.PortfolioRule:
    kind, *args = spec.split(":")
    if kind == "long_short":
        return backtest.PortfolioRule("long_short", quantile=float(args[0]) if args else 0.2)
    if kind == "topk":
        return backtest.PortfolioRule("topk", k=int(args[0]), n_drop=int(args[1]))
    raise ValueError(f"unknown rule spec {spec!r} (long_short:Q or topk:K:DROP)")


@dg.op(out=dg.DynamicOut(dict), description="One cell per (model params, portfolio rule, fold).")
def plan_sweep(config: SweepConfig, training_snapshot: str):
    snap = snapshots.read(Path(training_snapshot))
    folds = walk_forward(
        snap.data["date"].unique(), config.n_folds, snap.manifest["label"]["horizon"], config.min_train_days
    )
    for lr, leaves, rule in itertools.product(config.learning_rates, config.num_leaves, config.rules):
        for fold in folds:
            cfg = f"lr{lr}-leaves{leaves}-{rule}"
            cell = {
                "snapshot": training_snapshot,
                "config": cfg,
                "lr": lr,
                "leaves": leaves,
                "rule": rule,
                "fold": fold.index,
                "train": [str(d) for d in fold.train],
                "test": [str(d) for d in fold.test],
                "rounds": config.num_boost_round,
                "costs": config.costs.model_dump(),
            }
            key = f"{cfg}_f{fold.index}".replace(".", "_").replace(":", "_").replace("-", "_")
            yield dg.DynamicOutput(cell, mapping_key=key)


@dg.op(description="Train on the fold's purged training dates, predict its test dates, backtest net and gross.")
def run_cell(cell: dict) -> dict:
    snap = snapshots.read(Path(cell["snapshot"]))
    data = snap.data.assign(day=snap.data["date"].astype(str))
    train, test = data[data["day"].isin(set(cell["train"]))], data[data["day"].isin(set(cell["test"]))]
    cfg = TrainConfig(
        num_boost_round=cell["rounds"], seeds=(1,), params={"learning_rate": cell["lr"], "num_leaves": cell["leaves"]}
    )
    model = Ensemble.fit(train, snap.features, cfg)
    frame = test[["date", "entity_key", "label"]].assign(prediction=model.predict(test))
    net = backtest.run(frame, _rule(cell["rule"]), backtest.Costs(**cell["costs"]))
    gross = backtest.run(frame, _rule(cell["rule"]), backtest.NO_COSTS)
    return {
        "config": cell["config"],
        "fold": cell["fold"],
        "snapshot": snap.fingerprint,
        "dates": [str(d) for d in net.daily.index],
        "net": net.daily["net"].tolist(),
        "gross": gross.daily["gross"].tolist(),
        "rank_ic": net.metrics["rank_ic"],
    }


@dg.op(description="Stitch each configuration's folds into one out-of-sample series; DSR of the best; PBO.")
def aggregate_sweep(
    context: dg.OpExecutionContext, config: SweepConfig, cells: list[dict], registry: RegistryResource
) -> dg.Output[dict]:
    nets = {}
    grosses = {}
    for c in cells:
        idx = pd.Index(c["dates"])
        nets.setdefault(c["config"], []).append(pd.Series(c["net"], index=idx))
        grosses.setdefault(c["config"], []).append(pd.Series(c["gross"], index=idx))
    net = pd.DataFrame({k: pd.concat(v).sort_index() for k, v in nets.items()})
    gross = pd.DataFrame({k: pd.concat(v).sort_index() for k, v in grosses.items()})
    rows = []
    for name in net.columns:
        n, g = backtest.performance(net[name]), backtest.performance(gross[name])
        rows.append(
            {
                "config": name,
                "net_sharpe": n["sharpe"],
                "gross_sharpe": g["sharpe"],
                "net_annual_return": n["annual_return"],
                "gross_annual_return": g["annual_return"],
                "max_drawdown": n["max_drawdown"],
            }
        )
    table = pd.DataFrame(rows).sort_values("net_sharpe", ascending=False).reset_index(drop=True)
    best = table.loc[0, "config"]
    trial_sr = (net.mean() / net.std(ddof=1)).to_numpy()
    dsr = backtest.deflated_sharpe(net[best], trial_sr)
    overfit = backtest.pbo(net, n_blocks=config.pbo_blocks)
    snapshot = cells[0]["snapshot"] if cells else ""
    summary = {"best": best, "configs": len(net.columns), "cells": len(cells), **dsr, **overfit}
    with registry.connect() as conn:
        sid = hashlib.sha256(json.dumps([snapshot, config.model_dump()], sort_keys=True).encode()).hexdigest()[:12]
        models.record_backtest(
            conn, f"sweep:{sid}", "sweep", snapshot, config.model_dump(), {**summary, "table": table.to_dict("records")}
        )
    fig, ax = plots.figure()
    for name in net.columns:
        ax.plot(
            pd.to_datetime(pd.Series(net.index)),
            (1 + net[name].fillna(0)).cumprod().to_numpy(),
            lw=0.8,
            label=name if name == best else None,
        )
    ax.legend()
    ax.set_title(f"net equity of {len(net.columns)} configurations (best labelled)")
    context.log.info(f"sweep: best {best}, DSR {dsr['dsr']:.3f}, PBO {overfit['pbo']:.3f}")
    return dg.Output(
        summary,
        metadata={
            "results": dg.MetadataValue.md(table.round(4).to_markdown(index=False)),
            "best_config": dg.MetadataValue.text(best),
            "deflated_sharpe": dg.MetadataValue.float(float(np.round(dsr["dsr"], 6))),
            "pbo": dg.MetadataValue.float(float(overfit["pbo"])),
            "trials": dg.MetadataValue.int(len(net.columns)),
            "cells": dg.MetadataValue.int(len(cells)),
            "equity_curves": plots.as_markdown(fig, "sweep equity"),
        },
    )


@dg.graph_asset(
    group_name="backtests",
    owners=OWNERS,
    kinds={"python", "lightgbm"},
    description="Grid of model and portfolio parameters x walk-forward folds, one step per cell (the multiprocess "
    "executor runs them in parallel; a celery or k8s executor runs the same graph), aggregated with the deflated "
    "Sharpe ratio of the best configuration and the probability of backtest overfitting over the grid.",
)
def backtest_sweep(training_snapshot: str):
    return aggregate_sweep(plan_sweep(training_snapshot).map(run_cell).collect())

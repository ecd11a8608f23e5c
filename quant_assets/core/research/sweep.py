"""The parameter sweep: a grid of (model parameters, portfolio rule) configurations, each scored on walk-forward
folds, stitched into one out-of-sample series per configuration and judged with the deflated Sharpe ratio of the
best one and the probability of backtest overfitting over the grid.

A cell is one configuration on one fold. Cells that share a model (learning rate, leaves, fold) share its training
and one prepared panel of its predictions, on which every rule is backtested; the models are dealt into a bounded
number of steps, so a step's process start-up (seconds under a one-process-per-step executor) is paid a few times,
not once per cell. A step is a plain JSON-able dict and its results too, so any executor (one process, a process
pool, Celery workers) can ship them between steps; the orchestration only fans out and collects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field

import pandas as pd

from quant_assets.core.research import backtest, snapshots
from quant_assets.core.research.training import Ensemble, TrainConfig, walk_forward

RULE_FORMS = "long_short:Q or topk:K:DROP, e.g. long_short:0.2 or topk:20:5"


def parse_rule(spec: str) -> backtest.PortfolioRule:
    """A portfolio rule from its short spec, so a grid of rules fits in one list of strings.

    ValueError naming the spec and the accepted forms when it is unknown or malformed: the sweep checks every
    spec while planning, before any cell trains.
    """
    kind, *args = spec.split(":")
    if kind not in ("long_short", "topk"):
        raise ValueError(f"unknown rule spec {spec!r} ({RULE_FORMS})")
    try:
        if kind == "long_short" and len(args) <= 1:
            quantile = float(args[0]) if args else 0.2
            if 0 < quantile <= 0.5:
                return backtest.PortfolioRule("long_short", quantile=quantile)
        elif kind == "topk" and len(args) == 2:
            k, n_drop = int(args[0]), int(args[1])
            if k > 0 and n_drop >= 0:
                return backtest.PortfolioRule("topk", k=k, n_drop=n_drop)
    except ValueError:
        pass
    raise ValueError(f"malformed rule spec {spec!r}: expected {RULE_FORMS} (0 < Q <= 0.5, K > 0, DROP >= 0)")


@dataclass(frozen=True)
class Grid:
    """What the sweep varies (learning rates x leaves x rules) and what every cell shares."""

    learning_rates: list[float]
    num_leaves: list[int]
    rules: list[str]
    n_folds: int = 4
    min_train_days: int = 120
    num_boost_round: int = 100
    costs: backtest.Costs = field(default_factory=backtest.Costs)


def config_name(lr: float, leaves: int, rule: str) -> str:
    return f"lr{lr}-leaves{leaves}-{rule}"


def plan(snapshot_path: str, grid: Grid, steps: int) -> list[tuple[str, dict]]:
    """The grid's work on the snapshot's walk-forward folds, dealt into at most ``steps`` steps, each with a key
    naming it (letters, digits and '_' only, as a Dagster mapping key must be).

    A step is a list of tasks; a task is one model (learning rate, leaves, fold), trained once, and every rule of
    the grid backtested on its predictions: one cell (configuration, fold) per rule. Tasks are dealt round-robin,
    so the folds' growing training windows spread evenly over the steps. How the work is split changes no figure:
    a cell's model and backtest do not depend on the other cells of its step."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    for rule in grid.rules:
        parse_rule(rule)
    snap = snapshots.read(snapshot_path)
    folds = walk_forward(
        snap.data["date"].unique(), grid.n_folds, snap.manifest["label"]["horizon"], grid.min_train_days
    )
    tasks = [
        {
            "lr": lr,
            "leaves": leaves,
            "fold": fold.index,
            "train": [str(d) for d in fold.train],
            "test": [str(d) for d in fold.test],
        }
        for lr, leaves, fold in itertools.product(grid.learning_rates, grid.num_leaves, folds)
    ]
    shared = {"snapshot": snapshot_path, "rules": list(grid.rules), "rounds": grid.num_boost_round,
              "costs": dataclasses.asdict(grid.costs)}  # fmt: skip
    n = min(steps, len(tasks))
    return [(f"s{i}", {**shared, "tasks": tasks[i::n]}) for i in range(n)]


def run_step(step: dict) -> list[dict]:
    """Every task of the step: train on the fold's purged training dates (one seed), predict its test dates, and
    backtest each rule on one prepared panel of the predictions, net of costs (the gross figures come with it).
    One result per cell (configuration, fold): the daily returns the aggregation stitches, and the fold's rank IC."""
    snap = snapshots.read(step["snapshot"])
    data = snap.data.assign(day=snap.data["date"].astype(str))
    costs, cells = backtest.Costs(**step["costs"]), []
    for task in step["tasks"]:
        train, test = data[data["day"].isin(set(task["train"]))], data[data["day"].isin(set(task["test"]))]
        params = {"learning_rate": task["lr"], "num_leaves": task["leaves"]}
        model = Ensemble.fit(
            train, snap.features, TrainConfig(num_boost_round=step["rounds"], seeds=(1,), params=params)
        )
        panel = backtest.prepare(test[["date", "entity_key", "label"]].assign(prediction=model.predict(test)))
        for rule in step["rules"]:
            result = backtest.run(panel, parse_rule(rule), costs)
            cells.append(
                {
                    "config": config_name(task["lr"], task["leaves"], rule),
                    "fold": task["fold"],
                    "snapshot": snap.fingerprint,
                    "dates": [str(d) for d in result.daily.index],
                    "net": result.daily["net"].tolist(),
                    "gross": result.daily["gross"].tolist(),
                    "rank_ic": result.metrics["rank_ic"],
                }
            )
    return cells


def gather(steps: list[list[dict]], grid: Grid) -> list[dict]:
    """Every step's cells in the grid's order (learning rate, leaves, rule, then fold), as the sweep listed them
    when each cell was a step: the aggregation's columns follow the order of its cells, and the trials' Sharpe
    variance (DSR) and ties in PBO depend on that order to the last bit, so the steps' split must not show."""
    names = [config_name(lr, leaves, rule) for lr, leaves, rule in itertools.product(
        grid.learning_rates, grid.num_leaves, grid.rules)]  # fmt: skip
    return sorted((c for cells in steps for c in cells), key=lambda c: (names.index(c["config"]), c["fold"]))


def stitch(cells: list[dict], side: str) -> pd.DataFrame:
    """One out-of-sample daily return series per configuration (columns), its folds' test blocks in date order."""
    series: dict[str, list[pd.Series]] = {}
    for c in cells:
        series.setdefault(c["config"], []).append(pd.Series(c[side], index=pd.Index(c["dates"])))
    return pd.DataFrame({k: pd.concat(v).sort_index() for k, v in series.items()})


@dataclass(frozen=True)
class SweepResult:
    """The stitched net returns, one row per configuration (best first), and the overfitting statistics."""

    net: pd.DataFrame
    table: pd.DataFrame
    best: str
    dsr: dict[str, float]
    overfit: dict[str, float]
    snapshot: str
    cells: int

    @property
    def summary(self) -> dict:
        return {"best": self.best, "configs": len(self.net.columns), "cells": self.cells, **self.dsr, **self.overfit}

    def record(self) -> dict:
        """What the registry stores for the sweep: the summary and the table."""
        return {**self.summary, "table": self.table.to_dict("records")}


def aggregate(cells: list[dict], pbo_blocks: int = 8) -> SweepResult:
    """Rank the configurations by net Sharpe; the best one's Sharpe deflated for the number of trials (and their
    spread), and the probability that the in-sample best underperforms out of sample over ``pbo_blocks`` blocks."""
    net, gross = stitch(cells, "net"), stitch(cells, "gross")
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
    return SweepResult(
        net=net,
        table=table,
        best=best,
        dsr=backtest.deflated_sharpe(net[best], trial_sr),
        overfit=backtest.pbo(net, n_blocks=pbo_blocks),
        snapshot=cells[0]["snapshot"] if cells else "",
        cells=len(cells),
    )


def record_id(snapshot: str, config: dict) -> str:
    """The sweep's id in the registry: the same snapshot and configuration update the same record."""
    return hashlib.sha256(json.dumps([snapshot, config], sort_keys=True).encode()).hexdigest()[:12]

"""The parameter sweep: a grid of (model parameters, portfolio rule) configurations, each scored on walk-forward
folds, stitched into one out-of-sample series per configuration and judged with the deflated Sharpe ratio of the
best one and the probability of backtest overfitting over the grid.

A cell (one configuration on one fold) is a plain JSON-able dict and its result too, so any executor (one process,
a process pool, Celery workers) can ship them between steps; the orchestration only fans out and collects.
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


def plan(snapshot_path: str, grid: Grid) -> list[tuple[str, dict]]:
    """Every (configuration, fold) cell of the grid on the snapshot's walk-forward folds, with a key naming it
    (letters, digits and '_' only, as a Dagster mapping key must be)."""
    for rule in grid.rules:
        parse_rule(rule)
    snap = snapshots.read(snapshot_path)
    folds = walk_forward(
        snap.data["date"].unique(), grid.n_folds, snap.manifest["label"]["horizon"], grid.min_train_days
    )
    cells = []
    for lr, leaves, rule in itertools.product(grid.learning_rates, grid.num_leaves, grid.rules):
        config = f"lr{lr}-leaves{leaves}-{rule}"
        for fold in folds:
            cell = {
                "snapshot": snapshot_path,
                "config": config,
                "lr": lr,
                "leaves": leaves,
                "rule": rule,
                "fold": fold.index,
                "train": [str(d) for d in fold.train],
                "test": [str(d) for d in fold.test],
                "rounds": grid.num_boost_round,
                "costs": dataclasses.asdict(grid.costs),
            }
            key = f"{config}_f{fold.index}".replace(".", "_").replace(":", "_").replace("-", "_")
            cells.append((key, cell))
    return cells


def run_cell(cell: dict) -> dict:
    """Train on the fold's purged training dates (one seed), predict its test dates, backtest net and gross:
    the daily returns the aggregation stitches, and the fold's rank IC."""
    snap = snapshots.read(cell["snapshot"])
    data = snap.data.assign(day=snap.data["date"].astype(str))
    train, test = data[data["day"].isin(set(cell["train"]))], data[data["day"].isin(set(cell["test"]))]
    config = TrainConfig(
        num_boost_round=cell["rounds"], seeds=(1,), params={"learning_rate": cell["lr"], "num_leaves": cell["leaves"]}
    )
    model = Ensemble.fit(train, snap.features, config)
    frame = test[["date", "entity_key", "label"]].assign(prediction=model.predict(test))
    rule = parse_rule(cell["rule"])
    net = backtest.run(frame, rule, backtest.Costs(**cell["costs"]))
    gross = backtest.run(frame, rule, backtest.NO_COSTS)
    return {
        "config": cell["config"],
        "fold": cell["fold"],
        "snapshot": snap.fingerprint,
        "dates": [str(d) for d in net.daily.index],
        "net": net.daily["net"].tolist(),
        "gross": gross.daily["gross"].tolist(),
        "rank_ic": net.metrics["rank_ic"],
    }


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

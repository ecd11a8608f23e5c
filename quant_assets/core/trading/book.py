"""The live book: one session at a time, what the live model's predictions trade under the portfolio rule and
the model's state, with the backtest engine's own steps (``research.backtest``), so that the book and a backtest
of the same predictions and exposures agree to the last bit.

Timing, as the backtest's: the predictions of session t are made at t's decision time (09:00 ET); the target
portfolio is traded at t's open and held to t+1's open, so day t earns t's open-to-open label, known at t+1's
open. ``trade`` therefore needs only what is known at t's decision time (t's predictions, the positions after
t-1's trades, the state in force on t); ``realise`` adds t's P&L once its label has matured.

A session's positions keep, beside each name's ``weight`` (traded), its ``target``: the rule's weight before
the state's multiplier. The rule runs on targets, so a paused model's book is flat while the rule keeps its
holdings (the top-k rule's held names), and it resumes where a backtest with the same exposures would.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_assets.core.research import backtest
from quant_assets.core.research.backtest import Costs, PortfolioRule

POSITIONS = ["entity_key", "prediction", "target", "weight", "traded"]


@dataclass(frozen=True)
class BookDay:
    """One session of the book, as traded at its open."""

    date: dt.date
    positions: pd.DataFrame  # POSITIONS, one row per name predicted today or held yesterday, in name order
    exposure: float  # the state's multiplier in force on the day
    turnover: float  # sum of |weight change| over names
    cost: float  # the day's trading costs, a share of capital


def _targets(row: np.ndarray, previous: pd.DataFrame | None, names: list[str], rule: PortfolioRule) -> np.ndarray:
    """The rule's weights for one day's predictions (``row``, aligned with ``names``), from yesterday's holdings."""
    if rule.kind == "topk":
        held = set() if previous is None else set(previous.loc[previous["target"] > 0, "entity_key"])
        holdings = backtest.topk_holdings(row, {i for i, n in enumerate(names) if n in held}, rule.k, rule.n_drop)
        out = np.zeros(len(names))
        if holdings:
            out[sorted(holdings)] = 1.0 / len(holdings)
        return out
    frame = pd.DataFrame([row], columns=names)
    return backtest.target_weights(frame, rule).to_numpy()[0]


def trade(
    date: dt.date,
    predictions: pd.Series,
    previous: pd.DataFrame | None,
    exposure: float,
    rule: PortfolioRule,
    costs: Costs,
) -> BookDay:
    """Session ``date``'s positions and trades: ``predictions`` (entity_key -> score, known at its decision time),
    ``previous`` (the positions after the previous session's trades, or None on the first), ``exposure`` (the
    state's multiplier in force on ``date``)."""
    if not 0.0 <= exposure <= 1.0:
        raise ValueError(f"{date}: exposure must be in [0, 1], got {exposure!r}")
    held = [] if previous is None else list(previous["entity_key"])
    names = sorted(set(predictions.index) | set(held))
    row = predictions.reindex(names).to_numpy(dtype=float)
    target = _targets(row, previous, names, rule)
    weight = target * exposure
    before = np.zeros(len(names)) if previous is None else previous.set_index("entity_key")["weight"].reindex(names)
    traded = np.abs(weight - np.nan_to_num(np.asarray(before, dtype=float)))
    positions = pd.DataFrame(
        {"entity_key": names, "prediction": row, "target": target, "weight": weight, "traded": traded}
    )
    turnover, cost = backtest.row_sum(traded)[0], backtest.row_sum(backtest.trade_costs(traded, costs))[0]
    return BookDay(date, positions, float(exposure), float(turnover), float(cost))


def realise(day: BookDay, labels: pd.Series) -> dict[str, float]:
    """The day's P&L once its labels (entity_key -> open-to-open return) have matured: gross, cost, net."""
    returns = labels.reindex(day.positions["entity_key"]).fillna(0.0).to_numpy(dtype=float)
    gross = backtest.row_sum(day.positions["weight"].to_numpy() * returns)[0]
    return {"gross": float(gross), "cost": day.cost, "net": float(gross - day.cost), "turnover": day.turnover}

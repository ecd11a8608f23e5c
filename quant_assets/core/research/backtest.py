"""Portfolio simulation net of costs, performance metrics, deflated Sharpe ratio and PBO.

Timing: predictions are made at the decision time of session t (09:00 ET);
the target portfolio is traded at the open of t and held to the open of t+1,
so day t earns the open-to-open return ``label`` (horizon 1). Costs are
charged on the day's trades: per traded name
``max(|dw| * (cost_bps + slippage_bps) / 1e4, min_cost / capital)``.

The engine works on a prepared panel (``prepare``): the long frame pivoted once into arrays of names x dates,
with what every configuration shares computed once on first use (the daily percentile ranks of the long-short
rule, the daily orders of the top-k rule, the daily IC and rank IC, the quantile returns). ``run`` on a panel is
then NumPy over whole arrays (the top-k rule, path dependent, steps through the days on a few names each), so a
sweep of many rules and costs on one set of predictions pays the pivots, ranks and IC once. The arrays are names x
dates in C order because ``row_sum`` then adds the names of every day in one pass of vector additions.

Metric definitions follow DESIGN.md: Sharpe = mean / std(ddof=1) * sqrt(252)
of daily net returns (``sharpe``, NaN when the returns do not vary); annual
return, volatility, Sortino, max drawdown (of compounded wealth) and Calmar as
empyrical defines them.

scipy is imported inside the functions that use it (DSR, PBO): at module level it would be paid by every
process that loads the Dagster definitions (each CLI call, the code server, every step), most of which
never computes either.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

import numpy as np
import pandas as pd

from quant_assets.core.research.metrics import icir, wide_ic

DAYS = 252
EULER_GAMMA = 0.5772156649015329
_NONE = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True)
class PortfolioRule:
    kind: str = "long_short"  # "long_short" quantiles, or "topk" long-only with a daily drop limit
    quantile: float = 0.2
    k: int = 20
    n_drop: int = 5


@dataclass(frozen=True)
class Costs:
    cost_bps: float = 5.0
    slippage_bps: float = 5.0
    min_cost: float = 1.0
    capital: float = 10_000_000.0

    @property
    def none(self) -> bool:
        return self.cost_bps == 0 and self.slippage_bps == 0 and self.min_cost == 0


NO_COSTS = Costs(0.0, 0.0, 0.0)


def from_config(config: dict) -> tuple[PortfolioRule, Costs]:
    """The rule and costs of a backtest's recorded configuration (``BacktestConfig``'s fields; a field it lacks takes
    its default): how the run config becomes them, and how a replay reads a recorded backtest back."""
    rule = PortfolioRule(
        config.get("rule", PortfolioRule.kind),
        config.get("quantile", PortfolioRule.quantile),
        config.get("k", PortfolioRule.k),
        config.get("n_drop", PortfolioRule.n_drop),
    )
    return rule, Costs(**config.get("costs", {}))


@dataclass(frozen=True, eq=False)
class DayOrders:
    """Each day's names ranked for the top-k rule (rows: days). ``order`` lists the columns by descending prediction,
    ``ascending`` by ascending prediction (the order in which held names are sold), both with ties by column and the
    names without a prediction last; ``pos`` and ``low`` are each column's places in them, ``valid`` the number of
    names with a prediction. Ties go by column, so a day's holdings depend on its names and values alone, not on
    which other names a frame holds: a day-by-day book and a backtest of the whole range agree."""

    order: np.ndarray
    ascending: np.ndarray
    pos: np.ndarray
    low: np.ndarray
    valid: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> DayOrders:
        """From predictions as days x names (NaN: no prediction; NumPy sorts NaN last, stable keeps column order)."""
        order, ascending = np.argsort(-values, axis=1, kind="stable"), np.argsort(values, axis=1, kind="stable")
        return cls(order, ascending, _places(order), _places(ascending), np.count_nonzero(~np.isnan(values), axis=1))

    def day(self, t: int) -> tuple:
        return self.order[t], self.ascending[t], self.pos[t], self.low[t], int(self.valid[t])


def _places(order: np.ndarray) -> np.ndarray:
    """The inverse permutation of each row of ``order``: where each column stands."""
    places = np.empty_like(order)
    np.put_along_axis(places, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), axis=1)
    return places


def topk_step(held: np.ndarray, day: tuple, k: int, n_drop: int) -> np.ndarray:
    """One day of the top-k rule: ``held`` (column indices) after selling at most ``n_drop`` held names that fell out
    of today's top k (the lowest predictions first) and buying the best names not held, up to k. ``day``: one row of
    ``DayOrders``. Names without a prediction today are sold; no prediction at all: flat (no view, no blind hold).

    A few whole-array steps on the held names, whatever the universe: the held names in the top stay; the others,
    sorted by ascending prediction (the names without one, placed last, always go), keep all but their first
    ``n_drop``; the free places at the top of the day's order fill what is missing."""
    order, ascending, pos, low, valid = day
    if valid == 0:
        return _NONE
    cut = min(k, valid)
    place = pos[held]
    place.sort()
    in_top = place.searchsorted(cut)
    rest = low[order[place[in_top:]]]
    rest.sort()
    kept = [order[place[:in_top]], ascending[rest[n_drop : rest.searchsorted(valid)]]]
    need = k - len(kept[0]) - len(kept[1])
    if need > 0:
        free = np.ones(cut, dtype=bool)
        free[place[:in_top]] = False  # the top places not held yet, best first
        kept.append(order[:cut][free][:need])
    return np.concatenate(kept)


def topk_holdings(row: np.ndarray, held: set[int], k: int, n_drop: int) -> set[int]:
    """``topk_step`` for one day's predictions ``row`` and the holdings as a set of column indices (the live book's
    form): the same steps as a backtest's, so the book and a backtest of the whole range hold the same names."""
    orders = DayOrders.of(np.asarray(row, dtype=float)[None, :])
    start = np.fromiter(sorted(held), dtype=np.intp, count=len(held))
    return {int(i) for i in topk_step(start, orders.day(0), k, n_drop)}


@dataclass(frozen=True, eq=False)
class Signals:
    """Predictions (dates x names) and what the portfolio rules read of them, each computed on first use and then
    shared by every rule run on them."""

    pred: pd.DataFrame

    @cached_property
    def pct(self) -> np.ndarray:
        """Each day's percentile rank of every name (average rank of ties / names predicted), names x dates."""
        return np.ascontiguousarray(self.pred.rank(axis=1, pct=True).to_numpy(dtype=float).T)

    @cached_property
    def count(self) -> np.ndarray:
        return np.count_nonzero(self.pred.notna().to_numpy(), axis=1)

    @cached_property
    def orders(self) -> DayOrders:
        return DayOrders.of(self.pred.to_numpy(dtype=float))


def _long_short(signals: Signals, q: float) -> np.ndarray:
    """+0.5 spread equally over the top quantile, -0.5 over the bottom (names x dates); a day with fewer than two
    names, or an empty leg (ties can leave one empty), holds nothing; names without a prediction get 0."""
    top, bottom = signals.pct > 1 - q, signals.pct <= q
    n_top, n_bottom = top.sum(axis=0, dtype=np.int32), bottom.sum(axis=0, dtype=np.int32)  # int32: half the time
    live = (signals.count >= 2) & (n_top > 0) & (n_bottom > 0)
    with np.errstate(divide="ignore"):
        long, short = np.where(live, 1.0 / n_top * 0.5, 0.0), np.where(live, 1.0 / n_bottom * 0.5, 0.0)
    weights = top * long
    weights -= bottom * short
    return weights


def _topk_drop(signals: Signals, k: int, n_drop: int) -> np.ndarray:
    """Hold k names equally; each day sell at most ``n_drop`` held names that fell out of the top k (names x
    dates). The rule is path dependent, so it steps through the days; each step touches the held names only."""
    o = signals.orders
    held, days = _NONE, []
    for day in zip(o.order, o.ascending, o.pos, o.low, o.valid.tolist(), strict=True):
        held = topk_step(held, day, k, n_drop)
        days.append(held)
    sizes = np.array([len(h) for h in days], dtype=np.intp)
    weights = np.zeros(o.order.shape[::-1])
    if sizes.sum():
        each = 1.0 / sizes[sizes > 0]
        weights[np.concatenate(days), np.repeat(np.arange(len(days)), sizes)] = np.repeat(each, sizes[sizes > 0])
    return weights


def _rule_weights(signals: Signals, rule: PortfolioRule) -> np.ndarray:
    if rule.kind == "long_short":
        return _long_short(signals, rule.quantile)
    if rule.kind == "topk":
        return _topk_drop(signals, rule.k, rule.n_drop)
    raise ValueError(f"unknown portfolio rule {rule.kind!r}")


def target_weights(pred: pd.DataFrame, rule: PortfolioRule) -> pd.DataFrame:
    """The rule's weights (dates x names) for predictions as dates x names."""
    return pd.DataFrame(_rule_weights(Signals(pred), rule).T, index=pred.index, columns=pred.columns)


@dataclass
class BacktestResult:
    daily: pd.DataFrame  # date -> gross, cost, net, turnover
    weights: pd.DataFrame
    metrics: dict[str, float]
    gross_metrics: dict[str, float]
    quantile_returns: pd.Series


@dataclass(frozen=True, eq=False)
class Panel:
    """A long frame prepared for backtests: the predictions' ``signals``, the labels as names x dates (0 where
    missing: a name without a label earns nothing), and what does not depend on the rule or the costs."""

    signals: Signals
    labels: np.ndarray
    signal: dict[str, float]  # mean IC, mean rank IC, ICIR
    quantile_returns: pd.Series

    @property
    def dates(self) -> pd.Index:
        return self.signals.pred.index

    @property
    def names(self) -> pd.Index:
        return self.signals.pred.columns


def prepare(frame: pd.DataFrame) -> Panel:
    """``frame`` (date, entity_key, prediction, label) pivoted once, with its daily IC and rank IC and its quantile
    returns: every rule, cost and exposure run on the panel shares them."""
    pred = frame.pivot(index="date", columns="entity_key", values="prediction").sort_index()
    ret = frame.pivot(index="date", columns="entity_key", values="label").reindex_like(pred)
    ic = wide_ic(pred, ret)
    signal = {"ic": float(ic.mean()), "rank_ic": float(wide_ic(pred, ret, method="spearman").mean()), "icir": icir(ic)}
    labels = np.ascontiguousarray(ret.fillna(0.0).to_numpy(dtype=float).T)
    return Panel(Signals(pred), labels, signal, quantile_returns(frame))


def trade_costs(trades: np.ndarray, costs: Costs) -> np.ndarray:
    """The cost of each traded amount (absolute weight changes): bps of the amount, at least the minimum
    ticket for a name that trades."""
    cost = trades * (costs.cost_bps + costs.slippage_bps)
    cost /= 1e4
    if costs.min_cost:  # (a masked np.maximum is several times slower than these two passes)
        np.maximum(cost, costs.min_cost / costs.capital, out=cost)
        cost *= trades > 0
    return cost


def row_sum(values: np.ndarray) -> np.ndarray:
    """Each row's sum, added in column order one term at a time (NumPy's ``sum`` along a row adds pairwise, which
    groups the terms by their positions). Adding a zero is exact, so the day's total does not depend on the zero
    columns of names it neither holds nor trades: a book that sums one day's names and a backtest that sums the
    whole range's columns (the names in the same order) agree to the last bit. ``+ 0.0`` makes a zero total +0.0
    whatever the signs of its zero terms (a paused book's).

    How: NumPy reduces a C-ordered array over its first axis by adding its rows to the total one after another
    (pairwise summation applies along the contiguous axis only), so the transpose (columns as rows) is summed in
    column order, vectorised over the rows. A single row is padded with a zero row first: alone, its column would be
    one contiguous run, summed pairwise. Pass the transpose of a C-ordered names x dates array and no copy is made.
    """
    by_column = np.atleast_2d(values).T
    n, rows = by_column.shape
    if n == 0:
        return np.zeros(rows)
    if rows < 2:
        by_column = np.concatenate([by_column, np.zeros((n, 2 - rows))], axis=1)
    return np.add.reduce(np.ascontiguousarray(by_column), axis=0)[:rows] + 0.0


def run(
    data: pd.DataFrame | Panel,
    rule: PortfolioRule = PortfolioRule(),
    costs: Costs = Costs(),
    exposure: pd.Series | None = None,
) -> BacktestResult:
    """Simulate ``data`` (a long frame of date, entity_key, prediction, label, or its ``prepare``d panel) day by
    day, vectorised over names.

    ``exposure`` (date -> multiplier, default 1): the rule's weights scaled on each day, as a model's state
    scales what it trades (0 paused, 0.5 de-risked); the rule itself runs on unscaled holdings.
    """
    panel = data if isinstance(data, Panel) else prepare(data)
    w = _rule_weights(panel.signals, rule)
    if exposure is not None:
        w *= exposure.reindex(panel.dates).fillna(1.0).to_numpy(dtype=float)
    trades = np.empty_like(w)
    trades[:, :1] = w[:, :1]
    np.subtract(w[:, 1:], w[:, :-1], out=trades[:, 1:])
    np.abs(trades, out=trades)
    turnover = row_sum(trades.T)
    cost = np.zeros(len(turnover)) if costs.none else row_sum(trade_costs(trades, costs).T)
    gross = row_sum(np.multiply(w, panel.labels, out=trades).T)  # the trades' buffer, done with
    daily = pd.DataFrame({"gross": gross, "cost": cost, "net": gross - cost, "turnover": turnover}, index=panel.dates)
    signal = {**panel.signal, "turnover": float(daily["turnover"].mean())}
    return BacktestResult(
        daily,
        pd.DataFrame(w.T, index=panel.dates, columns=panel.names, copy=False),
        {**performance(daily["net"]), **signal},
        {**performance(daily["gross"]), **signal},
        panel.quantile_returns,
    )


def quantile_returns(frame: pd.DataFrame, n: int = 5) -> pd.Series:
    """Mean label per prediction quantile (1 = lowest), cross-sectionally each day."""
    by_date = frame.groupby("date")["prediction"]
    rank, count = by_date.rank(method="first"), by_date.transform("count")
    q = (np.floor((rank - 1) * n / count) + 1).where(count >= n)
    return frame.assign(q=q).groupby("q")["label"].mean().rename_axis("quantile")


def daily_volatility(returns) -> float:
    """std(ddof=1) of the non-NaN ``returns``: NaN below two, 0 when they are constant.

    The std of identical floats is not always 0 (their mean is rounded), and dividing by that rounding noise
    gave a Sharpe of ~1e16; a spread below 1e-12 of the returns' size is taken as none.
    """
    r = np.asarray(returns, dtype=float)
    r = r[~np.isnan(r)]
    if len(r) < 2:
        return float("nan")
    sd = float(np.std(r, ddof=1))
    return 0.0 if sd <= 1e-12 * max(1.0, abs(float(np.mean(r)))) else sd


def sharpe(returns, periods: int = DAYS) -> float:
    """mean / std(ddof=1) * sqrt(periods) of the non-NaN ``returns`` (DESIGN.md); NaN without dispersion.

    The one Sharpe of the project: backtests, the sweep's deflated Sharpe and PBO (``periods=1``, per period)
    and the live signal's rolling Sharpe all call it.
    """
    r = np.asarray(returns, dtype=float)
    sd = daily_volatility(r)
    return float(np.nanmean(r) / sd * np.sqrt(periods)) if sd > 0 else float("nan")


def performance(returns: pd.Series) -> dict[str, float]:
    """Annual return, volatility, Sharpe, Sortino, max drawdown, Calmar, hit rate of daily returns."""
    r = pd.Series(returns, dtype=float).dropna()
    n = len(r)
    nan = float("nan")
    if n == 0:
        return dict.fromkeys(
            ["annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown", "calmar", "hit_rate"], nan
        ) | {"days": 0}
    wealth = np.cumprod(1 + r.to_numpy())
    annual_return = wealth[-1] ** (DAYS / n) - 1
    downside = np.sqrt(np.mean(np.minimum(r.to_numpy(), 0.0) ** 2)) * np.sqrt(DAYS)
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))
    max_dd = float(np.min(np.concatenate([[1.0], wealth]) / peak - 1))
    return {
        "annual_return": float(annual_return),
        "annual_volatility": daily_volatility(r) * np.sqrt(DAYS),
        "sharpe": sharpe(r),
        "sortino": float(r.mean() * DAYS / downside) if downside > 0 else nan,
        "max_drawdown": max_dd,
        "calmar": float(annual_return / abs(max_dd)) if max_dd < 0 else nan,
        "hit_rate": float((r > 0).mean()),
        "days": n,
    }


def deflated_sharpe(returns: pd.Series, trial_sharpes: np.ndarray) -> dict[str, float]:
    """Deflated Sharpe ratio (Bailey & Lopez de Prado 2014) of the chosen strategy's daily returns.

    ``trial_sharpes`` are the per-period (not annualised) Sharpe ratios of every configuration tried.
    """
    from scipy import stats

    r = pd.Series(returns, dtype=float).dropna()
    sr = sharpe(r, periods=1)
    n_trials = len(trial_sharpes)
    sr0 = expected_max_sharpe(float(np.var(trial_sharpes, ddof=1)) if n_trials > 1 else 0.0, n_trials)
    return {
        "sharpe_per_period": float(sr),
        "sr0": sr0,
        "trials": n_trials,
        "dsr": dsr_from_moments(sr, sr0, len(r), float(stats.skew(r)), float(stats.kurtosis(r, fisher=False))),
    }


def expected_max_sharpe(variance: float, n_trials: int) -> float:
    """E[max SR] of ``n_trials`` unskilled strategies with Sharpe variance ``variance`` (per period)."""
    if n_trials < 2:
        return 0.0
    from scipy import stats

    return float(
        np.sqrt(variance)
        * (
            (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n_trials)
            + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n_trials * np.e))
        )
    )


def dsr_from_moments(sr: float, sr0: float, t: int, skew: float, kurtosis: float) -> float:
    """P[true SR > sr0] given an observed per-period SR over t observations with these moments."""
    from scipy import stats

    denom = np.sqrt(1 - skew * sr + (kurtosis - 1) / 4 * sr**2)
    return float(stats.norm.cdf((sr - sr0) * np.sqrt(t - 1) / denom))


def pbo(returns: pd.DataFrame, n_blocks: int = 8) -> dict[str, float]:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, Lopez de Prado, Zhu 2015).

    ``returns``: rows = time, columns = configurations. The rows are cut into
    ``n_blocks`` contiguous blocks; for every half of the blocks as in-sample
    the best in-sample configuration's out-of-sample Sharpe rank w is taken and
    PBO is the share of splits with logit(w) <= 0.
    """
    if n_blocks % 2 or n_blocks < 2:
        raise ValueError("n_blocks must be even and at least 2")
    from scipy import stats

    m = returns.to_numpy(dtype=float)
    blocks = np.array_split(np.arange(len(m)), n_blocks)
    n = m.shape[1]
    logits = []
    for ins in combinations(range(n_blocks), n_blocks // 2):
        is_rows = np.concatenate([blocks[b] for b in ins])
        oos_rows = np.concatenate([blocks[b] for b in range(n_blocks) if b not in ins])
        best = int(np.nanargmax(_sharpe_cols(m[is_rows])))
        oos = _sharpe_cols(m[oos_rows])
        rank = stats.rankdata(oos)[best]  # 1 = worst
        w = rank / (n + 1)
        logits.append(np.log(w / (1 - w)))
    logits = np.array(logits)
    return {"pbo": float((logits <= 0).mean()), "splits": len(logits), "median_logit": float(np.median(logits))}


def _sharpe_cols(m: np.ndarray) -> np.ndarray:
    """Per-period Sharpe of each column, -inf where undefined (it only ranks configurations)."""
    sr = np.array([sharpe(col, periods=1) for col in m.T])
    return np.where(np.isnan(sr), -np.inf, sr)

"""Portfolio simulation net of costs, performance metrics, deflated Sharpe ratio and PBO.

Timing: predictions are made at the decision time of session t (09:00 ET);
the target portfolio is traded at the open of t and held to the open of t+1,
so day t earns the open-to-open return ``label`` (horizon 1). Costs are
charged on the day's trades: per traded name
``max(|dw| * (cost_bps + slippage_bps) / 1e4, min_cost / capital)``.

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
from itertools import combinations

import numpy as np
import pandas as pd

from quant_assets.core.research.metrics import icir, wide_ic

DAYS = 252
EULER_GAMMA = 0.5772156649015329


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


def _long_short(pred: pd.DataFrame, q: float) -> pd.DataFrame:
    """+0.5 spread equally over the top quantile, -0.5 over the bottom; names without a prediction get 0."""
    ranks = pred.rank(axis=1, pct=True)
    n = pred.notna().sum(axis=1)
    top = ranks > 1 - q
    bottom = (ranks <= q) & ranks.notna()
    w = top.div(top.sum(axis=1).replace(0, np.nan), axis=0) * 0.5
    w -= bottom.div(bottom.sum(axis=1).replace(0, np.nan), axis=0) * 0.5
    return w.where(n >= 2, 0.0).fillna(0.0)


def topk_holdings(row: np.ndarray, held: set[int], k: int, n_drop: int) -> set[int]:
    """One day of the top-k rule: ``held`` (column indices) after selling at most ``n_drop`` held names that
    fell out of today's top k and buying the best names not held, up to k. Ties are broken by column (the
    columns are the names in order), so the holdings depend on the names and values alone, not on which other
    names a frame happens to hold: a day-by-day book (``live_book``) and a backtest of the whole range agree."""
    valid = ~np.isnan(row)
    if not valid.any():
        return set()  # no view: go flat rather than hold blind
    order = [int(i) for i in np.argsort(-np.where(valid, row, -np.inf), kind="stable") if valid[i]]
    top = set(order[:k])
    kept = {i for i in held if valid[i]}
    leaving = sorted((i for i in kept if i not in top), key=lambda i: (row[i], i))[:n_drop]
    kept -= set(leaving)
    for i in order:
        if len(kept) >= k:
            break
        kept.add(i)
    return kept


def _topk_drop(pred: pd.DataFrame, k: int, n_drop: int) -> pd.DataFrame:
    """Hold k names equally; each day sell at most ``n_drop`` held names that fell out of the top k."""
    values = pred.to_numpy()
    out = np.zeros_like(values)
    held: set[int] = set()
    for t, row in enumerate(values):
        held = topk_holdings(row, held, k, n_drop)
        if held:
            out[t, sorted(held)] = 1.0 / len(held)
    return pd.DataFrame(out, index=pred.index, columns=pred.columns)


def target_weights(pred: pd.DataFrame, rule: PortfolioRule) -> pd.DataFrame:
    if rule.kind == "long_short":
        return _long_short(pred, rule.quantile)
    if rule.kind == "topk":
        return _topk_drop(pred, rule.k, rule.n_drop)
    raise ValueError(f"unknown portfolio rule {rule.kind!r}")


@dataclass
class BacktestResult:
    daily: pd.DataFrame  # date -> gross, cost, net, turnover
    weights: pd.DataFrame
    metrics: dict[str, float]
    gross_metrics: dict[str, float]
    quantile_returns: pd.Series


def trade_costs(trades: np.ndarray, costs: Costs) -> np.ndarray:
    """The cost of each traded amount (absolute weight changes): bps of the amount, at least the minimum
    ticket for a name that trades."""
    return np.maximum(
        trades * (costs.cost_bps + costs.slippage_bps) / 1e4, np.where(trades > 0, costs.min_cost / costs.capital, 0.0)
    )


def row_sum(values: np.ndarray) -> np.ndarray:
    """Each row's sum, added in column order one term at a time (NumPy's ``sum`` adds pairwise, which groups the
    terms by their positions). Adding a zero is exact, so the day's total does not depend on the zero columns of
    names it neither holds nor trades: a book that sums one day's names and a backtest that sums the whole range's
    columns (the names in the same order) agree to the last bit. ``+ 0.0`` makes a zero total +0.0 whatever the
    signs of its zero terms (a paused book's)."""
    values = np.atleast_2d(values)
    if values.shape[1] == 0:
        return np.zeros(values.shape[0])
    return np.cumsum(values, axis=1)[:, -1] + 0.0


def run(
    frame: pd.DataFrame,
    rule: PortfolioRule = PortfolioRule(),
    costs: Costs = Costs(),
    exposure: pd.Series | None = None,
) -> BacktestResult:
    """Simulate ``frame`` (date, entity_key, prediction, label) day by day, vectorised over names.

    ``exposure`` (date -> multiplier, default 1): the rule's weights scaled on each day, as a model's state
    scales what it trades (0 paused, 0.5 de-risked); the rule itself runs on unscaled holdings.
    """
    pred = frame.pivot(index="date", columns="entity_key", values="prediction").sort_index()
    ret = frame.pivot(index="date", columns="entity_key", values="label").reindex_like(pred)
    w = target_weights(pred, rule)
    if exposure is not None:
        w = w.mul(exposure.reindex(w.index).fillna(1.0).to_numpy(), axis=0)
    trades = w.diff().fillna(w).abs()
    gross = pd.Series(row_sum((w * ret.fillna(0.0)).to_numpy()), index=w.index)
    cost = pd.Series(row_sum(trade_costs(trades.to_numpy(), costs)), index=w.index)
    turnover = pd.Series(row_sum(trades.to_numpy()), index=w.index)
    daily = pd.DataFrame({"gross": gross, "cost": cost, "net": gross - cost, "turnover": turnover})
    ic = wide_ic(pred, ret)
    ric = wide_ic(pred, ret, method="spearman")
    signal = {
        "ic": float(ic.mean()),
        "rank_ic": float(ric.mean()),
        "icir": icir(ic),
        "turnover": float(daily["turnover"].mean()),
    }
    return BacktestResult(
        daily,
        w,
        {**performance(daily["net"]), **signal},
        {**performance(daily["gross"]), **signal},
        quantile_returns(frame),
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

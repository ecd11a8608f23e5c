"""Drift and decay of a live model, defined once (DESIGN.md: Metrics, Alert matrix).

- PSI: ``sum((a - e) * ln(a / e))`` over bins cut at the reference's deciles
  (right-closed, the outer bins open-ended), shares clipped at 1e-4. The
  reference is the model's training snapshot; the actual sample pools the
  last PSI_WINDOW sessions' cross-sections.
- IC / rank IC: the cross-sectional Pearson / Spearman correlation of a
  day's predictions with their realised labels (``metrics.wide_ic``).
- Live signal: the long-short quantile portfolio of the predictions, net of
  costs (``backtest.run`` with LIVE_RULE); its rolling Sharpe is ``backtest.sharpe``
  (mean/std(ddof=1)*sqrt(252), NaN without dispersion), the backtest's own.

Alert rules count *observed* sessions: a session without a value (no matured
predictions, a missing run) neither counts towards nor breaks a streak, and
only observations inside the look-back window are used, so a day's levels are
a pure function of data known by that day, the same whether the days are
computed in order, out of order, or after a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quant_assets.core import backtest as bt
from quant_assets.core import time as qtime
from quant_assets.core.metrics import wide_ic

PSI_BINS = 10
PSI_CLIP = 1e-4
# Sessions pooled into the "actual" sample. One day's cross-section of a feature with a market component
# (returns, moving-average gaps, RSI) sits wherever that day's market move put it, so against a pooled
# multi-month reference it scores PSI 0.2-0.4 on ordinary days; pooling five sessions halves that noise.
PSI_WINDOW = 5
LEVELS = ("ok", "warning", "critical")


@dataclass(frozen=True)
class PsiReference:
    """Interior cut points of a reference distribution and its share per bin."""

    edges: np.ndarray
    shares: np.ndarray

    @classmethod
    def of(cls, values, bins: int = PSI_BINS) -> PsiReference:
        ref = _finite(values)
        if len(ref) == 0:
            raise ValueError("PSI reference has no finite values")
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
        return cls(edges, _shares(ref, edges))

    def psi(self, values, clip: float = PSI_CLIP) -> float:
        actual = _finite(values)
        if len(actual) == 0:
            return math.nan
        a = np.clip(_shares(actual, self.edges), clip, None)
        e = np.clip(self.shares, clip, None)
        return float(np.sum((a - e) * np.log(a / e)))


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / len(values)


def psi(reference, actual, bins: int = PSI_BINS, clip: float = PSI_CLIP) -> float:
    """PSI of ``actual`` against ``reference`` (DESIGN.md definition)."""
    return PsiReference.of(reference, bins).psi(actual, clip)


def psi_band(value: float) -> str:
    """DESIGN.md bands: < 0.10 stable, 0.10-0.25 watch, > 0.25 act."""
    if not np.isfinite(value):
        return "unknown"
    return "stable" if value < 0.10 else "watch" if value <= 0.25 else "act"


# --- the live signal, per matured session ---------------------------------------------------------------


LIVE_RULE = bt.PortfolioRule("long_short", quantile=0.2)  # no path dependence: a day needs only the day before


def daily_signal(frame: pd.DataFrame, costs: bt.Costs, rule: bt.PortfolioRule = LIVE_RULE) -> pd.DataFrame:
    """Per session of ``frame`` (date, entity_key, prediction, label): n, IC, rank IC, hit rate, net return.

    The first session is the warm-up: its net return would charge the whole book as
    new trades, so it is left NaN (callers pass one extra session in front).
    """
    pred = frame.pivot(index="date", columns="entity_key", values="prediction").sort_index()
    lab = frame.pivot(index="date", columns="entity_key", values="label").reindex_like(pred)
    both = pred.notna() & lab.notna()
    pdm = pred.where(both).sub(pred.where(both).mean(axis=1), axis=0)
    ldm = lab.where(both).sub(lab.where(both).mean(axis=1), axis=0)
    hits = ((np.sign(pdm) == np.sign(ldm)) & (pdm != 0) & (ldm != 0)).sum(axis=1)
    decided = ((pdm != 0) & (ldm != 0) & both).sum(axis=1)
    result = bt.run(frame, rule, costs)
    net = result.daily["net"].copy()
    if len(net):
        net.iloc[0] = np.nan
    return pd.DataFrame(
        {
            "n": both.sum(axis=1),
            "ic": wide_ic(pred, lab),
            "rank_ic": wide_ic(pred, lab, method="spearman"),
            "hit_rate": (hits / decided.where(decided > 0)).astype(float),
            "net_return": net,
        }
    )


def trailing(series: pd.Series, n: int) -> list[float]:
    """The last ``n`` observed (non-NaN) values, oldest first."""
    return series.dropna().iloc[-n:].tolist()


def trailing_mean(series: pd.Series, n: int) -> float:
    last = trailing(series, n)
    return float(np.mean(last)) if len(last) == n else math.nan


def trailing_sharpe(series: pd.Series, n: int) -> float:
    """``backtest.sharpe`` of the last ``n`` observed values; NaN until there are ``n``."""
    last = trailing(series, n)
    return bt.sharpe(last) if len(last) == n else math.nan


def rolling_observed(series: pd.Series, n: int, fn) -> pd.Series:
    """``fn`` of the last ``n`` observed values at each observed position (NaN elsewhere)."""
    obs = series.dropna()
    out = pd.Series(np.nan, index=series.index)
    for i in range(len(obs)):
        out[obs.index[i]] = fn(obs.iloc[: i + 1], n)
    return out


# --- the alert matrix --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """``metric`` below (``op`` "<") or above (">") ``threshold`` for ``days`` consecutive observations."""

    metric: str
    op: str
    threshold: float
    days: int = 1

    def holds(self, history: pd.Series) -> bool:
        last = trailing(history, self.days)
        if len(last) < self.days:
            return False
        return all(v < self.threshold if self.op == "<" else v > self.threshold for v in last)

    def describe(self) -> str:
        span = f" for {self.days} days" if self.days > 1 else ""
        return f"{self.metric} {self.op} {self.threshold:g}{span}"


@dataclass(frozen=True)
class Signal:
    """One row of the alert matrix: warning and critical rules, what a critical level asks for."""

    name: str
    warning: Rule | None
    critical: Rule
    action: str  # "retrain" or "pause"


@dataclass(frozen=True)
class AlertConfig:
    """DESIGN.md defaults. IC rules read the 5-day mean IC (a single day's IC is too noisy to act on)."""

    ic_warning: float = 0.02
    ic_warning_days: int = 5
    ic_critical: float = 0.01
    ic_pause: float = 0.0
    ic_pause_days: int = 3
    psi_warning: float = 0.10
    psi_critical: float = 0.25
    sharpe_warning: float = 0.5
    sharpe_warning_days: int = 10
    sharpe_critical: float = 0.0
    sharpe_critical_days: int = 5

    def __post_init__(self) -> None:
        days = {k: v for k, v in self.__dict__.items() if k.endswith("_days")}
        bad = {k: v for k, v in days.items() if not (isinstance(v, int) and v >= 1)}
        if bad:
            raise ValueError(f"alert rules need at least one day in a row: {bad}")

    def signals(self) -> list[Signal]:
        return [
            Signal(
                "ic",
                Rule("ic_mean_5", "<", self.ic_warning, self.ic_warning_days),
                Rule("ic_mean_5", "<", self.ic_critical),
                "retrain",
            ),
            Signal("ic_negative", None, Rule("ic_mean_5", "<", self.ic_pause, self.ic_pause_days), "pause"),
            Signal("psi", Rule("psi_mean", ">", self.psi_warning), Rule("psi_mean", ">", self.psi_critical), "retrain"),
            Signal(
                "sharpe",
                Rule("sharpe_20", "<", self.sharpe_warning, self.sharpe_warning_days),
                Rule("sharpe_20", "<", self.sharpe_critical, self.sharpe_critical_days),
                "retrain",
            ),
        ]

    @property
    def lookback(self) -> int:
        """Observations a day's levels can reach back to (20-day Sharpe held for N days, plus the warm-up)."""
        return max(20 + max(self.sharpe_warning_days, self.sharpe_critical_days), 5 + self.ic_warning_days) + 1


@dataclass(frozen=True)
class Alerts:
    levels: dict[str, str]
    actions: list[str]
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def worst(self) -> str:
        return max(self.levels.values(), key=LEVELS.index, default="ok")


def evaluate(history: pd.DataFrame, cfg: AlertConfig = AlertConfig()) -> Alerts:
    """Alert levels of the last row of ``history`` (rows: sessions up to the day; columns: the metrics)."""
    levels, actions, reasons = {}, [], {}
    for sig in cfg.signals():
        series = history[sig.critical.metric]
        if sig.critical.holds(series):
            levels[sig.name], reasons[sig.name] = "critical", sig.critical.describe()
            actions.append(sig.action)
        elif sig.warning is not None and sig.warning.holds(series):
            levels[sig.name], reasons[sig.name] = "warning", sig.warning.describe()
        else:
            levels[sig.name] = "ok"
    return Alerts(levels, sorted(set(actions)), reasons)


# --- retraining decisions (the sensor's logic, without the sensor) ---------------------------------------


@dataclass(frozen=True)
class Breach:
    model: str
    date: str  # the session whose drift row first crossed
    signal: str
    metric: str
    value: float
    threshold: float

    @property
    def run_key(self) -> str:
        return f"retrain:{self.model}:{self.signal}:{self.date}"


def retrain_breaches(rows: pd.DataFrame, cfg: AlertConfig = AlertConfig()) -> list[Breach]:
    """Breaches that ask for a retrain, each at the first session of a run of critical sessions.

    ``rows``: drift rows of one model (date, the metrics, levels as a dict column), in date order. A
    critical level that continues from the previous stored row is the same breach, not a new one.
    """
    out = []
    signals = {s.name: s for s in cfg.signals() if s.action == "retrain"}
    prev: dict[str, str] = {}
    for row in rows.itertuples(index=False):
        for name, sig in signals.items():
            level = row.levels.get(name, "ok")
            if level == "critical" and prev.get(name) != "critical":
                value = getattr(row, sig.critical.metric)
                out.append(Breach(row.model, str(row.date), name, sig.critical.metric, value, sig.critical.threshold))
            prev[name] = level
    return out


def next_retrain(
    rows: pd.DataFrame,
    seen_seq: int,
    last_request: str | None,
    cfg: AlertConfig,
    cooldown_sessions: int,
) -> Breach | None:
    """The breach to retrain on, if any, among those that start in rows newer than ``seen_seq``.

    ``rows``: all drift rows of one model with their ``seq`` (a breach continuing from an older row is not
    new). Breaches inside the cool-down after ``last_request`` are passed over. When several qualify (a
    backlog: the daemon was down, or history was replayed) the latest wins: one retrain, on the newest data,
    rather than one per stale breach.
    """
    seq_at = dict(zip(rows["date"].astype(str), rows["seq"], strict=True))
    fresh = [b for b in retrain_breaches(rows, cfg) if seq_at[b.date] > seen_seq]
    ready = [b for b in fresh if cooled_down(b, last_request, cooldown_sessions)]
    return max(ready, key=lambda b: b.date) if ready else None


def cooled_down(breach: Breach, last_request: str | None, cooldown_sessions: int) -> bool:
    """True when no retrain was requested for the model within ``cooldown_sessions`` before the breach."""
    if last_request is None:
        return True
    return len(qtime.sessions_between(last_request, breach.date)) - 1 > cooldown_sessions

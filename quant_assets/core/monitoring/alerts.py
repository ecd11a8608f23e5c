"""The alert matrix of a live model's drift rows (DESIGN.md: Alert matrix), and the retraining decisions it drives.

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

from quant_assets.core import sessions

LEVELS = ("ok", "warning", "critical")


@dataclass(frozen=True)
class Rule:
    """``metric`` below (``op`` "<") or above (">") ``threshold`` for ``days`` consecutive observations.

    ``floor`` names a history column with each observation's no-drift level (the PSI noise at its sample
    size): the value must then be beyond that level too, so the limit is max(threshold, level) for ">". A
    missing column or value (rows stored before the level existed) leaves the threshold alone.
    """

    metric: str
    op: str
    threshold: float
    days: int = 1
    floor: str | None = None

    def limit(self, level=None) -> float:
        """The threshold this observation is held to, given its no-drift ``level``."""
        if self.floor is None or level is None or pd.isna(level):
            return self.threshold
        return max(self.threshold, float(level)) if self.op == ">" else min(self.threshold, float(level))

    def crosses(self, value: float, level=None) -> bool:
        """One observation beyond the limit it is held to."""
        limit = self.limit(level)
        return value < limit if self.op == "<" else value > limit

    def _observed(self, history: pd.DataFrame) -> tuple[list[float], list]:
        """The last ``days`` observed values of the metric and their no-drift levels, oldest first."""
        obs = history[history[self.metric].notna()].iloc[-self.days :]
        levels = obs[self.floor].tolist() if self.floor in obs.columns else [None] * len(obs)
        return obs[self.metric].tolist(), levels

    def holds(self, history: pd.DataFrame) -> bool:
        values, levels = self._observed(history)
        return len(values) == self.days and all(map(self.crosses, values, levels))

    def describe(self, history: pd.DataFrame | None = None) -> str:
        """The rule as it applied to the last observation of ``history`` (its no-drift level, if it raised it)."""
        span = f" for {self.days} days" if self.days > 1 else ""
        levels = self._observed(history)[1] if history is not None else []
        limit = self.limit(levels[-1]) if levels else self.threshold
        if limit != self.threshold:
            noise = f"the no-drift level at its sample size, above the {self.threshold:g} set"
            return f"{self.metric} {self.op} {limit:.4g}{span} ({noise})"
        return f"{self.metric} {self.op} {self.threshold:g}{span}"


@dataclass(frozen=True)
class Signal:
    """One row of the alert matrix: warning and critical rules, what a critical level asks for."""

    name: str
    warning: Rule | None
    critical: Rule
    actions: tuple[str, ...]  # what a critical level asks for: "de-risk", "pause", "retrain" (monitoring.actions)

    def level(self, history: pd.DataFrame) -> tuple[str, str | None]:
        """The level of the last row of ``history`` and the rule that set it."""
        for level, rule in (("critical", self.critical), ("warning", self.warning)):
            if rule is not None and rule.holds(history):
                return level, rule.describe(history)
        return "ok", None


@dataclass(frozen=True)
class AlertConfig:
    """DESIGN.md defaults. IC rules read the 5-day mean IC (a single day's IC is too noisy to act on).

    ``psi_noise_quantile``: PSI bands need the mean PSI above the no-drift level at this quantile for the day's
    sample sizes as well as above ``psi_warning`` / ``psi_critical`` (0 turns the sample-size level off).
    """

    ic_warning: float = 0.02
    ic_warning_days: int = 5
    ic_critical: float = 0.01
    ic_pause: float = 0.0
    ic_pause_days: int = 3
    psi_warning: float = 0.10
    psi_critical: float = 0.25
    psi_noise_quantile: float = 0.99
    sharpe_warning: float = 0.5
    sharpe_warning_days: int = 10
    sharpe_critical: float = 0.0
    sharpe_critical_days: int = 5

    def __post_init__(self) -> None:
        days = {k: v for k, v in self.__dict__.items() if k.endswith("_days")}
        bad = {k: v for k, v in days.items() if not (isinstance(v, int) and v >= 1)}
        if bad:
            raise ValueError(f"alert rules need at least one day in a row: {bad}")
        if not 0 <= self.psi_noise_quantile < 1:
            raise ValueError(f"psi_noise_quantile must be in [0, 1), got {self.psi_noise_quantile!r}")

    def signals(self) -> list[Signal]:
        return [
            Signal(
                "ic",
                Rule("ic_mean_5", "<", self.ic_warning, self.ic_warning_days),
                Rule("ic_mean_5", "<", self.ic_critical),
                ("de-risk", "retrain"),
            ),
            Signal("ic_negative", None, Rule("ic_mean_5", "<", self.ic_pause, self.ic_pause_days), ("pause",)),
            Signal(
                "psi",
                Rule("psi_mean", ">", self.psi_warning, floor="psi_noise"),
                Rule("psi_mean", ">", self.psi_critical, floor="psi_noise"),
                ("retrain",),
            ),
            Signal(
                "sharpe",
                Rule("sharpe_20", "<", self.sharpe_warning, self.sharpe_warning_days),
                Rule("sharpe_20", "<", self.sharpe_critical, self.sharpe_critical_days),
                ("de-risk", "retrain"),
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
        levels[sig.name], reason = sig.level(history)
        if reason is not None:
            reasons[sig.name] = reason
        if levels[sig.name] == "critical":
            actions.extend(sig.actions)
    return Alerts(levels, sorted(set(actions)), reasons)


PSI_BANDS = {"ok": "stable", "warning": "watch", "critical": "act"}


def psi_band(value: float, noise: float = math.nan, *, cfg: AlertConfig) -> str:
    """DESIGN.md's word for the PSI signal's level at one mean PSI: stable, watch or act ("unknown" without one).

    The alert matrix's own one-day PSI rules: watch above ``cfg.psi_warning``, act above ``cfg.psi_critical``,
    each only when the value is also above ``noise``, the PSI a sample of that size shows with no drift at all.
    ``cfg`` has no default: the band follows the deployment's alert policy, never the built-in thresholds.
    """
    if value is None or not np.isfinite(value):
        return "unknown"
    psi_signal = next(s for s in cfg.signals() if s.name == "psi")
    if psi_signal.critical.crosses(value, noise):
        return PSI_BANDS["critical"]
    return PSI_BANDS["warning" if psi_signal.warning.crosses(value, noise) else "ok"]


# --- retraining decisions (the sensor's logic, without the sensor) ---------------------------------------


@dataclass(frozen=True)
class Breach:
    model: str
    date: str  # the session whose drift row first crossed
    signal: str
    metric: str
    value: float
    threshold: float  # the limit the value crossed: the configured one, or the PSI's no-drift level when higher

    @property
    def run_key(self) -> str:
        return f"retrain:{self.model}:{self.signal}:{self.date}"


def retrain_breaches(rows: pd.DataFrame, cfg: AlertConfig = AlertConfig()) -> list[Breach]:
    """Breaches that ask for a retrain, each at the first session of a run of critical sessions.

    ``rows``: drift rows of one model (date, the metrics, levels as a dict column), in date order. A
    critical level that continues from the previous stored row is the same breach, not a new one.
    """
    out = []
    signals = {s.name: s for s in cfg.signals() if "retrain" in s.actions}
    prev: dict[str, str] = {}
    for row in rows.itertuples(index=False):
        for name, sig in signals.items():
            level = row.levels.get(name, "ok")
            if level == "critical" and prev.get(name) != "critical":
                noise = getattr(row, sig.critical.floor, None) if sig.critical.floor else None
                value, limit = getattr(row, sig.critical.metric), sig.critical.limit(noise)
                out.append(Breach(row.model, str(row.date), name, sig.critical.metric, value, limit))
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
    return len(sessions.sessions_between(last_request, breach.date)) - 1 > cooldown_sessions

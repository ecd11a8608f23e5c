"""Drift and decay of a live model, defined once (DESIGN.md: Metrics, Alert matrix).

- PSI: ``sum((a - e) * ln(a / e))`` over tie-aware bins of the reference (``tie_aware_cuts``: about 10
  bins at its quantiles, a value holding >= 5% of it in a bin of its own, cuts strictly between distinct
  reference values), shares clipped at 1e-4. The reference is the model's training snapshot; the actual
  sample pools the last PSI_WINDOW sessions' cross-sections.
- PSI noise: the PSI that a sample of that size drawn from the reference itself exceeds with probability
  1 - q (``PsiReference.noise``, simulated); for the mean over features, the mean of the features' levels.
  The PSI signal gives a band only above both the configured threshold and this level, so a small
  universe's sampling noise is not reported as drift.
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

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.research import backtest
from quant_assets.core.research.metrics import wide_ic

PSI_BINS = 10
PSI_CLIP = 1e-4
TIE_RTOL = 1e-12  # relative spacing below which two values count as one (rounding noise, not a difference)
# Sessions pooled into the "actual" sample. One day's cross-section of a feature with a market component
# (returns, moving-average gaps, RSI) sits wherever that day's market move put it, so against a pooled
# multi-month reference it scores PSI 0.2-0.4 on ordinary days; pooling five sessions halves that noise.
PSI_WINDOW = 5
LEVELS = ("ok", "warning", "critical")


@dataclass(frozen=True)
class PsiReference:
    """Tie-aware bins of a reference distribution: interior cut points, reference share per bin, reference size.

    Bins are built from the distinct finite reference values in order (``tie_aware_cuts``); every cut lies
    strictly between two neighbouring distinct values, so no reference value sits on a cut and the reference
    shares are the same whichever side a bin is closed on. A reference without finite values has no bins and
    says why (``reason``): its PSI is NaN, so the feature simply has no PSI and a model's other features do.
    """

    cuts: np.ndarray
    shares: np.ndarray
    size: int
    reason: str | None = None

    @classmethod
    def of(cls, values, bins: int = PSI_BINS) -> PsiReference:
        ref = _finite(values)
        if len(ref) == 0:
            return cls.empty(f"the reference has no finite values (of {np.size(values)})")
        cuts = tie_aware_cuts(ref, bins)
        return cls(cuts, _shares(ref, cuts), len(ref))

    @classmethod
    def empty(cls, reason: str) -> PsiReference:
        return cls(np.empty(0), np.empty(0), 0, reason)

    @property
    def bins(self) -> int:
        return len(self.shares)

    def psi(self, values, clip: float = PSI_CLIP) -> float:
        actual = _finite(values)
        if self.reason is not None or len(actual) == 0:
            return math.nan
        a = np.clip(_shares(actual, self.cuts), clip, None)
        e = np.clip(self.shares, clip, None)
        return float(np.sum((a - e) * np.log(a / e)))

    def noise(self, n: int, q: float, clip: float = PSI_CLIP) -> float:
        """The PSI that ``n`` values drawn from the reference's own distribution exceed with probability 1 - q.

        ``q`` = 0 turns the level off (0). Otherwise simulated (``_no_drift_quantile``), not approximated: the
        chi-square approximation (n*m/(n+m) * PSI ~ chi2(B - 1)) gives 0.25 for 10 equal bins at n = 90
        where the simulated level is 0.31, and misses the clip entirely where a bin expects few values: an
        empty 3% bin adds 0.03 * ln(0.03 / 1e-4) = 0.18, which 90 values leave empty 6% of the time.
        """
        if self.reason is not None or n < 1:
            return math.nan
        if q <= 0:
            return 0.0
        step = 10 ** max(0, len(str(int(n))) - 2)  # n to two digits, rounded down: a level at most ~10% higher
        return _no_drift_quantile(self.shares.tobytes(), int(n) // step * step, self.size, q, clip)


PSI_NOISE_DRAWS = 2000


@functools.lru_cache(maxsize=4096)
def _no_drift_quantile(shares: bytes, n: int, m: int, q: float, clip: float) -> float:
    """q-quantile of the PSI between n and m values drawn from the same bins (``shares``, as float64 bytes).

    Both samples are redrawn, PSI_NOISE_DRAWS times, from a fixed seed: the level is a pure function of its
    arguments (a drift row is the same however it is computed), and cached: with n kept to two digits, a
    reference meets few distinct sizes.
    """
    e = np.frombuffer(shares)
    rng = np.random.default_rng(0)
    ref = np.clip(rng.multinomial(m, e, size=PSI_NOISE_DRAWS) / m, clip, None)
    act = np.clip(rng.multinomial(n, e, size=PSI_NOISE_DRAWS) / n, clip, None)
    return float(np.quantile(np.sum((act - ref) * np.log(act / ref), axis=1), q))


def tie_aware_cuts(values: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Cut points for about ``bins`` equally filled bins of ``values`` (finite) that no tie can straddle.

    Values within TIE_RTOL of each other are one value (the same number reached by different rounding). A
    value holding at least half a bin's share (1 / (2 * bins)) is an atom: it gets a bin of its own. Each run
    of other values between atoms, holding r of the m values, is cut into max(1, round(bins * r / m)) bins
    at its quantiles, a bin ending at the first value where the run's running count reaches its quantile.
    Each cut is the midpoint of the two neighbouring values it separates: cuts strictly increase, every bin
    holds at least one value, and no value lies on a cut.
    """
    v = np.sort(values)
    new = np.diff(v) > TIE_RTOL * np.maximum(np.abs(v[:-1]), np.abs(v[1:]))
    starts = np.flatnonzero(np.concatenate([[True], new]))
    ends = np.append(starts[1:], len(v))
    counts = ends - starts
    atom = counts * 2 * bins >= len(v)
    boundary = atom[:-1] | atom[1:]  # boundary[i]: a cut between value i and value i + 1
    for start, stop in _runs(~atom):
        run = np.cumsum(counts[start:stop])
        k = max(1, round(bins * run[-1] / len(v)))
        after = np.searchsorted(run, run[-1] * np.arange(1, k) / k) + start  # the value each bin ends at
        boundary[after[after < stop - 1]] = True
    at = np.flatnonzero(boundary)
    return (v[ends[at] - 1] + v[starts[at + 1]]) / 2


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each maximal run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2], strict=True))


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]


def _shares(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Share of ``values`` per bin (-inf, c1), (c1, c2), ..., (ck, inf); a value exactly on a cut counts half in
    each bin beside it.

    No reference value lies on a cut, so only an actual value can (ranks k/n of another universe size can
    hit a midpoint): half to each side is the one rule that does not pick a side, so a PSI never depends
    on whether bins are closed on the left or the right.
    """
    k = len(cuts) + 1
    right = np.bincount(np.searchsorted(cuts, values, side="left"), minlength=k)  # (c_i, c_i+1]
    left = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=k)  # [c_i, c_i+1)
    return (right + left) / (2 * len(values))


def psi(reference, actual, bins: int = PSI_BINS, clip: float = PSI_CLIP) -> float:
    """PSI of ``actual`` against ``reference`` (DESIGN.md definition, tie-aware bins)."""
    return PsiReference.of(reference, bins).psi(actual, clip)


def feature_psi(refs: dict[str, PsiReference], sample: pd.DataFrame, q: float) -> tuple[dict[str, float], float]:
    """PSI of each column of ``sample`` against its reference, and the no-drift q-level of their mean.

    The level of the mean is the mean of the features' own levels (each at its own count of finite values
    and bins): exact when the features' sampling noise moves together, conservative when it does not.
    """
    values = {f: ref.psi(sample[f]) for f, ref in refs.items()}
    levels = [ref.noise(int(np.isfinite(sample[f]).sum()), q) for f, ref in refs.items() if np.isfinite(values[f])]
    return values, float(np.mean(levels)) if levels else math.nan


# --- the live signal, per matured session ---------------------------------------------------------------


LIVE_RULE = backtest.PortfolioRule("long_short", quantile=0.2)  # no path dependence: a day needs only the day before


def daily_signal(frame: pd.DataFrame, costs: backtest.Costs, rule: backtest.PortfolioRule = LIVE_RULE) -> pd.DataFrame:
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
    result = backtest.run(frame, rule, costs)
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
    return backtest.sharpe(last) if len(last) == n else math.nan


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
    action: str  # "retrain" or "pause"

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
                "retrain",
            ),
            Signal("ic_negative", None, Rule("ic_mean_5", "<", self.ic_pause, self.ic_pause_days), "pause"),
            Signal(
                "psi",
                Rule("psi_mean", ">", self.psi_warning, floor="psi_noise"),
                Rule("psi_mean", ">", self.psi_critical, floor="psi_noise"),
                "retrain",
            ),
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
        levels[sig.name], reason = sig.level(history)
        if reason is not None:
            reasons[sig.name] = reason
        if levels[sig.name] == "critical":
            actions.append(sig.action)
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
    signals = {s.name: s for s in cfg.signals() if s.action == "retrain"}
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

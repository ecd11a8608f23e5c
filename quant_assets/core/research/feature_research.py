"""Feature research without a backfill: a candidate's figures over a window of sessions, from the raw lake.

``evaluate(root, "path/to/file.py:NAME", start, end)`` computes the candidate (core/research/candidate.py: the
stored features' compute path and guards, nothing written) and measures it at each session t of [start, end]
as a model would meet it: its value usable at t's decision time (09:00 ET, before the open; the staleness rule
of its family) against the label of t. Every figure of a session uses only what was known then:

- **labels**: the project's label (snapshots: the adjusted open-to-open return from t to t+h, ``known_bars`` and
  ``forward_returns``) at horizons 1, 5, 10 and 20, each from the price versions known when it matured (the
  close of t+h, ``known_by_close``), so a restatement delivered later never changes a figure of an earlier day;
- **IC decay**: daily IC and rank IC per horizon (``metrics.wide_ic``), their means, ICIR and t-statistics
  (Newey-West with h-1 lags, as the labels of consecutive days overlap by h-1 sessions);
- **quantiles**: the mean horizon-1 label of each of 5 daily cross-sectional quantiles of the candidate (1
  lowest), as the backtest reports a signal's (``backtest.quantile_returns``), and the top-minus-bottom spread;
- **persistence**: the mean cross-sectional rank correlation of the candidate with itself 1 and 5 sessions
  earlier, and the rank turnover: the mean absolute change of a name's percentile rank from one session to
  the next (0: the same order; about 1/3 for independent orders);
- **coverage**: the share of the session's universe (the names with a price bar of the previous session known
  at the decision time: what a model scores) with a usable value, per day and overall;
- **correlations**: the mean daily rank correlation with every library feature stored in the feature store, read
  as known at each decision time (``FeatureStore.get_point_in_time`` under the same staleness rule).
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features import staleness
from quant_assets.core.features.definitions import FeatureDef
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.research import backtest, candidate, metrics, snapshots, tearsheet
from quant_assets.core.research.candidate import CandidateError, timed
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location

HORIZONS = (1, 5, 10, 20)
QUANTILES = 5
AUTOCORR_LAGS = (1, 5)


@dataclass
class Report:
    """A candidate's figures over a window (see the module docstring). Wide frames: rows sessions, columns names
    (``values``) or horizons (``ic``, ``rank_ic``); ``seconds`` holds (wall, CPU) per stage."""

    feature: FeatureDef
    start: dt.date
    end: dt.date
    values: pd.DataFrame
    universe: pd.DataFrame
    ic: pd.DataFrame
    rank_ic: pd.DataFrame
    quantiles: pd.Series
    persistence: dict[str, float]
    coverage: pd.Series
    correlations: pd.DataFrame
    guards: dict
    rows: pd.DataFrame
    seconds: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def overall_coverage(self) -> float:
        """Values over universe slots, all sessions pooled."""
        slots = len(self.universe)
        return float(self.universe["value"].notna().sum() / slots) if slots else np.nan

    @property
    def lookahead_passed(self) -> bool:
        return all(g.passed for g in self.guards.values())

    def ic_summary(self) -> pd.DataFrame:
        """Per horizon: mean, ICIR and Newey-West t-statistic of the daily IC and rank IC, and the days counted."""
        out = {}
        for h in self.ic.columns:
            ic, ric = self.ic[h], self.rank_ic[h]
            out[h] = {
                "ic_mean": float(ic.mean()),
                "icir": metrics.icir(ic),
                "ic_t": newey_west_t(ic, h - 1),
                "rank_ic_mean": float(ric.mean()),
                "rank_icir": metrics.icir(ric),
                "rank_ic_t": newey_west_t(ric, h - 1),
                "days": int(ic.notna().sum()),
            }
        return pd.DataFrame(out).T.rename_axis("horizon")

    def figures(self) -> dict:
        """Every figure as plain JSON-ready values (what the CLI writes and the job shows)."""
        return {
            "feature": {
                "name": self.feature.name,
                "version": self.feature.version,
                "family": self.feature.family,
                "lookback": self.feature.lookback,
                "inputs": list(self.feature.inputs),
                "description": self.feature.description,
            },
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat(), "sessions": len(self.values)},
            "lookahead": {
                name: {"passed": g.passed, "checked": g.checked, "failures": g.failures}
                for name, g in self.guards.items()
            },
            "ic_decay": _records(self.ic_summary()),
            "quantile_returns_h1": {str(k): _num(v) for k, v in self.quantiles.items()},
            "persistence": {k: _num(v) for k, v in self.persistence.items()},
            "coverage": {
                "overall": _num(self.overall_coverage),
                "min_day": _num(self.coverage.min()),
                "mean_day": _num(self.coverage.mean()),
            },
            "correlations": _records(self.correlations),
            "daily_ic": {str(d): {str(h): _num(v) for h, v in row.items()} for d, row in self.ic.iterrows()},
            "daily_coverage": {str(d): _num(v) for d, v in self.coverage.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.figures(), indent=2, sort_keys=False)


def _num(x) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else round(x, 10)


def _records(frame: pd.DataFrame) -> dict:
    return {str(k): {c: _num(v) if c != "days" else int(v) for c, v in row.items()} for k, row in frame.iterrows()}


def newey_west_t(series: pd.Series, lags: int) -> float:
    """mean / its standard error, the variance widened by ``lags`` Bartlett-weighted autocovariances (lags 0: the
    plain t-statistic, ICIR * sqrt(n)); NaN with fewer than 2 values or none varying."""
    x = series.dropna().to_numpy(dtype=float)
    n = len(x)
    if n < 2:
        return np.nan
    d = x - x.mean()
    var = d @ d / (n - 1)
    for k in range(1, min(lags, n - 1) + 1):
        var += 2 * (1 - k / (lags + 1)) * (d[k:] @ d[:-k]) / (n - 1)
    return float(x.mean() / np.sqrt(var / n)) if var > 0 else np.nan


def evaluate(
    root: Location,
    feature: FeatureDef | str,
    start,
    end,
    horizons: tuple[int, ...] = HORIZONS,
    guard_sample: int = 25,
    guard_days: int = candidate.GUARD_DAYS,
    store: FeatureStore | None = None,
) -> Report:
    """The candidate's figures for the decision sessions [start, end] (module docstring). ``feature`` is a
    ``FeatureDef`` or its ``path:NAME`` / ``module:NAME``; ``store`` the feature store the correlations read
    (default: the library's features under ``root``); ``guard_sample`` rows of each of ``guard_days`` days are
    recomputed by the guards (``candidate.guards``)."""
    root = fs.location(root)
    feature = candidate.load(feature) if isinstance(feature, str) else feature
    family = candidate.research_family(feature)
    days = _sessions(start, end)
    computed_days = sessions.sessions_between(
        staleness.earliest_partition(days[0], {family.name: family}), sessions.previous_session(days[-1])
    )
    candidate.check_history(root, family, computed_days)
    with ThreadPoolExecutor(1) as pool:  # a second thread: the market (``_market``), then the correlations
        market = pool.submit(_market, root, store or FeatureStore(root, ALL_FEATURES), days, max(horizons))
        computed = candidate.compute_rows(root, family, computed_days, guard_sample, guard_days)
        if computed.rows["value"].notna().sum() == 0:
            span = f"{computed_days[0]}..{computed_days[-1]}"
            raise CandidateError(f"{feature.name} has no value on any session of {span}")
        seconds = computed.seconds
        with timed(seconds, "market"):
            bars, universe, stored = market.result()
        with timed(seconds, "ic"):
            universe["value"] = candidate.decision_values(computed, universe)
            values = universe.pivot(index="date", columns="entity_key", values="value").reindex(days)
            correlated = pool.submit(_correlations, stored, values.copy())  # its ranks leave the interpreter free
            ic, rank_ic, first = _ic_decay(bars, values, days, horizons)
            quantiles = quantile_returns(values, first)
            persistence = _persistence(values)
            coverage = universe["value"].notna().groupby(universe["date"]).mean().reindex(days)
        with timed(seconds, "correlations"):
            correlations = correlated.result()
    return Report(
        feature, days[0], days[-1], values, universe, ic, rank_ic, quantiles, persistence, coverage, correlations,
        computed.guards, computed.rows, seconds,
    )  # fmt: skip


def _sessions(start, end) -> list[dt.date]:
    a, b = sessions.as_date(start), sessions.as_date(end)
    if a > b:
        raise CandidateError(f"the window {a}..{b} is reversed: write it as {b}..{a}")
    days = sessions.sessions_between(a, b)
    if not days:
        raise CandidateError(f"the window {a}..{b} holds no NYSE session")
    return days


def _bars(root: Location, days: list[dt.date], horizon: int) -> pd.DataFrame:
    """Every stored version of the bars from the session before the window to ``horizon`` sessions after it: the
    universe's and the labels' input."""
    needed = sessions.sessions_between(sessions.previous_session(days[0]), sessions.session_offset(days[-1], horizon))
    bars = lake.read_frame([f for d in needed for f in lake.partition_files(lake.partition_dir(root, "raw_prices", d))])
    if bars.empty:
        raise CandidateError(f"no raw_prices data under {root} for {needed[0]}..{needed[-1]}: no universe, no label")
    bars["session"] = sessions.exchange_dates(bars["event_time"])
    return bars


def _universe(bars: pd.DataFrame, days: list[dt.date]) -> pd.DataFrame:
    """(date, entity_key) of every name with a bar of the previous session known at the session's decision time."""
    first = bars.groupby(["ticker", "session"], sort=False)["ingest_time"].min().reset_index()
    previous = {sessions.previous_session(d): d for d in days}
    first["date"] = first["session"].map(previous)
    first = first.dropna(subset=["date"])
    known = first["ingest_time"].array <= sessions.decision_times(first["date"]).array
    out = first[known].rename(columns={"ticker": "entity_key"})[["date", "entity_key"]]
    return out.sort_values(["date", "entity_key"], kind="mergesort").reset_index(drop=True)


def matured_labels(bars: pd.DataFrame, days: list[dt.date], horizon: int, settled: dict | None = None) -> pd.DataFrame:
    """Labels of ``horizon`` (days x names), each day's from the price versions known when it matured (the close
    of t+h), by the snapshots' label functions (``known_bars``, ``forward_returns``).

    One call for every day whose bars (t's and t+h's) each had a single version, known by then: its version is the
    same at any later time, so the answer as known at the last maturity is that day's. Days touching a restated or
    late bar are computed alone, as known at their own maturity. ``settled``: ``_settled(bars)``, when known.
    """
    ends = {d: sessions.session_offset(d, horizon) for d in days}
    known_at = {d: known_by_close(e) for d, e in ends.items()}
    labels = snapshots.forward_returns(snapshots.known_bars(bars, max(known_at.values())), days, horizon)
    settled = _settled(bars) if settled is None else settled

    def alone(d: dt.date) -> bool:
        return any(s in settled and not (settled[s] <= known_at[d]) for s in (d, ends[d]))

    redo = [d for d in days if alone(d)]
    if redo:
        again = [
            snapshots.forward_returns(
                snapshots.known_bars(bars[bars["session"].isin((d, ends[d]))], known_at[d]), [d], horizon
            )
            for d in redo
        ]
        labels = pd.concat([labels[~labels["date"].isin(redo)], *again], ignore_index=True)
    wide = labels.pivot(index="date", columns="entity_key", values=snapshots.LABEL) if len(labels) else None
    return pd.DataFrame(index=days) if wide is None else wide.reindex(days)


def _settled(bars: pd.DataFrame) -> dict:
    """Per session, the last ingest time of its bars when each had a single version (NaT: some bar was restated)."""
    per_bar = bars.groupby(["session", "ticker"])["ingest_time"].agg(["size", "max"])
    per_session = per_bar.groupby(level="session").agg(n=("size", "max"), last=("max", "max"))
    return per_session["last"].where(per_session["n"] == 1).to_dict()


def _ic_decay(bars, values: pd.DataFrame, days, horizons) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Daily IC and rank IC (days x horizons) of the candidate's decision-time values, and the horizon-1 labels."""
    ic, rank_ic, first, settled = {}, {}, None, _settled(bars)
    for h in horizons:
        labels = matured_labels(bars, days, h, settled).reindex(columns=values.columns)
        ic[h] = metrics.wide_ic(values, labels)
        rank_ic[h] = metrics.wide_ic(values, labels, method="spearman")
        first = labels if h == 1 else first
    if first is None:
        first = matured_labels(bars, days, 1, settled).reindex(columns=values.columns)
    return pd.DataFrame(ic), pd.DataFrame(rank_ic), first


def quantile_returns(values: pd.DataFrame, labels: pd.DataFrame, n: int = QUANTILES) -> pd.Series:
    """The backtest's quantile returns (``backtest.quantile_returns``: the mean label of each daily quantile of
    the signal, 1 lowest) of the names having both a value and a label, and ``spread``, the top minus the bottom."""
    frame = pd.DataFrame({"prediction": values.stack(), "label": labels.reindex_like(values).stack()}).dropna()
    frame = frame.rename_axis(["date", "entity_key"]).reset_index()
    means = (
        backtest.quantile_returns(frame, n).reindex(range(1, n + 1))
        if len(frame)
        else pd.Series(np.nan, range(1, n + 1))
    )
    means = means.set_axis(range(1, n + 1)).astype(float)
    return pd.concat([means, pd.Series({"spread": means[n] - means[1]})])


def _persistence(values: pd.DataFrame) -> dict[str, float]:
    """Rank autocorrelation at each lag in AUTOCORR_LAGS and the session-to-session rank turnover."""
    out = {
        f"rank_autocorr_{k}": float(metrics.wide_ic(values, values.shift(k), "spearman").mean()) for k in AUTOCORR_LAGS
    }
    ranks = values.rank(axis=1, pct=True)
    out["rank_turnover"] = float((ranks - ranks.shift(1)).abs().mean(axis=1).mean())
    return out


def _market(root: Location, store: FeatureStore, days: list[dt.date], horizon: int):
    """What the candidate is judged against, none of it from the candidate: the bars (``_bars``), the universe
    (``_universe``) and the stored features as known at each decision time (``_stored``). Read on a thread of its
    own while the candidate is computed: Parquet and DuckDB do most of it without holding the interpreter. The
    tear sheet's matplotlib is imported there too, then, rather than after every figure is known."""
    bars = _bars(root, days, horizon)
    universe = _universe(bars, days)
    stored = _stored(store, universe, days)
    tearsheet.pyplot()
    return bars, universe, stored


def _stored(store: FeatureStore, universe: pd.DataFrame, days) -> tuple[list[str], pd.DataFrame] | None:
    """The stored library features, and each as known at each decision time of the universe (days x (feature,
    name)) under the staleness rule; None when the store holds none."""
    stored = [f for f in store.definitions if store.resolve(f)[1] in store.versions(f)]
    if not stored or universe.empty:
        return None
    as_of = sessions.decision_times(universe["date"])
    queries = pd.DataFrame({"entity_key": universe["entity_key"], "as_of": as_of})
    pit = store.get_point_in_time(queries, stored, since=staleness.earliest_partition(days[0]), until=days[-1])
    pit, usable = staleness.apply(pit, list(universe["date"]), store.families(stored))
    frame = pit[stored].where(pd.Series(usable, index=pit.index), axis=0).assign(date=universe["date"].to_numpy())
    return stored, frame.assign(entity_key=universe["entity_key"].to_numpy()).pivot(index="date", columns="entity_key")


def _correlations(stored: tuple[list[str], pd.DataFrame] | None, values: pd.DataFrame) -> pd.DataFrame:
    """Mean daily rank correlation with each stored library feature (``_stored``)."""
    if stored is None:
        return pd.DataFrame(columns=["rank_corr", "days"]).rename_axis("feature")
    out, (names, wide) = {}, stored
    for f in names:
        daily = metrics.wide_ic(values, wide[f].reindex(index=values.index, columns=values.columns), "spearman")
        out[f] = {"rank_corr": float(daily.mean()), "days": int(daily.notna().sum())}
    frame = pd.DataFrame(out).T.rename_axis("feature")
    frame["days"] = frame["days"].astype(int)
    return frame.reindex(frame["rank_corr"].abs().sort_values(ascending=False).index)


def write(report: Report, directory: Location) -> tuple[Location, Location]:
    """The tear sheet (PNG) and the figures (JSON) in ``directory``, as ``<name>@<version>_<start>_<end>.png|json``.

    Derived files, not lake data: the next evaluation of the same candidate version and window rewrites them
    (the lake's part files are never rewritten; nothing reads these).
    """
    directory = fs.location(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{report.feature.name}@{report.feature.version}_{report.start}_{report.end}"
    png, figures = directory / f"{stem}.png", directory / f"{stem}.json"
    with timed(report.seconds, "tear_sheet"):
        png.write_bytes(tearsheet.render(report))
    figures.write_text(report.to_json())
    return png, figures


def text(report: Report) -> str:
    """The figures as the CLI prints them: IC decay, quantiles, persistence, coverage, correlations, guards, time."""
    f, summary = report.feature, report.ic_summary()
    quantiles = " ".join(f"{k}: {v * 1e4:+.1f}" for k, v in report.quantiles.items())
    lines = [
        f"{f.name}@{f.version} ({f.family}, lookback {f.lookback}, inputs {', '.join(f.inputs)}): "
        f"decisions {report.start}..{report.end}, {len(report.values)} sessions",
        "",
        "IC decay (daily IC against the h-session open-to-open label; t: Newey-West with h-1 lags):",
        summary.astype({"days": int}).round(4).to_string(),
        "",
        f"Quantile mean 1-day returns (bps, 1 lowest): {quantiles}",
        "Persistence: " + ", ".join(f"{k} {v:.3f}" for k, v in report.persistence.items()),
        f"Coverage: {report.overall_coverage:.1%} of the universe overall, lowest session {report.coverage.min():.1%}",
        "",
        f"Correlation with stored features (mean daily rank correlation, {len(report.correlations)} features):",
        report.correlations.head(12).round(3).to_string() if len(report.correlations) else "  none stored",
        "",
        "Lookahead guards:",
    ]
    for name, guard in report.guards.items():
        lines.append(f"  {name}: {'passed' if guard.passed else 'FAILED'} ({guard.checked} rows checked)")
        lines += [f"    {m}" for m in guard.failures[:5]]
    stages = ", ".join(f"{k} {wall:.1f}" for k, (wall, _) in report.seconds.items())
    lines.append(f"\nTook {sum(w for w, _ in report.seconds.values()):.1f} s ({stages})")
    return "\n".join(lines)

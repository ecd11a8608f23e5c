"""A live model's daily drift rows, computed from the lake as it was known at each day's close.

For session D (run after D's close) and a model with horizon h:
- matured predictions are those of t = D - h sessions (their label, open t -> open t+h = D, is known);
- IC, rank IC, hit rate and the signal's net return come from predictions and labels of the
  look-back window ending at t, with price versions known at D's close + the price lag;
- feature PSI compares the features the model saw at D's decision time with its training snapshot,
  prediction PSI compares D's predictions with the model's scores on that snapshot.

A range of days is loaded once (each partition read once) and each day is computed from its own
window, so the cost of a day does not grow with the history and a backfill costs per day what a
daily run does.

A day is skipped when its stored row (``quant.drift_metrics``) carries the fingerprint of the day's inputs as
they are now (``inputs.py``: the model's profile, the alert matrix, costs and rule, the code, and the names of the
content-addressed parts its windows read). Its row is then read back, not computed: a rerun over unchanged days
lists the partitions and reads only the predictions' model column (which models to monitor). A new or restated
part in a day's windows, another alert policy or other costs change the fingerprint, and the day is computed
again. A day a model has no row for (it scored neither the day nor the session maturing on it) is looked at again
on every run, at the cost of reading the predictions: prices and PSI are computed only for a day that needs them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features import staleness
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.monitoring import drift, history, inputs, profiles
from quant_assets.core.monitoring.alerts import AlertConfig, evaluate, psi_band
from quant_assets.core.monitoring.profiles import ModelProfile
from quant_assets.core.registry import lineage
from quant_assets.core.research import backtest, scoring, snapshots
from quant_assets.core.storage import lake
from quant_assets.core.storage.fs import Location


class DriftInputError(RuntimeError):
    """The day cannot be monitored (no predictions, missing prices): nothing is written for it."""


class DriftRange:
    """Loads the partitions a range of drift days reads, once, and computes each day's row (prices and features
    are read when a row first needs them)."""

    def __init__(
        self,
        root: Location,
        store: FeatureStore,
        profile: ModelProfile,
        days: list[dt.date],
        alerts: AlertConfig | None = None,
        costs: backtest.Costs | None = None,
        rule: backtest.PortfolioRule = drift.LIVE_RULE,
    ):
        if not days:
            raise ValueError("no days to monitor")
        self.root, self.profile = root, profile
        self.alerts, self.costs, self.rule = alerts or AlertConfig(), costs or backtest.Costs(), rule
        self.days = sorted(sessions.require_session(d) for d in days)
        self.lookback = self.alerts.lookback
        first = sessions.session_offset(self.days[0], -(profile.horizon + self.lookback))
        self.sessions = sessions.sessions_between(first, self.days[-1])
        self._pos = {d: i for i, d in enumerate(self.sessions)}
        self.store = store
        self.predictions = self._read(scoring.DATASET)
        self._latest: dict[dt.date, pd.DataFrame] = {}

    def _read(self, dataset: str) -> dict[dt.date, pd.DataFrame]:
        return lake.read_partitions(self.root, dataset, self.sessions)

    @functools.cached_property
    def prices(self) -> dict[dt.date, pd.DataFrame]:
        """Read when a row first needs them, as the PSI is computed: a range of days the model scored none of (one
        monitored over a run's range, which it stopped or had not yet started scoring) reads only its predictions."""
        return self._read("raw_prices")

    @functools.cached_property
    def _psi(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self._psi_series(self.store)

    @property
    def psi(self) -> pd.DataFrame:
        """Per session of the range: mean, max and prediction PSI, and the PSI sample's size and no-drift level."""
        return self._psi[0]

    @property
    def feature_psi(self) -> pd.DataFrame:
        """Per session of the range: each feature's PSI."""
        return self._psi[1]

    def _model_predictions(self, day: dt.date) -> pd.DataFrame:
        """The model's latest prediction per name on ``day``, worked out once per session: every drift day's
        window reads the sessions before it again (twenty-odd reads of each session over a range)."""
        if day not in self._latest:
            frame = self.predictions[day]
            mine = frame[frame["model"] == self.profile.node] if len(frame) else frame
            self._latest[day] = lake.latest_versions(mine, ["entity_key"]) if len(frame) else frame
        return self._latest[day]

    def _psi_series(self, store: FeatureStore) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Feature PSI (per feature) and prediction PSI for every session of the range.

        The actual distribution of session d pools the cross-sections of the PSI_WINDOW sessions ending at
        d (features as known at each decision time, predictions stamped then): fixed once d's decision time
        has passed, so computed once per session, not once per drift day.
        """
        span = self.sessions
        queries = pd.DataFrame(
            [(e, sessions.decision_time(d), d) for d in span for e in self.profile.universe],
            columns=["entity_key", "as_of", "date"],
        )
        pit = store.get_point_in_time(
            queries[["entity_key", "as_of"]],
            self.profile.features,
            since=staleness.earliest_partition(span[0]),
            until=span[-1],
        )
        # the features as scoring saw them: the one staleness rule, whatever the range's first day
        pit, usable = staleness.apply(pit, queries["date"].tolist(), store.families(self.profile.features))
        pit["date"] = queries["date"].to_numpy()
        by_day = {d: g for d, g in pit[usable].groupby("date")}
        scores = {d: p["prediction"] for d in span if len(p := self._model_predictions(d))}
        rows, pred_psi, noise, sizes = {}, {}, {}, {}
        refs, q = self.profile.feature_refs, self.alerts.psi_noise_quantile
        for i, day in enumerate(span):
            pooled = span[max(0, i - drift.PSI_WINDOW + 1) : i + 1]
            feats = [by_day[d] for d in pooled if d in by_day]
            if feats:
                both = pd.concat(feats)
                rows[day], noise[day] = drift.feature_psi(refs, both, q)
                sizes[day] = len(both)
            preds = [scores[d] for d in pooled if d in scores]
            if day in scores:  # a day without its own predictions has no prediction PSI
                pred_psi[day] = self.profile.prediction_ref.psi(pd.concat(preds))
        out = pd.DataFrame(index=pd.Index(span, name="date"))
        psi = pd.DataFrame.from_dict(rows, orient="index").reindex(index=out.index, columns=self.profile.features)
        out["psi_mean"] = psi.mean(axis=1, skipna=True)
        out["psi_max"] = psi.max(axis=1, skipna=True)
        out["psi_max_feature"] = psi.fillna(-1.0).idxmax(axis=1).where(psi.notna().any(axis=1))
        out["prediction_psi"] = pd.Series(pred_psi, dtype=float).reindex(out.index)
        out["psi_noise"] = pd.Series(noise, dtype=float).reindex(out.index)
        out["psi_n"] = pd.Series(sizes, dtype=float).reindex(out.index)
        return out, psi

    def _labels(self, days: list[dt.date], as_of: pd.Timestamp) -> pd.DataFrame:
        """Adjusted open-to-open labels of ``days`` from price versions known at ``as_of``."""
        h = self.profile.horizon
        frames = [self.prices[d] for d in days + [sessions.session_offset(days[-1], k) for k in range(1, h + 1)]]
        px = pd.concat([f for f in frames if not f.empty], ignore_index=True)
        return snapshots.forward_returns(snapshots.known_bars(px, as_of), days, h)

    def row(self, day: dt.date) -> dict:
        """The drift row of ``day``; DriftInputError when the model scored neither ``day`` nor the session whose
        label matured on it (a retired model no longer scored gets no rows of streaks its old sessions fill)."""
        day = sessions.require_session(day)
        i = self._pos[day]
        matured = self.sessions[i - self.profile.horizon]
        if self._model_predictions(matured).empty and self._model_predictions(day).empty:
            raise DriftInputError(f"{self.profile.node} scored neither {day} nor {matured}: nothing to monitor")
        window = self.sessions[max(0, i - self.profile.horizon - self.lookback) : i - self.profile.horizon + 1]
        preds = [self._model_predictions(d).assign(date=d) for d in window]
        preds = pd.concat([p for p in preds if len(p)], ignore_index=True) if any(len(p) for p in preds) else None
        missing = [d for d in window[-1:] + [day] if self.prices[d].empty]
        if missing:
            raise DriftInputError(f"raw_prices missing for {missing}: labels of {matured} cannot be known")
        if preds is not None:
            frame = preds[["date", "entity_key", "prediction"]].merge(
                self._labels(window, known_by_close(day)), on=["date", "entity_key"], how="inner"
            )
            daily = drift.daily_signal(frame, self.costs, self.rule).reindex(window) if len(frame) else None
        else:
            daily = None
        if daily is None:
            daily = pd.DataFrame(index=pd.Index(window), columns=["n", "ic", "rank_ic", "hit_rate", "net_return"])
            daily = daily.astype(float)
        history = pd.DataFrame(index=daily.index)
        history["ic_mean_5"] = drift.rolling_observed(daily["ic"], 5, drift.trailing_mean)
        history["sharpe_20"] = drift.rolling_observed(daily["net_return"], 20, drift.trailing_sharpe)
        # The same sessions whether the day is computed alone or inside a longer range.
        psi_hist = self.psi[["psi_mean", "psi_noise"]].reindex(self.sessions[self._pos[window[0]] : i + 1])
        # The day's row: signal metrics end at the matured session, distribution metrics at the day itself.
        history = history.reindex(history.index.union(psi_hist.index)).sort_index()
        history[psi_hist.columns] = psi_hist
        alerts = evaluate(history, self.alerts)
        last = daily.loc[matured] if matured in daily.index else pd.Series(dtype=float)
        psi_today = self.psi.loc[day] if day in self.psi.index else pd.Series(dtype=object)
        per_feature = self.feature_psi.loc[day].dropna() if day in self.feature_psi.index else pd.Series(dtype=float)
        return {
            "date": day,
            "model": self.profile.node,
            "prediction_date": matured,
            "n_names": int(_num(last.get("n")) or 0),
            "ic": _num(last.get("ic")),
            "rank_ic": _num(last.get("rank_ic")),
            "ic_mean_5": _num(drift.trailing_mean(daily["ic"], 5)),
            "hit_rate": _num(last.get("hit_rate")),
            "net_return": _num(last.get("net_return")),
            "sharpe_5": _num(drift.trailing_sharpe(daily["net_return"], 5)),
            "sharpe_20": _num(drift.trailing_sharpe(daily["net_return"], 20)),
            "psi_mean": _num(psi_today.get("psi_mean")),
            "psi_max": _num(psi_today.get("psi_max")),
            "psi_max_feature": psi_today.get("psi_max_feature") if len(per_feature) else None,
            "prediction_psi": _num(psi_today.get("prediction_psi")),
            "psi_n": None if (n := _num(psi_today.get("psi_n"))) is None else int(n),
            "psi_noise": _num(psi_today.get("psi_noise")),
            "psi": {k: round(float(v), 6) for k, v in sorted(per_feature.items())},  # in name order: history.rows
            "levels": dict(sorted(alerts.levels.items())),
            "level": alerts.worst,
            "actions": alerts.actions,
            "reasons": dict(sorted(alerts.reasons.items())),
        }


def _num(value) -> float | None:
    """JSON- and SQL-friendly: NaN and missing become None."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def monitored_models(root: Location, days: list[dt.date], lookback: int, name: str) -> list[str]:
    """Models of ``name`` that scored any session the days' windows read: a model replaced by a new champion
    is still monitored while its matured predictions are in the look-back window."""
    first = sessions.session_offset(days[0], -(lookback + 2))  # + the horizon, with room to spare
    return scoring.models_scored(root, first, days[-1], name)


class NoPredictions(LookupError):
    """No model of the name scored the sessions the days read: there is nothing to monitor."""


@dataclass
class DriftRun:
    """The drift rows of a range of days for every monitored model, and what could not be computed."""

    nodes: list[str]
    rows: list[dict] = field(default_factory=list)  # every row: computed, or read back (inputs unchanged)
    fresh: list[dict] = field(default_factory=list)  # the rows computed by this run, to store
    errors: dict[dt.date, list[str]] = field(default_factory=dict)
    without_psi: dict[str, str] = field(default_factory=dict)  # "<model> <feature>" -> why it has no PSI
    edges: list[tuple[str, str]] = field(default_factory=list)  # lineage of the rows computed (``_edges``)

    @property
    def failed(self) -> dict[dt.date, list[str]]:
        """Days with no row for any model, with the reasons (a day one model covers is monitored)."""
        covered = {r["date"] for r in self.rows}
        return {d: e for d, e in self.errors.items() if d not in covered}

    @property
    def unchanged(self) -> int:
        """Rows read back rather than computed: their inputs have not changed since they were stored."""
        return len(self.rows) - len(self.fresh)

    def table(self, alerts: AlertConfig) -> pd.DataFrame:
        """The rows as a table, each with the PSI band its mean PSI and no-drift level fall in."""
        table = pd.DataFrame(self.rows)
        table["psi_band"] = [
            psi_band(_nan(v), _nan(z), cfg=alerts) for v, z in zip(table["psi_mean"], table["psi_noise"], strict=True)
        ]
        return table


def drift_rows(
    conn,
    root: Location,
    store: FeatureStore,
    name: str,
    days: list[dt.date],
    alerts: AlertConfig,
    costs: backtest.Costs,
    rule: backtest.PortfolioRule,
) -> DriftRun:
    """Every day's row for every monitored model of ``name``: read back from ``conn`` where the stored row's
    fingerprint is the day's (its inputs have not changed), computed for the other days, each carrying its
    fingerprint (``inputs``) to be stored. A day a model cannot be monitored on is recorded in ``errors`` instead
    of stopping the others. NoPredictions when no model scored the window."""
    nodes = monitored_models(root, days, alerts.lookback, name)
    if not nodes:
        raise NoPredictions(f"no predictions of {name} around {days[0]}..{days[-1]}: materialise predictions")
    run = DriftRun(nodes)
    for node in nodes:
        profile = profiles.stored(conn, root, node)
        run.without_psi.update({f"{node} {f}": r.reason for f, r in profile.feature_refs.items() if r.reason})
        parts = inputs.window_parts(root, store, profile, days, alerts)
        prints = inputs.fingerprints(root, store, profile, days, alerts, costs, rule, parts)
        stored = history.rows(conn, node, min(days), max(days))
        todo = [d for d in days if stored.get(d, {}).get("inputs") != prints[d]]
        computed = _compute(
            lambda some, profile=profile: DriftRange(root, store, profile, some, alerts, costs, rule),
            _runs(todo, profile.horizon + alerts.lookback),
            prints,
            run.errors,
        )
        run.fresh += list(computed.values())
        run.edges += _edges(conn, node, sorted(computed), parts)
        rows = {**{d: stored[d] for d in days if d not in todo}, **computed}
        run.rows += [rows[d] for d in days if d in rows]
    return run


def _edges(conn, node: str, days: list[dt.date], parts: dict[dt.date, list[str]]) -> list[tuple[str, str]]:
    """Lineage of the rows computed for ``days``: the model's prediction days (those with a lineage node) and the
    price partitions each row's windows read. The feature files its PSI reads are not edges (about a hundred per
    row; the prediction days name those of their own reads)."""
    scored = lineage.children(conn, node, "prediction") if days else set()
    return [e for d in days for e in lineage.window_edges(lineage.drift_node(node, d), node, parts[d], scored)]


def _compute(
    window: Callable[[list[dt.date]], DriftRange],
    runs: list[list[dt.date]],
    prints: dict[dt.date, str],
    errors: dict[dt.date, list[str]],
) -> dict[dt.date, dict]:
    """The rows of the days of ``runs``, one range (``window``) per run, each with its day's fingerprint; a day
    that cannot be monitored is recorded in ``errors``."""
    out = {}
    for days in runs:
        computing = window(days)
        for day in days:
            try:
                out[day] = {**computing.row(day), "inputs": prints[day]}
            except DriftInputError as exc:
                errors.setdefault(day, []).append(str(exc))
    return out


def _runs(days: list[dt.date], gap: int) -> list[list[dt.date]]:
    """``days`` in runs of one range each: a new run where the next day is more than ``gap`` sessions on. Each
    session of a range costs its PSI, and a range's first day its window of ``gap`` sessions: a range of its own
    costs less than one spanning the sessions between."""
    out: list[list[dt.date]] = []
    for day in sorted(days):
        if out and sessions.session_index(day) - sessions.session_index(out[-1][-1]) <= gap:
            out[-1].append(day)
        else:
            out.append([day])
    return out


def _nan(value) -> float:
    return float("nan") if value is None else float(value)

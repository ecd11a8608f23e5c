"""LightGBM ensembles trained walk-forward on a snapshot, reproducible bit for bit.

Splits are expanding-window walk-forward folds over sessions with at least
``horizon`` sessions purged between the last training date and the first test
date, so no training label (open t -> open t+h) overlaps the test period.
The target is the label demeaned per date (the model ranks names; the market
move of the day is not predictable from these features) and clipped at 5
cross-sectional standard deviations. Each ensemble member is a LightGBM model
with its own seed; predictions are their mean. One thread, ``deterministic``
and row-wise histograms make a retrain give the same bytes.

A training is ``plan`` (the folds and the production model), ``train_fold`` for each (alone: any process, any
machine) and ``assemble`` (in fold order); ``train_walk_forward`` runs them one after another, the
trained_model asset one step each, and both give the same bytes.

lightgbm (which pulls in scikit-learn and scipy) is imported where a model is fitted or loaded, not at
module level: every process that loads the Dagster definitions imports this module, and most never train.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from quant_assets.core.research.metrics import signal_metrics

if TYPE_CHECKING:
    import lightgbm as lgb

BASE_PARAMS = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}


@dataclass(frozen=True)
class TrainConfig:
    n_folds: int = 4
    horizon: int = 1
    min_train_days: int = 120
    num_boost_round: int = 150
    seeds: tuple[int, ...] = (1, 2, 3)
    params: dict = field(default_factory=dict)

    def lgb_params(self, seed: int) -> dict:
        return {**BASE_PARAMS, **self.params, "seed": seed}


@dataclass(frozen=True)
class Fold:
    """Training and test dates of one step; no test dates: the production model, trained on every date."""

    index: int
    train: list
    test: list


def walk_forward(dates, n_folds: int, horizon: int, min_train_days: int) -> list[Fold]:
    """Expanding train window, contiguous test blocks, ``horizon`` sessions purged in between."""
    dates = sorted(set(dates))
    if len(dates) < min_train_days + horizon + n_folds:
        raise ValueError(f"{len(dates)} dates are too few for {n_folds} folds after {min_train_days} training days")
    blocks = np.array_split(np.arange(min_train_days + horizon, len(dates)), n_folds)
    folds = []
    for k, block in enumerate(blocks):
        first_test = int(block[0])
        train_end = first_test - horizon  # dates[train_end:first_test] are purged
        folds.append(Fold(k, dates[:train_end], [dates[i] for i in block]))
    return folds


def _target(frame: pd.DataFrame, label: str) -> np.ndarray:
    y = frame[label] - frame.groupby("date")[label].transform("mean")
    sd = frame.groupby("date")[label].transform("std").replace(0, np.nan)
    return y.clip(-5 * sd, 5 * sd).fillna(0.0).to_numpy()


class Ensemble:
    """Mean of LightGBM members over a fixed, named feature list."""

    def __init__(self, features: list[str], members: list[lgb.Booster], params: dict):
        self.features = list(features)
        self.members = members
        self.params = params

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: list[str], config: TrainConfig, label: str = "label") -> Ensemble:
        import lightgbm as lgb

        X = frame[features].to_numpy(dtype=np.float64)
        y = _target(frame, label)
        members = []
        for seed in config.seeds:
            data = lgb.Dataset(
                X, y, feature_name=features, free_raw_data=False, params={"verbosity": -1, "num_threads": 1}
            )
            members.append(lgb.train(config.lgb_params(seed), data, num_boost_round=config.num_boost_round))
        return cls(
            features, members, {"seeds": list(config.seeds), "rounds": config.num_boost_round, **config.lgb_params(0)}
        )

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise KeyError(f"model needs features that are not in the frame: {missing[:5]}")
        X = frame[self.features].to_numpy(dtype=np.float64)
        return np.mean([m.predict(X, num_threads=1) for m in self.members], axis=0)

    def importance(self) -> pd.Series:
        gains = [pd.Series(m.feature_importance("gain"), index=self.features) for m in self.members]
        return (sum(gains) / len(gains)).sort_values(ascending=False)

    def to_bytes(self) -> bytes:
        body = {
            "features": self.features,
            "params": self.params,
            "members": [m.model_to_string(num_iteration=-1) for m in self.members],
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Ensemble:
        import lightgbm as lgb

        body = json.loads(blob)
        members = [lgb.Booster(model_str=s) for s in body["members"]]
        return cls(body["features"], members, body["params"])


@dataclass
class WalkForwardResult:
    folds: list[Fold]
    fold_metrics: pd.DataFrame  # one row per fold plus 'overall'
    predictions: pd.DataFrame  # out-of-sample: date, entity_key, label, fold, prediction
    artifact: bytes  # the production ensemble (trained on every date) as the registry stores it

    @cached_property
    def final(self) -> Ensemble:
        """The production ensemble, loaded from the artifact (its importance and parameters are shown)."""
        return Ensemble.from_bytes(self.artifact)


@dataclass(frozen=True)
class FoldResult:
    """What one training step returns: plain bytes and a small frame, so a step on another machine can ship it."""

    fold: Fold
    predictions: pd.DataFrame | None  # out-of-sample on the fold's test dates; None for the final model
    artifact: bytes | None  # the final model's ensemble; None for a test fold (only its predictions are kept)


def plan(dates, config: TrainConfig) -> list[Fold]:
    """The steps of a walk-forward training: its test folds, then the production model, a fold of every date with
    no test block. Each is trained alone (``train_fold``), so they can run at once."""
    folds = walk_forward(dates, config.n_folds, config.horizon, config.min_train_days)
    return [*folds, Fold(len(folds), sorted(set(dates)), [])]


def train_fold(frame: pd.DataFrame, features: list[str], config: TrainConfig, fold: Fold) -> FoldResult:
    """Fit on the fold's training dates; a test fold returns its out-of-sample predictions, the final one its
    ensemble's bytes. The same bytes wherever it runs (one thread, fixed seeds)."""
    model = Ensemble.fit(frame[frame["date"].isin(set(fold.train))], features, config)
    if not fold.test:
        return FoldResult(fold, None, model.to_bytes())
    test = frame[frame["date"].isin(set(fold.test))]
    return FoldResult(
        fold, test[["date", "entity_key", "label"]].assign(fold=fold.index, prediction=model.predict(test)), None
    )


def _metrics_row(name: str, folds: list[Fold], predictions: pd.DataFrame) -> dict:
    return {
        "fold": name,
        "train_start": str(folds[0].train[0]),
        "train_end": str(folds[-1].train[-1]),
        "test_start": str(folds[0].test[0]),
        "test_end": str(folds[-1].test[-1]),
        **signal_metrics(predictions),
    }


def assemble(results: list[FoldResult]) -> WalkForwardResult:
    """The walk-forward result from its steps' results, taken in fold order whatever order they arrive in: the
    test folds' predictions concatenated, their metrics and the overall ones, the final model's artifact."""
    ordered = sorted(results, key=lambda r: r.fold.index)
    tests = [r for r in ordered if r.predictions is not None]
    (final,) = [r.artifact for r in ordered if r.predictions is None]
    return _result([r.fold for r in tests], [r.predictions for r in tests], final)


def rebuild(dates, config: TrainConfig, predictions: pd.DataFrame, artifact: bytes) -> WalkForwardResult:
    """The result a training gave, from what the registry stored of it (its out-of-sample predictions, in fold
    order, and its artifact) and its plan: what a run that need not train again reports, the same figures."""
    folds = [f for f in plan(dates, config) if f.test]
    by_fold = [predictions[predictions["fold"] == f.index].reset_index(drop=True) for f in folds]
    return _result(folds, by_fold, artifact)


def _result(folds: list[Fold], predictions: list[pd.DataFrame], final: bytes) -> WalkForwardResult:
    joined = pd.concat(predictions, ignore_index=True)
    rows = [_metrics_row(str(f.index), [f], p) for f, p in zip(folds, predictions, strict=True)]
    rows.append(_metrics_row("overall", folds, joined))
    return WalkForwardResult(folds, pd.DataFrame(rows), joined, final)


def train_walk_forward(frame: pd.DataFrame, features: list[str], config: TrainConfig) -> WalkForwardResult:
    """Out-of-sample predictions fold by fold, their metrics, and the model fit on all dates: the steps of
    ``plan`` trained one after another in this process (the trained_model asset runs each as its own step)."""
    steps = plan(frame["date"].unique(), config)
    return assemble([train_fold(frame, features, config, fold) for fold in steps])


def recover_config(params: dict, dates, oos: pd.DataFrame, horizon: int) -> TrainConfig:
    """The configuration a registered model was trained with, from what the registry keeps of it: the ensemble's
    parameters (``Ensemble.fit`` records the seeds, the rounds and every LightGBM parameter), its out-of-sample
    predictions (the test folds: how many, and where the first begins, ``min_train_days + horizon`` dates into the
    snapshot's ``dates``) and the label horizon. ValueError when the plan of the recovered configuration does not
    give the recorded folds' test dates."""
    own = {k: v for k, v in params.items() if k not in ("seeds", "rounds", "seed")}
    extra = {k: v for k, v in own.items() if k not in BASE_PARAMS or BASE_PARAMS[k] != v}
    ordered = sorted(set(dates))
    config = TrainConfig(
        n_folds=int(oos["fold"].nunique()),
        horizon=horizon,
        min_train_days=ordered.index(min(oos["date"])) - horizon,
        num_boost_round=int(params["rounds"]),
        seeds=tuple(int(s) for s in params["seeds"]),
        params=extra,
    )
    recorded = [sorted(set(oos.loc[oos["fold"] == k, "date"])) for k in sorted(oos["fold"].unique())]
    if [f.test for f in plan(ordered, config) if f.test] != recorded:
        raise ValueError("the recovered configuration's folds are not the recorded out-of-sample folds")
    return config


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()

"""A model's reference profile for drift: its features, universe, horizon and the PSI bins of its training data
and of its own scores on that data. Computed once per model and stored with it (``quant.model_profiles``).

The profile depends only on the model's immutable artifact and training snapshot, so it never changes. Computing
it means reading the whole snapshot and predicting every row of it, which cost the daily drift step more than
the day's own rows; the first drift run of a model stores it, every later one reads a few kilobytes.

Stored as JSON text, not ``jsonb``: Python writes each float as the shortest string that reads back as the same
double, and text keeps that string, so a profile read back is the one computed, bit for bit (a drift row is the
same whether its profile was just computed or read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from quant_assets.core.monitoring import drift
from quant_assets.core.registry import artifacts, champion, models
from quant_assets.core.research import snapshots
from quant_assets.core.research.training import Ensemble

TABLE = """
CREATE TABLE IF NOT EXISTS quant.model_profiles (
    model_id     bigint PRIMARY KEY REFERENCES quant.models,
    profile      text NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class ModelProfile:
    """What a model is compared against: its features, universe and reference distributions."""

    node: str
    features: list[str]
    universe: list[str]
    horizon: int
    feature_refs: dict[str, drift.PsiReference]
    prediction_ref: drift.PsiReference

    @classmethod
    def of(cls, node: str, snapshot: snapshots.Snapshot, model: Ensemble) -> ModelProfile:
        data = snapshot.data
        return cls(
            node=node,
            features=list(model.features),
            universe=list(snapshot.manifest["universe"]),
            horizon=int(snapshot.manifest["label"]["horizon"]),
            feature_refs={f: drift.PsiReference.of(data[f]) for f in model.features},
            prediction_ref=drift.PsiReference.of(model.predict(data)),
        )

    def to_json(self) -> str:
        def ref(r: drift.PsiReference) -> dict:
            return {"cuts": r.cuts.tolist(), "shares": r.shares.tolist(), "size": r.size, "reason": r.reason}

        body = {
            "node": self.node,
            "features": self.features,
            "universe": self.universe,
            "horizon": self.horizon,
            "feature_refs": {f: ref(r) for f, r in self.feature_refs.items()},
            "prediction_ref": ref(self.prediction_ref),
        }
        return json.dumps(body, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ModelProfile:
        def ref(r: dict) -> drift.PsiReference:
            cuts, shares = (np.asarray(r[k], dtype=np.float64) for k in ("cuts", "shares"))
            return drift.PsiReference(cuts, shares, int(r["size"]), r["reason"])

        body = json.loads(text)
        return cls(
            node=body["node"],
            features=list(body["features"]),
            universe=list(body["universe"]),
            horizon=int(body["horizon"]),
            feature_refs={f: ref(r) for f, r in body["feature_refs"].items()},
            prediction_ref=ref(body["prediction_ref"]),
        )


def stored(conn, root, node: str) -> ModelProfile:
    """The profile of a registered model (``model:<name>:vN``): read from the registry, or computed from its
    verified artifact and training snapshot and stored, the first time it is asked for."""
    ref = models.model(conn, node.removeprefix("model:"))
    with conn.cursor() as cur:
        cur.execute("SELECT profile FROM quant.model_profiles WHERE model_id = %s", (ref.model_id,))
        row = cur.fetchone()
    if row is not None:
        return ModelProfile.from_json(row[0])
    profile = ModelProfile.of(node, champion.snapshot_of(conn, root, ref), artifacts.load_model(conn, ref))
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO quant.model_profiles (model_id, profile) VALUES (%s, %s) ON CONFLICT (model_id) DO NOTHING",
            (ref.model_id, profile.to_json()),
        )
    return profile

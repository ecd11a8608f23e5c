"""Which registered model a training run gives, known before it runs: so a rerun with nothing new trains nothing.

A run trains on a snapshot (its fingerprint names its rows) with a configuration (folds, rounds, seeds, LightGBM
parameters), under a code version, in an environment (``core/environment.py``). Training is deterministic (one
thread, fixed seeds: the same artifact bytes, tested), so those four decide the model bit for bit. The registry
keeps, for each such training key, the model it gave (``quant.model_trainings``): a run whose key is there
returns that model instead of training it again. Anything different (a new snapshot, a changed setting, a new
commit, another LightGBM) gives another key, and the run trains; if it then reproduces a registered artifact, it
is that model (``champion.register``), and its key is recorded for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from quant_assets.core import environment
from quant_assets.core.registry.models import ModelRef
from quant_assets.core.research.training import TrainConfig

TABLE = """
CREATE TABLE IF NOT EXISTS quant.model_trainings (
    training_key  text PRIMARY KEY,
    model_id      bigint NOT NULL REFERENCES quant.models,
    environment   jsonb NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
"""


def key(snapshot: str, config: TrainConfig, code_version: str, versions: dict[str, str] | None = None) -> str:
    """The hash of what decides a trained model: snapshot fingerprint, configuration, code and environment (this
    process's, or ``versions``: a recorded one, as a replay checks a recovered configuration against its key)."""
    what = [
        snapshot,
        dataclasses.asdict(config),
        code_version,
        environment.versions() if versions is None else versions,
    ]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def record(conn, training_key: str, ref: ModelRef) -> None:
    """Remember that ``training_key`` gave ``ref`` (a run that found it already recorded changes nothing)."""
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO quant.model_trainings (training_key, model_id, environment) VALUES (%s, %s, %s)
               ON CONFLICT (training_key) DO NOTHING""",
            (training_key, ref.model_id, json.dumps(environment.versions())),
        )


def find(conn, name: str, training_key: str) -> ModelRef | None:
    """The model of ``name`` that ``training_key`` gave, or None."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.model_id, m.name, m.version FROM quant.model_trainings t JOIN quant.models m USING (model_id)
               WHERE t.training_key = %s AND m.name = %s""",
            (training_key, name),
        )
        row = cur.fetchone()
    return None if row is None else ModelRef(*row)


def recorded(conn, ref: ModelRef) -> list[tuple[str, dict]]:
    """The training keys that gave ``ref`` and the environment each recorded, the first recorded first (the run that
    trained it; a later key is a run in another environment that reproduced it)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT training_key, environment FROM quant.model_trainings WHERE model_id = %s
               ORDER BY recorded_at, training_key""",
            (ref.model_id,),
        )
        return [(k, dict(env)) for k, env in cur.fetchall()]

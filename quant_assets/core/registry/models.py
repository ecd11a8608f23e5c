"""Registered models in Postgres (schema ``quant``, tables in core/registry/schema.py): names, versions, metrics.

A model name holds versions ``name:v1, v2, ...``; each version records its training run, its metrics and
the checksums of its files (``artifacts.py``), and its lineage (``lineage.py``). The champion history is
the promotion decisions (``promotion.py``), newest first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
from psycopg2.extras import execute_values

from quant_assets.core import environment
from quant_assets.core.registry.lineage import add_edges

if TYPE_CHECKING:
    from quant_assets.core.registry.artifacts import ModelFiles

_MODEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def check_model_name(name: str) -> str:
    """``name`` if it may name a model, else a ValueError saying what a name may hold.

    A model name becomes a directory under ``models/`` and the first part of ``name:vN``: letters, digits,
    ``_``, ``.`` and ``-``, starting with a letter, at most 64 characters, so no ``/``, ``..`` or ``:``.
    """
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"invalid model name {name!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter "
            "(it becomes a directory and the first part of name:vN)"
        )
    return name


@dataclass(frozen=True)
class ModelRef:
    model_id: int
    name: str
    version: int

    @property
    def node(self) -> str:
        return f"model:{self.name}:v{self.version}"


def register_model(
    conn,
    name: str,
    snapshot: str,
    features: dict[str, str],
    params: dict,
    code_version: str,
    dataset: tuple[str, str],
    files: ModelFiles,
    metrics: pd.DataFrame,
    orchestrator_run_id: str | None = None,
) -> ModelRef:
    """A new version of ``name`` with its training run, metrics, the checksums of its files, lineage, and the
    environment it was trained in (``environment.recorded``: LightGBM's bytes can differ across versions; the
    artifact does not hold it, so that the same model is the same bytes)."""
    check_model_name(name)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"model:{name}",))
        cur.execute("SELECT coalesce(max(version), 0) + 1 FROM quant.models WHERE name = %s", (name,))
        version = cur.fetchone()[0]
        cur.execute(
            """INSERT INTO quant.models (name, version, snapshot, features, params, code_version, environment)
               VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING model_id""",
            (name, version, snapshot, json.dumps(features), json.dumps(params, default=str), code_version, _env()),
        )
        model_id = cur.fetchone()[0]
        cur.execute(
            """INSERT INTO quant.model_training_runs (model_id, params, dataset_start, dataset_end,
               orchestrator_run_id) VALUES (%s, %s, %s, %s, %s)""",
            (model_id, json.dumps(params, default=str), dataset[0], dataset[1], orchestrator_run_id),
        )
        art, oos = files.artifact, files.oos
        cur.execute(
            """INSERT INTO quant.model_artifacts (model_id, path, sha256, size_bytes, oos_path, oos_sha256,
               oos_size_bytes) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (model_id, str(art.path), art.sha256, art.size, str(oos.path), oos.sha256, oos.size),
        )
    ref = ModelRef(model_id, name, version)
    record_metrics(conn, ref, metrics)
    add_edges(conn, [(f"snapshot:{snapshot}", ref.node), (f"code:{code_version}", ref.node)])
    return ref


def _env() -> str:
    """The environment a row records (``environment.recorded``), as JSON for a jsonb column."""
    return json.dumps(environment.recorded(), sort_keys=True)


def identical(conn, name: str, snapshot: str, params: dict, code_version: str, artifact_sha256: str) -> ModelRef | None:
    """The registered version of ``name`` that a new training run reproduces bit for bit: the same snapshot
    fingerprint, parameters and code version, and an artifact of the same SHA-256 (the bytes LightGBM wrote, so
    the same library build too), or None. Such a run is that model, not a new version."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.model_id, m.name, m.version FROM quant.models m JOIN quant.model_artifacts a USING (model_id)
               WHERE m.name = %s AND m.snapshot = %s AND m.code_version = %s AND a.sha256 = %s
                 AND m.params = %s::jsonb
               ORDER BY m.version LIMIT 1""",
            (name, snapshot, code_version, artifact_sha256, json.dumps(params, default=str)),
        )
        row = cur.fetchone()
    return None if row is None else ModelRef(*row)


def record_metrics(conn, ref: ModelRef, metrics: pd.DataFrame) -> None:
    """Upsert rows of (dataset_type, metric, scope, value)."""
    rows = [
        (ref.model_id, r.dataset_type, r.metric, str(r.scope), None if pd.isna(r.value) else float(r.value))
        for r in metrics.itertuples()
    ]
    with conn.cursor() as cur:
        execute_values(
            cur,
            """INSERT INTO quant.model_metrics (model_id, dataset_type, metric, scope, value) VALUES %s
               ON CONFLICT (model_id, dataset_type, metric, scope) DO UPDATE SET value = EXCLUDED.value""",
            rows,
        )


def record_backtest(
    conn,
    backtest_id: str,
    kind: str,
    snapshot: str,
    config: dict,
    metrics: dict,
    model: ModelRef | None = None,
    code_version: str | None = None,
    run_id: str | None = None,
) -> str:
    """Upsert a backtest or sweep result and its lineage (snapshot and model -> backtest); returns its node. The row
    names what computed it last: ``code_version``, ``run_id`` and the environment (``environment.recorded``)."""
    node = f"backtest:{backtest_id}"
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO quant.backtests (backtest_id, kind, model_id, snapshot, config, metrics, code_version,
                   run_id, environment) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (backtest_id) DO UPDATE SET metrics = EXCLUDED.metrics, created_at = now(),
                   code_version = EXCLUDED.code_version, run_id = EXCLUDED.run_id,
                   environment = EXCLUDED.environment""",
            (
                backtest_id,
                kind,
                model.model_id if model else None,
                snapshot,
                json.dumps(config),
                json.dumps(metrics, default=float),
                code_version,
                run_id,
                _env(),
            ),
        )
    add_edges(conn, [(f"snapshot:{snapshot}", node)] + ([(model.node, node)] if model else []))
    return node


def model(conn, spec: str) -> ModelRef:
    """``name:vN``, or ``name``: its champion (what trades), else its latest version (nothing promoted yet)."""
    name, sep, version = spec.partition(":v")
    check_model_name(name)
    if sep and not version.isdigit():
        raise ValueError(f"invalid model version in {spec!r}: expected name:vN with N a number")
    with conn.cursor() as cur:
        if version:
            cur.execute(
                "SELECT model_id, name, version FROM quant.models WHERE name = %s AND version = %s",
                (name, int(version)),
            )
        else:
            cur.execute(
                "SELECT model_id, name, version FROM quant.models WHERE name = %s ORDER BY version DESC LIMIT 1",
                (name,),
            )
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"no model {spec!r} in the registry")
    champs = [] if version else champions(conn, name)
    return champs[0] if champs else ModelRef(*row)


def champions(conn, name: str) -> list[ModelRef]:
    """The champion first, then earlier champions, most recent first (the fallback order)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.model_id, m.name, m.version FROM quant.model_promotions p
               JOIN quant.models m ON m.model_id = p.model_id
               WHERE p.name = %s AND p.decision = 'promoted'
               ORDER BY p.promotion_id DESC""",
            (name,),
        )
        seen, out = set(), []
        for row in cur.fetchall():
            if row[0] not in seen:
                seen.add(row[0])
                out.append(ModelRef(*row))
    return out

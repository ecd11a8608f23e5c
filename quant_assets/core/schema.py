"""The ``quant`` schema's versions and ``migrate``, the one place that creates or changes its tables.

Each stage owns its tables (features.catalog, registry.schema, monitoring.schema); the steps below apply them
in order and ``quant.schema_version`` records what a database has. Why not on every connection: the DDL takes
locks (an ``ALTER TABLE`` waits for every open reader of its table), and a sensor connects every 30 seconds.
A database made before the schema was versioned has the tables but no version table: every step runs again,
which its idempotent statements allow (and which adds the columns later steps brought).
"""

from __future__ import annotations

from quant_assets.core.features import catalog
from quant_assets.core.monitoring import profiles
from quant_assets.core.monitoring.schema import DRIFT_INPUTS, MONITORING_TABLES
from quant_assets.core.registry import promotion, trainings
from quant_assets.core.registry.schema import PRODUCERS, REGISTRY_TABLES
from quant_assets.core.registry.states import STATES_TABLE
from quant_assets.core.trading import live

LOCK = 74201  # advisory lock: several processes (code server, run workers, the daemon) may migrate at once
VERSION_TABLE = """
CREATE SCHEMA IF NOT EXISTS quant;
CREATE TABLE IF NOT EXISTS quant.schema_version (
    version     integer PRIMARY KEY,
    step        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
"""
# (version, what it does, its DDL); append new steps, never edit an applied one.
STEPS: tuple[tuple[int, str, str], ...] = (
    (1, "feature catalog (quant.feature_definitions)", catalog.TABLES),
    (2, "model registry, lineage and backtests (quant.models, ...)", REGISTRY_TABLES),
    (3, "drift metrics and run failures (quant.drift_metrics, quant.run_failures)", MONITORING_TABLES),
    (4, "model states and their changes (quant.model_states)", STATES_TABLE),
    (5, "the live book's sessions (quant.live_book)", live.TABLE),
    (6, "promotion decisions' evidence and dates (quant.model_promotions)", promotion.PROMOTIONS_EVIDENCE),
    (7, "models' drift reference profiles (quant.model_profiles)", profiles.TABLE),
    (8, "the model each training key gave (quant.model_trainings)", trainings.TABLE),
    (9, "the fingerprint of each drift row's inputs (quant.drift_metrics.inputs)", DRIFT_INPUTS),
    (10, "the fingerprint of each live book session's inputs (quant.live_book.inputs)", live.INPUTS),
    (
        11,
        "what produced models, backtests and live book sessions (environment, code_version, run_id)",
        PRODUCERS + live.CODE_VERSION,
    ),
)
LATEST = STEPS[-1][0]


def version(conn) -> int:
    """The database's schema version: 0 before the first migration."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('quant.schema_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SELECT coalesce(max(version), 0) FROM quant.schema_version")
        return int(cur.fetchone()[0])


def migrate(conn) -> list[str]:
    """Bring the ``quant`` schema to LATEST; returns the steps applied ("<version>: <what>"), empty if none.

    A database already at LATEST costs one read and takes no lock. Otherwise the steps run under an advisory
    lock in the caller's transaction (it commits them), so concurrent callers apply each step once.
    """
    if version(conn) >= LATEST:
        return []
    applied = []
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
        cur.execute(VERSION_TABLE)
        current = version(conn)  # another process may have migrated while this one waited for the lock
        for number, step, ddl in STEPS:
            if number > current:
                cur.execute(ddl)
                cur.execute("INSERT INTO quant.schema_version (version, step) VALUES (%s, %s)", (number, step))
                applied.append(f"{number}: {step}")
    return applied

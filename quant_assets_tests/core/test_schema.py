"""The ``quant`` schema is created by ``migrate``, once, and not by connecting."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from quant_assets.core import schema
from quant_assets.core.storage import pg
from quant_assets_tests.conftest import _drop_database, _fresh_database

TABLES = {
    "feature_definitions",
    "models",
    "model_training_runs",
    "model_metrics",
    "model_artifacts",
    "model_profiles",
    "model_trainings",
    "model_promotions",
    "lineage_edges",
    "model_states",
    "live_book",
    "backtests",
    "drift_metrics",
    "run_failures",
    "schema_version",
}


@pytest.fixture
def empty_db(pg_url):
    """A database without the quant schema (pg_db comes migrated)."""
    url, name = _fresh_database(pg_url)
    yield url
    _drop_database(pg_url, name)


def _tables(url: str) -> set[str]:
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'quant'")
        return {t for (t,) in cur.fetchall()}


def test_connecting_creates_nothing_migrating_creates_every_table_once(empty_db):
    with pg.connect(empty_db) as conn:
        assert schema.version(conn) == 0
    assert _tables(empty_db) == set()
    with pg.connect(empty_db) as conn:
        applied = schema.migrate(conn)
    assert [a.split(":")[0] for a in applied] == [str(n) for n, _, _ in schema.STEPS]
    assert _tables(empty_db) == TABLES
    with pg.connect(empty_db) as conn:
        assert schema.migrate(conn) == [] and schema.version(conn) == schema.LATEST


def test_concurrent_migrations_apply_each_step_once(empty_db):
    def run(_):
        with pg.connect(empty_db) as conn:
            return schema.migrate(conn)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(schema.STEPS)]
    with pg.connect(empty_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM quant.schema_version ORDER BY version")
        assert [v for (v,) in cur.fetchall()] == [n for n, _, _ in schema.STEPS]

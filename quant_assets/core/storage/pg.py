"""The ``quant`` schema in Postgres: feature catalog, registry, lineage, drift metrics, run failures."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import pandas as pd
import psycopg2

from quant_assets.core.features.definitions import FeatureDef

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS quant;
CREATE TABLE IF NOT EXISTS quant.feature_definitions (
    name          text NOT NULL,
    version       text NOT NULL,
    family        text NOT NULL,
    inputs        text[] NOT NULL,
    depends_on    text[] NOT NULL,
    lookback      integer NOT NULL,
    lag_seconds   integer NOT NULL,
    description   text NOT NULL,
    owner         text NOT NULL,
    code_version  text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS quant.models (
    model_id      bigserial PRIMARY KEY,
    name          text NOT NULL,
    version       integer NOT NULL,
    snapshot      text NOT NULL,
    features      jsonb NOT NULL,
    params        jsonb NOT NULL,
    code_version  text NOT NULL,
    status        text NOT NULL DEFAULT 'candidate',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS quant.model_training_runs (
    run_id        bigserial PRIMARY KEY,
    model_id      bigint NOT NULL REFERENCES quant.models,
    params        jsonb NOT NULL,
    dataset_start date NOT NULL,
    dataset_end   date NOT NULL,
    orchestrator_run_id text,
    trained_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS quant.model_metrics (
    model_id      bigint NOT NULL REFERENCES quant.models,
    dataset_type  text NOT NULL CHECK (dataset_type IN ('train', 'valid', 'test', 'backtest', 'live')),
    metric        text NOT NULL,
    scope         text NOT NULL DEFAULT 'overall',
    value         double precision,
    PRIMARY KEY (model_id, dataset_type, metric, scope)
);
CREATE TABLE IF NOT EXISTS quant.model_artifacts (
    model_id      bigint PRIMARY KEY REFERENCES quant.models,
    path          text NOT NULL,
    sha256        text NOT NULL,
    size_bytes    bigint NOT NULL
);
-- the model's out-of-sample walk-forward predictions, covered by their own hash (NULL: registered before)
ALTER TABLE quant.model_artifacts ADD COLUMN IF NOT EXISTS oos_path text;
ALTER TABLE quant.model_artifacts ADD COLUMN IF NOT EXISTS oos_sha256 text;
ALTER TABLE quant.model_artifacts ADD COLUMN IF NOT EXISTS oos_size_bytes bigint;
CREATE TABLE IF NOT EXISTS quant.model_promotions (
    promotion_id  bigserial PRIMARY KEY,
    name          text NOT NULL,
    model_id      bigint NOT NULL REFERENCES quant.models,
    decision      text NOT NULL,
    reason        text NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS quant.lineage_edges (
    src           text NOT NULL,
    dst           text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (src, dst)
);
CREATE TABLE IF NOT EXISTS quant.backtests (
    backtest_id   text PRIMARY KEY,
    kind          text NOT NULL,
    model_id      bigint REFERENCES quant.models,
    snapshot      text NOT NULL,
    config        jsonb NOT NULL,
    metrics       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS lineage_edges_dst ON quant.lineage_edges (dst);
CREATE SEQUENCE IF NOT EXISTS quant.drift_seq;
CREATE TABLE IF NOT EXISTS quant.drift_metrics (
    date            date NOT NULL,
    model           text NOT NULL,
    prediction_date date NOT NULL,
    n_names         integer NOT NULL,
    ic              double precision,
    rank_ic         double precision,
    ic_mean_5       double precision,
    hit_rate        double precision,
    net_return      double precision,
    sharpe_5        double precision,
    sharpe_20       double precision,
    psi_mean        double precision,
    psi_max         double precision,
    psi_max_feature text,
    prediction_psi  double precision,
    psi_n           integer,           -- rows pooled into the PSI sample
    psi_noise       double precision,  -- the mean PSI's no-drift level at that size
    psi             jsonb NOT NULL,
    levels          jsonb NOT NULL,
    level           text NOT NULL,
    actions         text[] NOT NULL,
    reasons         jsonb NOT NULL,
    run_id          text,
    seq             bigint NOT NULL DEFAULT nextval('quant.drift_seq'),
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (date, model)
);
CREATE INDEX IF NOT EXISTS drift_metrics_seq ON quant.drift_metrics (seq);
-- Tables made before psi_n / psi_noise get them. Guarded: ALTER TABLE takes an exclusive lock even when the
-- columns exist, and would wait for (and hold up) every open reader of the table on every connect.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'quant'
                   AND table_name = 'drift_metrics' AND column_name = 'psi_noise') THEN
        ALTER TABLE quant.drift_metrics ADD COLUMN IF NOT EXISTS psi_n integer,
            ADD COLUMN IF NOT EXISTS psi_noise double precision;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS quant.run_failures (
    run_id        text PRIMARY KEY,
    job_name      text NOT NULL,
    partition_key text,
    tags          jsonb NOT NULL,
    error         text NOT NULL,
    failed_at     timestamptz NOT NULL DEFAULT now()
);
"""


def libpq(url: str) -> str:
    """Strip a SQLAlchemy driver suffix (postgresql+psycopg2://) for psycopg2.connect."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else url


@contextmanager
def connect(url: str):
    """A connection with the ``quant`` schema in place; commits on success."""
    conn = psycopg2.connect(libpq(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(74201)")  # schema DDL from many processes at once
            cur.execute(SCHEMA)
        conn.commit()
        yield conn
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        conn.close()


def register_features(conn, features: Iterable[FeatureDef], code_version: str) -> int:
    """Insert definitions not yet registered; returns how many were new."""
    rows = [
        (
            f.name,
            f.version,
            f.family,
            list(f.inputs),
            [d.key for d in f.depends_on],
            f.lookback,
            int(f.lag.total_seconds()),
            f.description,
            f.owner,
            code_version,
        )
        for f in features
    ]
    with conn.cursor() as cur:
        new = 0
        for row in rows:
            cur.execute(
                """INSERT INTO quant.feature_definitions
                   (name, version, family, inputs, depends_on, lookback, lag_seconds, description, owner,
                    code_version)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (name, version) DO NOTHING""",
                row,
            )
            new += cur.rowcount
    return new


def feature_catalog(conn) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT name, version, family, inputs, depends_on, lookback, lag_seconds, description, owner,
                      code_version, registered_at
               FROM quant.feature_definitions ORDER BY family, name, registered_at"""
        )
        cols = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)

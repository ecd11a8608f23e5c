"""The registry's tables: models, their training runs, metrics, artifacts, promotions, lineage and backtests.

Created by core.schema.migrate (idempotent: every statement holds when the tables already exist).
"""

REGISTRY_TABLES = """
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
"""

# What produced a registry row (schema step 11): the environment a model was trained in (``environment.recorded``;
# its artifact's bytes do not hold it), and the code version, run and environment of a backtest's latest computation.
# NULL: recorded before.
PRODUCERS = """
ALTER TABLE quant.models ADD COLUMN IF NOT EXISTS environment jsonb;
ALTER TABLE quant.backtests ADD COLUMN IF NOT EXISTS code_version text;
ALTER TABLE quant.backtests ADD COLUMN IF NOT EXISTS run_id text;
ALTER TABLE quant.backtests ADD COLUMN IF NOT EXISTS environment jsonb;
"""

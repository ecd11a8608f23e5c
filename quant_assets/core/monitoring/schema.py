"""The monitoring tables: the daily drift metrics of every live model and the failed runs.

Created and changed by core.schema.migrate (idempotent: every statement holds when the tables already exist).
"""

MONITORING_TABLES = """
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

# The fingerprint of what each row was computed from (core.monitoring.inputs): a rerun whose inputs match skips the
# day. Rows stored before it have none, and are computed once more.
DRIFT_INPUTS = "ALTER TABLE quant.drift_metrics ADD COLUMN IF NOT EXISTS inputs text;"

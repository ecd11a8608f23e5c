"""The run configs the Dagster-layer tests share: one place, so a renamed config field is changed once."""

# A small walk-forward on the synthetic feature lake: training_snapshot then trained_model.
TRAINING_RUN_CONFIG = {
    "ops": {
        "training_snapshot": {"config": {"start": "2024-01-02", "end": "2024-05-31", "as_of": "2024-05-31"}},
        "trained_model": {"config": {"n_folds": 2, "min_train_days": 60, "num_boost_round": 30, "seeds": [1, 2]}},
    }
}

# The promotion rule on that small model: its few test sessions decide (no shadow period, as in a backfill), with
# loose evidence levels and a margin that lets any challenger through (tests of the rule itself are in core).
PROMOTION_CONFIG = {"shadow_sessions": 0, "margin": -100.0, "min_dsr": 0.0, "max_turnover": 4.0, "min_sessions": 5}
PROMOTED_RUN_CONFIG = {"ops": {**TRAINING_RUN_CONFIG["ops"], "promotion_decision": {"config": PROMOTION_CONFIG}}}

# The sweep's plan and aggregation config: 4 configurations (1 learning rate x 2 leaf counts x 2 rules) x 2 folds = 8
# cells, from 4 models (leaves x folds; each backtests both rules) dealt into 2 steps.
SWEEP_CONFIG = {
    "learning_rates": [0.05],
    "num_leaves": [7, 15],
    "rules": ["long_short:0.2", "topk:8:2"],
    "n_folds": 2,
    "min_train_days": 60,
    "num_boost_round": 20,
    "pbo_blocks": 4,
    "steps": 2,
}
SWEEP_RUN_CONFIG = {
    "ops": {
        "backtest_sweep": {"ops": {"plan_sweep": {"config": SWEEP_CONFIG}, "aggregate_sweep": {"config": SWEEP_CONFIG}}}
    }
}

# The multiprocess executor (defs/executor.py's default engine, selected explicitly) on two processes, forked from
# its default forkserver.
MULTIPROCESS = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}


# The multiprocess executor with spawn, named (the project's default is a forkserver: defs/executor.py): each step a
# new interpreter with the environment as it is when the step starts. A forkserver is started once per process, and
# the processes it forks keep the environment of the test that started it, so only one test (the sweep's) may use it
# with its own env.
SPAWN = {"execution": {"config": {"multiprocess": {"max_concurrent": 2, "start_method": {"spawn": {}}}}}}

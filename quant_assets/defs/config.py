"""Run configuration of every asset and op: typed, documented (the launchpad shows each description), and with
defaults that are constants. Another value is given as run config, by the launchpad, the CLI or a sensor
(``RunConfig`` with these classes), never read from the environment."""

from __future__ import annotations

import os
from enum import Enum

import dagster as dg
from pydantic import Field

from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.ingest.validate import DEFAULT_LIMITS, PriceLimits
from quant_assets.core.registry import promotion
from quant_assets.core.research import backtest, sweep

DEFAULT_MAX_BAD_SHARE = 0.05

# --- ingest and features -------------------------------------------------------------------------------------


class IngestConfig(dg.Config):
    clock: str = Field(
        default="backfill",
        description="'backfill' stamps ingest_time = event time + availability lag (a row not yet available "
        "by the run's start is quarantined as not_yet_available); 'live' stamps the wall clock and refuses a "
        "partition whose data is not yet available.",
    )
    max_bad_share: float | None = Field(
        default=None,
        description="Blocking limit on damaged records quarantined / records read, per partition. "
        "Unset: QUANT_MAX_BAD_SHARE, else 0.05 (read when the run starts).",
    )
    max_price: float = Field(default=DEFAULT_LIMITS.max_price, description="A price above this is implausible.")
    max_volume: float = Field(default=DEFAULT_LIMITS.max_volume, description="A volume above this is implausible.")
    step_reject_factor: float = Field(
        default=DEFAULT_LIMITS.step_reject,
        description="adj_close moving by more than this factor (either way) from the ticker's previous stored "
        "bar is quarantined as implausible_step.",
    )
    step_flag_factor: float = Field(
        default=DEFAULT_LIMITS.step_flag,
        description="adj_close moving by more than this factor is kept and flagged in the price_steps check.",
    )
    volume_flag_factor: float = Field(
        default=DEFAULT_LIMITS.volume_flag,
        description="volume moving by more than this factor is kept and flagged in the price_steps check.",
    )
    step_lookback_sessions: int = Field(
        default=DEFAULT_LIMITS.lookback,
        description="How many sessions back the step check looks for the previous stored bar.",
    )

    def limits(self) -> PriceLimits:
        return PriceLimits(
            self.max_price,
            self.max_volume,
            self.step_reject_factor,
            self.step_flag_factor,
            self.volume_flag_factor,
            self.step_lookback_sessions,
        )

    def bad_share_limit(self) -> float:
        """The run config's limit, else QUANT_MAX_BAD_SHARE at run time, else 5%."""
        if self.max_bad_share is not None:
            return self.max_bad_share
        return float(os.environ.get("QUANT_MAX_BAD_SHARE", DEFAULT_MAX_BAD_SHARE))


class FeatureConfig(dg.Config):
    lookahead_sample: int = Field(
        25, ge=0, description="Rows per day recomputed from inputs cut at their time (no_lookahead_recompute)."
    )
    max_null_rate: float = Field(0.2, ge=0, le=1, description="The null_rate check warns above this share.")
    verify_sample: int = Field(
        20,
        ge=0,
        description="Stored files of the family verified against their names each run (files_intact), "
        "besides every file the run writes.",
    )


class CompactionConfig(dg.Config):
    months: list[str] | None = Field(
        None,
        description="Months (YYYY-MM) to compact; unset: every month of the store. The compaction sensor and "
        "schedule and the CLI set the complete months a run wrote, so a run looks at those alone.",
    )
    min_files: int = Field(8, ge=1, description="(Re)compact a month once this many of its files are uncovered.")


class ApprovalConfig(dg.Config):
    model: str = Field(description="The model to resume: name:vN, or a name (its champion).")
    approver: str = Field(description="Who approves (recorded as user:<name> on the change).")
    reason: str = Field(description="Why trading may resume (recorded with the change).")
    as_of: str | None = Field(
        None,
        description="The session whose information the review saw (YYYY-MM-DD); the model is live from the next "
        "session. Unset: the model's last drift row.",
    )


# --- research ------------------------------------------------------------------------------------------------


class SnapshotConfig(dg.Config):
    start: str = Field("2023-04-03", description="First session of the training window (YYYY-MM-DD).")
    end: str = Field("2024-06-28", description="Last session of the training window (YYYY-MM-DD).")
    as_of: str = Field(
        "2024-06-28", description="Knowledge date: only labels matured by its close are kept (usually = end)."
    )
    horizon: int = Field(1, ge=1, description="Label horizon in sessions (adjusted open-to-open return).")
    features: list[str] = Field(list(ALL_FEATURES), description="Features of the matrix (default: all registered).")
    universe: list[str] | None = Field(None, description="Names to keep; unset: every name with a label and features.")


class TrainingConfig(dg.Config):
    n_folds: int = Field(4, ge=1, description="Walk-forward test folds (purged by the label horizon).")
    min_train_days: int = Field(120, ge=1, description="Sessions of training data before the first test fold.")
    num_boost_round: int = Field(150, ge=1, description="LightGBM boosting rounds per ensemble member.")
    seeds: list[int] = Field([1, 2, 3], description="One ensemble member per seed (fixed: reproducible models).")
    retrain: bool = Field(
        False,
        description="Train even when this snapshot, configuration, code and environment trained a registered model "
        "before (which is otherwise returned as it is): to check that training reproduces it bit for bit.",
    )


# --- trading: costs, backtests, the sweep, live drift --------------------------------------------------------


class CostsConfig(dg.Config):
    """The trading costs every config that trades shares (backtest, sweep, drift's live signal)."""

    cost_bps: float = Field(5.0, ge=0, description="Commission per side, in basis points of the traded value.")
    slippage_bps: float = Field(5.0, ge=0, description="Slippage per side, in basis points of the traded value.")
    min_cost: float = Field(1.0, ge=0, description="Minimum commission per trade, in currency.")
    capital: float = Field(10_000_000.0, gt=0, description="Capital the weights apply to (minimum cost's scale).")

    def costs(self) -> backtest.Costs:
        return backtest.Costs(self.cost_bps, self.slippage_bps, self.min_cost, self.capital)


class BacktestConfig(dg.Config):
    rule: str = Field("long_short", description="Portfolio rule: long_short (quantiles) or topk (long only).")
    quantile: float = Field(0.2, gt=0, le=0.5, description="long_short: share of names in each leg.")
    k: int = Field(20, ge=1, description="topk: names held.")
    n_drop: int = Field(5, ge=0, description="topk: most names replaced per day.")
    costs: CostsConfig = Field(default_factory=CostsConfig, description="Trading costs of the net figures.")

    def parts(self) -> tuple[backtest.PortfolioRule, backtest.Costs]:
        return backtest.from_config(self.model_dump())


class PromotionConfig(BacktestConfig):
    """The promotion rule (core/registry/promotion.py); the portfolio rule and costs both models are backtested
    with (the live book's defaults)."""

    shadow_sessions: int = Field(
        10,
        ge=0,
        description="Sessions a challenger must score in shadow (labels matured) before a decision; 0 "
        "for backfills (the decision says so). A first model has no champion to shadow and needs none.",
    )
    margin: float = Field(0.0, description="Net Sharpe (annualised) the challenger must beat the champion's by.")
    min_dsr: float = Field(
        0.95,
        ge=0,
        lt=1,
        description="Deflated Sharpe the challenger needs, given every challenger tried for "
        "the model name (the probability its true Sharpe beats the best of as many unskilled trials).",
    )
    max_turnover: float = Field(2.5, gt=0, description="Cap on the challenger's mean daily turnover (sum of |trades|).")
    min_sessions: int = Field(20, ge=1, description="Fewest common out-of-sample sessions a decision is made on.")

    def promotion_rule(self) -> promotion.PromotionRule:
        return promotion.PromotionRule(
            self.shadow_sessions, self.margin, self.min_dsr, self.max_turnover, self.min_sessions
        )


class SweepConfig(dg.Config):
    learning_rates: list[float] = Field([0.03, 0.1], description="LightGBM learning rates of the grid.")
    num_leaves: list[int] = Field([7, 31], description="LightGBM num_leaves of the grid.")
    rules: list[str] = Field(
        ["long_short:0.2", "topk:20:5"], description="Portfolio rules of the grid: long_short:Q or topk:K:DROP."
    )
    n_folds: int = Field(4, ge=1, description="Walk-forward folds per configuration.")
    min_train_days: int = Field(120, ge=1, description="Sessions of training data before the first fold.")
    num_boost_round: int = Field(100, ge=1, description="LightGBM boosting rounds per model.")
    costs: CostsConfig = Field(default_factory=CostsConfig, description="Trading costs of the net figures.")
    pbo_blocks: int = Field(8, ge=2, description="Blocks of the probability-of-backtest-overfitting split.")
    steps: int = Field(
        2,
        ge=1,
        description="Steps the sweep's work is dealt into (at most one per model: learning rate x leaves x fold; "
        "each model trains once and backtests every rule). Each step is a process under the default executor and "
        "pays its start-up, so use the number of processes that run at once (2 on 2 cores; with more "
        "Celery workers, more). It changes no figure, nor the sweep's record id.",
    )

    def grid(self) -> sweep.Grid:
        return sweep.Grid(
            learning_rates=self.learning_rates,
            num_leaves=self.num_leaves,
            rules=self.rules,
            n_folds=self.n_folds,
            min_train_days=self.min_train_days,
            num_boost_round=self.num_boost_round,
            costs=self.costs.costs(),
        )

    def settings(self) -> dict:
        """What identifies the sweep's results (its record id and stored config): every field but ``steps``, which
        only splits the work, so a sweep re-run with other steps updates the same record."""
        return self.model_dump(exclude={"steps"})


class OnCritical(Enum):
    fail = "fail"  # the check fails with severity ERROR
    warn = "warn"  # the check reports the breach as a warning (replays of known history)


class DriftConfig(dg.Config):
    on_critical: OnCritical = Field(
        OnCritical.fail,
        description="fail: a critical day fails the alert_levels check (severity ERROR, red in the UI); warn: "
        "reported as a warning (replays of known history). The run goes on either way: the champion's state "
        "acts on the breach.",
    )
    quantile: float = Field(0.2, gt=0, le=0.5, description="Live long-short signal: share of names in each leg.")
    costs: CostsConfig = Field(default_factory=CostsConfig, description="Trading costs of the live net Sharpe.")


# --- research ----------------------------------------------------------------------------------------------


class FeatureResearchConfig(dg.Config):
    candidate: str = Field(
        description="The candidate FeatureDef: path/to/file.py:NAME (a relative path is from the project root, e.g. "
        "examples/candidate_feature.py:INTRADAY_REVERSAL) or package.module:NAME."
    )
    start: str = Field(description="First decision session of the window (YYYY-MM-DD).")
    end: str = Field(description="Last decision session of the window (YYYY-MM-DD).")
    guard_days: int = Field(
        30, ge=0, description="Sessions whose rows the lookahead guards recompute, spread over the window (0: all)."
    )
    out_dir: str = Field(
        "", description="Directory for the tear sheet (PNG) and the figures (JSON); empty: <data root>/research."
    )


class ReplayConfig(dg.Config):
    target: str = Field(
        description="What to replay: model:<name>:vN (the model and every backtest of it) or backtest:<id> (its model, "
        "then that backtest), as `quant-assets lineage` and quant.backtests name them."
    )
    scratch: str = Field(
        "",
        description="Local directory to rebuild in, kept afterwards (new or empty); empty: a temporary one, removed.",
    )

"""Resources: where the lake lives and which market the pipeline reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from quant_assets.core.ingest.sources import AltSource, PriceSource, make_sources
from quant_assets.core.monitoring.drift import AlertConfig
from quant_assets.paths import default_data_root


class LakeResource(dg.ConfigurableResource):
    """The Parquet data root (``QUANT_DATA_ROOT``, default ``data/lake``)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root).expanduser().resolve()


class PostgresResource(dg.ConfigurableResource):
    """The Postgres holding the ``quant`` schema (feature catalog, registry, drift metrics)."""

    url: str


class MarketDataResource(dg.ConfigurableResource):
    """Which source feeds raw_prices and alt_data: ``synthetic`` or ``stocknet``."""

    kind: str = "synthetic"
    seed: int = 42
    n_tickers: int = 200
    regime_change: str = "2024-07-01"
    stocknet_dir: str | None = None

    def sources(self) -> tuple[PriceSource, AltSource]:
        """Fresh adapters; call once per run so per-file parse caches are shared across partitions."""
        return make_sources(
            self.kind,
            seed=self.seed,
            n_tickers=self.n_tickers,
            regime_change=self.regime_change,
            stocknet_dir=self.stocknet_dir,
        )


class AlertPolicy(dg.ConfigurableResource):
    """The alert matrix (defaults: core.monitoring.drift.AlertConfig) and the retraining policy (drift, sensor)."""

    ic_warning: float = AlertConfig.ic_warning
    ic_warning_days: int = AlertConfig.ic_warning_days
    ic_critical: float = AlertConfig.ic_critical
    ic_pause: float = AlertConfig.ic_pause
    ic_pause_days: int = AlertConfig.ic_pause_days
    psi_warning: float = AlertConfig.psi_warning
    psi_critical: float = AlertConfig.psi_critical
    psi_noise_quantile: float = AlertConfig.psi_noise_quantile
    sharpe_warning: float = AlertConfig.sharpe_warning
    sharpe_warning_days: int = AlertConfig.sharpe_warning_days
    sharpe_critical: float = AlertConfig.sharpe_critical
    sharpe_critical_days: int = AlertConfig.sharpe_critical_days
    cooldown_sessions: int = 10
    retrain_sessions: int = 250

    def rules(self) -> AlertConfig:
        return AlertConfig(**{f: getattr(self, f) for f in AlertConfig.__dataclass_fields__})


def alert_policy_from_env() -> AlertPolicy:
    """``QUANT_ALERT_POLICY``: a JSON object of AlertPolicy fields; anything else is refused with the reason."""
    raw = os.environ.get("QUANT_ALERT_POLICY") or "{}"
    try:
        fields = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"QUANT_ALERT_POLICY is not valid JSON ({exc}): {raw!r}") from exc
    if not isinstance(fields, dict):
        raise ValueError(f"QUANT_ALERT_POLICY must be a JSON object of AlertPolicy fields, got {raw!r}")
    unknown = sorted(set(fields) - set(AlertPolicy.model_fields))
    if unknown:
        raise ValueError(f"QUANT_ALERT_POLICY has unknown fields {unknown}; known: {sorted(AlertPolicy.model_fields)}")
    policy = AlertPolicy(**fields)
    policy.rules()  # the rules check their own values
    return policy


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources configured from the environment (see README: QUANT_*)."""
    return {
        "lake": LakeResource(root=os.environ.get("QUANT_DATA_ROOT", str(default_data_root()))),
        "postgres": PostgresResource(url=dg.EnvVar("QUANT_PG_URL")),
        "market": MarketDataResource(
            kind=os.environ.get("QUANT_SOURCE", "synthetic"),
            seed=int(os.environ.get("QUANT_SEED", "42")),
            n_tickers=int(os.environ.get("QUANT_N_TICKERS", "200")),
            regime_change=os.environ.get("QUANT_REGIME_CHANGE", "2024-07-01"),
            stocknet_dir=os.environ.get("QUANT_STOCKNET_DIR"),
        ),
        "alert_policy": alert_policy_from_env(),
    }

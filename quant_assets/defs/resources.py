"""Resources: where the lake lives and which market the pipeline reads."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

from quant_assets.core.ingest.sources import AltSource, PriceSource, make_sources
from quant_assets.core.monitoring.alerts import AlertConfig
from quant_assets.core.registry import models
from quant_assets.core.storage import pg
from quant_assets.paths import default_data_root


class LakeResource(dg.ConfigurableResource):
    """The Parquet data root (``QUANT_DATA_ROOT``, default ``data/lake``)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root).expanduser().resolve()


class RegistryResource(dg.ConfigurableResource):
    """The Postgres holding the ``quant`` schema (feature catalog, model registry, lineage, drift history) and
    the name of the model this deployment trains, scores and monitors: one resource, so that every asset, check
    and sensor asks the same registry about the same model."""

    url: str = Field(description="Postgres URL of the quant schema (QUANT_PG_URL), e.g. postgresql+psycopg2://...")
    model_name: str = Field(
        default="equity_lgbm",
        description="Registered model name (QUANT_MODEL_NAME): letters, digits, '_', '.', '-'; at most 64 characters.",
    )

    @contextmanager
    def connect(self) -> Iterator:
        """A connection to the registry; commits on success, rolls back on error."""
        with pg.connect(self.url) as conn:
            yield conn

    @property
    def name(self) -> str:
        """The checked model name: a bad one fails the run that uses it, naming the rule."""
        return models.check_model_name(self.model_name)

    def champions(self) -> list[models.ModelRef]:
        """Champions of ``model_name``, newest promotion first (empty before the first training)."""
        with self.connect() as conn:
            return models.champions(conn, self.name)


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
    """The alert matrix (defaults: core.monitoring.alerts.AlertConfig) and the retraining policy (drift, sensor)."""

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
        "registry": RegistryResource(url=dg.EnvVar("QUANT_PG_URL"), model_name=dg.EnvVar("QUANT_MODEL_NAME")),
        "market": MarketDataResource(
            kind=os.environ.get("QUANT_SOURCE", "synthetic"),
            seed=int(os.environ.get("QUANT_SEED", "42")),
            n_tickers=int(os.environ.get("QUANT_N_TICKERS", "200")),
            regime_change=os.environ.get("QUANT_REGIME_CHANGE", "2024-07-01"),
            stocknet_dir=os.environ.get("QUANT_STOCKNET_DIR"),
        ),
        "alert_policy": alert_policy_from_env(),
    }

"""Resources: the lake, the registry, the market data source, the alert policy and the engine of automated runs.

Every setting of the deployment reaches them through ``dg.EnvVar`` in ``default_resources``: Dagster reads it
when a run (or a sensor tick) launches, never when the definitions are imported. The variables and their
defaults are listed in quant_assets/settings.py; the field defaults here are the same values, for resources
built in Python (tests, notebooks).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml
from pydantic import Field

from quant_assets import settings
from quant_assets.core import schema
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.sources import AltSource, PriceSource, make_sources
from quant_assets.core.monitoring.actions import ActionPolicy
from quant_assets.core.monitoring.alerts import AlertConfig
from quant_assets.core.registry import models
from quant_assets.core.storage import fs, pg
from quant_assets.core.storage.fs import Location
from quant_assets.paths import PROJECT_ROOT
from quant_assets.provenance import code_version

CODE_VERSION = "Code version stamped on what it writes (QUANT_CODE_VERSION); empty: the checkout's git SHA."


class LakeResource(dg.ConfigurableResource):
    """The Parquet data root (a local directory or an object-store prefix) and the feature store in it.

    An ``s3://`` root opens with the endpoint, credentials and region given here (the standard ``AWS_*``
    variables, through ``dg.EnvVar``); an empty one is left to the AWS SDK's own chain (profile, instance role).
    """

    root: str = Field(
        description="The data root (QUANT_DATA_ROOT): a directory, or s3://bucket/prefix; raw data, features, "
        "snapshots, models, ..."
    )
    code_version: str = Field(default=settings.default("QUANT_CODE_VERSION"), description=CODE_VERSION)
    endpoint_url: str = Field(default="", description="Object-store endpoint for an s3:// root (AWS_ENDPOINT_URL).")
    access_key_id: str = Field(default="", description="Object-store access key (AWS_ACCESS_KEY_ID).")
    secret_access_key: str = Field(default="", description="Object-store secret key (AWS_SECRET_ACCESS_KEY).")
    region: str = Field(default="", description="Object-store region (AWS_REGION).")
    read_cache: str = Field(
        default="",
        description="A local directory where feature queries keep copies of an s3:// lake's files, named by their "
        "content hash, so a file is fetched once per machine (QUANT_READ_CACHE); empty: no cache.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """At launch: the object-store settings are registered before any step reads a stored location, and a
        bucket that does not exist fails the launch with that reason, not every partition with the store's."""
        fs.require_bucket(self.path)

    @property
    def path(self) -> Location:
        """The root as a location; registers the object-store settings, so any location stored as text (a
        registry row, an asset's output) opens with them in this process."""
        fs.register("s3", fs.s3_options(self.endpoint_url, self.access_key_id, self.secret_access_key, self.region))
        return fs.location(self.root)

    def feature_store(self) -> FeatureStore:
        """The point-in-time feature store over every registered feature of this lake."""
        return FeatureStore(self.path, ALL_FEATURES, Path(self.read_cache).expanduser() if self.read_cache else None)

    def provenance(self, producer: str, run_id: str) -> dict[str, str]:
        """What rows written by ``producer`` (an asset) in run ``run_id`` carry (``lake.PROVENANCE``): its name, the
        code version (``provenance.code_version``) and the run."""
        return {"producer": producer, "producer_version": code_version(self.code_version), "run_id": run_id}


class RegistryResource(dg.ConfigurableResource):
    """The Postgres holding the ``quant`` schema (feature catalog, model registry, lineage, drift history) and
    the name of the model this deployment trains, scores and monitors: one resource, so that every asset, check
    and sensor asks the same registry about the same model."""

    url: str = Field(description="Postgres URL of the quant schema (QUANT_PG_URL), e.g. postgresql+psycopg2://...")
    model_name: str = Field(
        default=settings.default("QUANT_MODEL_NAME"),
        description="Registered model name (QUANT_MODEL_NAME): letters, digits, '_', '.', '-'; at most 64 characters.",
    )
    code_version: str = Field(default=settings.default("QUANT_CODE_VERSION"), description=CODE_VERSION)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """At launch: a bad model name fails here, naming the rule; the schema is migrated if it is behind."""
        models.check_model_name(self.model_name)
        with self.connect() as conn:
            applied = schema.migrate(conn)
        if applied and context.log is not None:
            context.log.info(f"quant schema migrated: {'; '.join(applied)}")

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

    kind: str = Field(default=settings.default("QUANT_SOURCE"), description="synthetic or stocknet (QUANT_SOURCE).")
    seed: int = Field(default=int(settings.default("QUANT_SEED")), description="Synthetic market seed (QUANT_SEED).")
    n_tickers: int = Field(
        default=int(settings.default("QUANT_N_TICKERS")), description="Synthetic market size (QUANT_N_TICKERS)."
    )
    regime_change: str = Field(
        default=settings.default("QUANT_REGIME_CHANGE"),
        description="Synthetic market's regime change date (QUANT_REGIME_CHANGE); empty: none.",
    )
    stocknet_dir: str | None = Field(
        default=None, description="StockNet root for kind stocknet (QUANT_STOCKNET_DIR); empty: not set."
    )

    def sources(self) -> tuple[PriceSource, AltSource]:
        """Fresh adapters; call once per run so per-file parse caches are shared across partitions."""
        return make_sources(
            self.kind,
            seed=self.seed,
            n_tickers=self.n_tickers,
            regime_change=self.regime_change or None,
            stocknet_dir=self.stocknet_dir or None,
        )


class AlertPolicy(dg.ConfigurableResource):
    """The alert matrix (defaults: core.monitoring.alerts.AlertConfig) and the retraining policy (drift, sensor).

    ``overrides`` (QUANT_ALERT_POLICY) is a JSON object of the other fields: a deployment changes a threshold
    with one variable. Consumers read the policy through ``resolved()`` or ``rules()``, which apply it.
    """

    ic_warning: float = Field(AlertConfig.ic_warning, description="Warning when the 5-day mean IC is below.")
    ic_warning_days: int = Field(AlertConfig.ic_warning_days, description="Sessions in a row ic_warning must hold.")
    ic_critical: float = Field(
        AlertConfig.ic_critical, description="Critical (retrain) when the 5-day mean IC is below."
    )
    ic_pause: float = Field(AlertConfig.ic_pause, description="Critical (pause) when the 5-day mean IC is below.")
    ic_pause_days: int = Field(AlertConfig.ic_pause_days, description="Sessions in a row ic_pause must hold.")
    psi_warning: float = Field(AlertConfig.psi_warning, description="PSI band watch when the mean PSI is above.")
    psi_critical: float = Field(
        AlertConfig.psi_critical, description="PSI band act (retrain) when the mean PSI is above."
    )
    psi_noise_quantile: float = Field(
        AlertConfig.psi_noise_quantile,
        description="PSI bands also need the mean PSI above its no-drift level at this quantile (0: off).",
    )
    sharpe_warning: float = Field(AlertConfig.sharpe_warning, description="Warning when the 20-day Sharpe is below.")
    sharpe_warning_days: int = Field(
        AlertConfig.sharpe_warning_days, description="Sessions in a row sharpe_warning must hold."
    )
    sharpe_critical: float = Field(
        AlertConfig.sharpe_critical, description="Critical (retrain) when the 20-day Sharpe is below."
    )
    sharpe_critical_days: int = Field(
        AlertConfig.sharpe_critical_days, description="Sessions in a row sharpe_critical must hold."
    )
    derisk_exposure: float = Field(
        ActionPolicy.derisk_exposure, description="A de-risked champion's exposure, a share of the rule's weights."
    )
    restore_sessions: int = Field(
        ActionPolicy.restore_sessions,
        description="Observed sessions in a row with no de-risk or pause signal critical that restore a de-risked "
        "champion to live (0: only a promotion or an approval does).",
    )
    cooldown_sessions: int = Field(10, description="Sessions after a retrain request before the next one.")
    retrain_sessions: int = Field(250, description="Sessions in the snapshot a drift-triggered retrain trains on.")
    overrides: str = Field(
        "{}",
        description="JSON object of the fields above that override them (QUANT_ALERT_POLICY), and per model name "
        'under "models", e.g. {"ic_pause_days": 5, "models": {"equity_lgbm": {"derisk_exposure": 0.25}}}.',
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A bad policy (the global one or a model's) fails the launch with the reason, not the first drift
        computation."""
        self.rules()  # parses the overrides: after it, they are a JSON object with a valid "models"
        self.actions()
        for model in json.loads(self.overrides or "{}").get("models", {}):
            self.rules(model)
            self.actions(model)

    def resolved(self, model: str | None = None) -> AlertPolicy:
        """This policy with ``overrides`` applied, then those of ``model`` (a model name) if the overrides hold
        ``{"models": {"<name>": {...}}}``; anything but JSON objects of known fields is refused."""
        try:
            fields = json.loads(self.overrides or "{}")
        except ValueError as exc:
            raise ValueError(f"QUANT_ALERT_POLICY is not valid JSON ({exc}): {self.overrides!r}") from exc
        if not isinstance(fields, dict):
            raise ValueError(f"QUANT_ALERT_POLICY must be a JSON object of AlertPolicy fields, got {self.overrides!r}")
        per_model = fields.pop("models", {})
        if not isinstance(per_model, dict) or not all(isinstance(v, dict) for v in per_model.values()):
            raise ValueError(f"QUANT_ALERT_POLICY's models must map model names to objects of fields: {per_model!r}")
        known = sorted(set(AlertPolicy.model_fields) - {"overrides"})
        for where, given in [("", fields), *((f" (model {m})", f) for m, f in per_model.items())]:
            unknown = sorted(set(given) - set(known))
            if unknown:
                raise ValueError(f"QUANT_ALERT_POLICY{where} has unknown fields {unknown}; known: {known}")
        return AlertPolicy(**{**{f: getattr(self, f) for f in known}, **fields, **per_model.get(model, {})})

    def actions(self, model: str | None = None) -> ActionPolicy:
        """How the resolved policy's actions act on a model's state (it checks its own values)."""
        policy = self.resolved(model)
        return ActionPolicy(**{f: getattr(policy, f) for f in ActionPolicy.__dataclass_fields__})

    def rules(self, model: str | None = None) -> AlertConfig:
        """The alert matrix of the resolved policy (it checks its own values)."""
        policy = self.resolved(model)
        return AlertConfig(**{f: getattr(policy, f) for f in AlertConfig.__dataclass_fields__})


class AutomationRunConfig(dg.ConfigurableResource):
    """The engine of the runs the schedules and sensors request, chosen by the deployment: the ``execution``
    block of a run config file (QUANT_RUN_CONFIG, e.g. deploy/celery.yaml for Celery workers), added to each
    request. Without it those runs take the executor's default (multiprocess, on the machine that launches
    them). The file is read at every tick, so a bad one fails each tick, skipping ones included, with one line.
    """

    path: str = Field(
        default=settings.default("QUANT_RUN_CONFIG"),
        description="Run config file whose execution block every scheduled or sensor run takes (QUANT_RUN_CONFIG); "
        "a relative path is from the project root; empty: none.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """At the tick: a missing or unreadable file, or one without an execution block, fails it, saying so."""
        self.execution()

    def execution(self) -> dict | None:
        """The file's ``execution`` block, or None without a file."""
        if not self.path:
            return None
        file = PROJECT_ROOT / self.path  # an absolute path stays itself
        try:
            loaded = yaml.safe_load(file.read_text())
        except OSError as exc:
            raise ValueError(f"QUANT_RUN_CONFIG: cannot read run config file {str(file)!r}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:  # its message spans lines: one line here
            raise ValueError(f"QUANT_RUN_CONFIG: {str(file)!r} is not YAML: {' '.join(str(exc).split())}") from exc
        block = loaded.get("execution") if isinstance(loaded, dict) else None
        if not isinstance(block, dict) or not block:
            raise ValueError(
                f"QUANT_RUN_CONFIG: {str(file)!r} has no execution block (execution: {{config: {{celery: ...}}}})"
            )
        return block

    def apply(self, request: dg.RunRequest) -> dg.RunRequest:
        """``request`` with the file's execution block added to its run config (a request that names its own
        engine keeps it); unchanged without a file."""
        block = self.execution()
        if block is None:
            return request
        run_config = request.run_config
        return request.with_replaced_attrs(run_config={**run_config, "execution": run_config.get("execution") or block})


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The deployment's resources: every setting a ``dg.EnvVar``, read at launch (see quant_assets/settings.py)."""
    code_version = dg.EnvVar("QUANT_CODE_VERSION")
    return {
        "lake": LakeResource(
            root=dg.EnvVar("QUANT_DATA_ROOT"),
            code_version=code_version,
            endpoint_url=dg.EnvVar("AWS_ENDPOINT_URL"),
            access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
            secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
            region=dg.EnvVar("AWS_REGION"),
            read_cache=dg.EnvVar("QUANT_READ_CACHE"),
        ),
        "registry": RegistryResource(
            url=dg.EnvVar("QUANT_PG_URL"), model_name=dg.EnvVar("QUANT_MODEL_NAME"), code_version=code_version
        ),
        "market": MarketDataResource(
            kind=dg.EnvVar("QUANT_SOURCE"),
            seed=dg.EnvVar.int("QUANT_SEED"),
            n_tickers=dg.EnvVar.int("QUANT_N_TICKERS"),
            regime_change=dg.EnvVar("QUANT_REGIME_CHANGE"),
            stocknet_dir=dg.EnvVar("QUANT_STOCKNET_DIR"),
        ),
        "alert_policy": AlertPolicy(overrides=dg.EnvVar("QUANT_ALERT_POLICY")),
        "automation_run_config": AutomationRunConfig(path=dg.EnvVar("QUANT_RUN_CONFIG")),
    }

"""The deployment's settings: the environment variables the resources read when a run launches (and one of
Dagster's own, ``DAGSTER_EVENT_BATCH_SIZE``: ``defs/event_log.py``), with defaults.

The resources take each setting through ``dg.EnvVar`` (defs/resources.py), which Dagster reads at launch and
which has no default: an unset variable fails the launch, naming it. So whatever starts Dagster processes
(``./qa``, the ``quant-assets`` command, a test) starts them with ``launch_env(os.environ)``: the settings it
was given, the defaults below for the others. ``QUANT_PG_URL`` has no default (the bootstrap points it at the
local Postgres). ``python -m quant_assets.settings`` prints the export lines of the settings the environment
lacks (``eval "$(python -m quant_assets.settings)"``).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from quant_assets.paths import default_data_root


@dataclass(frozen=True)
class Setting:
    default: str
    meaning: str


SETTINGS: dict[str, Setting] = {
    "QUANT_DATA_ROOT": Setting(str(default_data_root()), "the lake: where every output lands"),
    "QUANT_MODEL_NAME": Setting("equity_lgbm", "the registry name models are trained, promoted and looked up under"),
    "QUANT_SOURCE": Setting("synthetic", "the market data source: synthetic or stocknet"),
    "QUANT_STOCKNET_DIR": Setting("", "the StockNet root (source stocknet)"),
    "QUANT_SEED": Setting("42", "the synthetic market's seed"),
    "QUANT_N_TICKERS": Setting("200", "the synthetic market's number of names"),
    "QUANT_REGIME_CHANGE": Setting("2024-07-01", "the synthetic market's regime change"),
    "QUANT_ALERT_POLICY": Setting("{}", "JSON object overriding fields of the alert policy"),
    "QUANT_CODE_VERSION": Setting("", "the code version stamped on outputs; empty: the checkout's git SHA"),
    "QUANT_RUN_CONFIG": Setting(
        "", "run config file whose execution block the schedules' and sensors' runs take (deploy/celery.yaml)"
    ),
    # An s3:// data root's object store: the standard variables any S3 client reads (empty: the SDK's own chain).
    "AWS_ENDPOINT_URL": Setting("", "the object store's endpoint (MinIO, moto, ...; empty: AWS S3)"),
    "AWS_ACCESS_KEY_ID": Setting("", "the object store's access key"),
    "AWS_SECRET_ACCESS_KEY": Setting("", "the object store's secret key"),
    "AWS_REGION": Setting("", "the object store's region"),
    "DAGSTER_EVENT_BATCH_SIZE": Setting(
        "1000", "Dagster writes a run's planned and per-partition asset events in batches of this size (0: one by one)"
    ),
    "QUANT_READ_CACHE": Setting(
        "", "a local directory caching an s3:// lake's feature files by content hash (empty: no cache)"
    ),
}


def default(name: str) -> str:
    """The default of setting ``name``: the resources' own defaults, so a resource built in Python matches."""
    return SETTINGS[name].default


def launch_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with every setting it lacks at its default: the environment Dagster processes launch with."""
    return {**{name: s.default for name, s in SETTINGS.items()}, **environ}


def missing_exports(environ: Mapping[str, str]) -> list[str]:
    """``export NAME=default`` lines (shell-quoted) for the settings ``environ`` lacks."""
    return [f"export {name}={shlex.quote(s.default)}" for name, s in SETTINGS.items() if name not in environ]


if __name__ == "__main__":
    for line in missing_exports(os.environ):
        print(line)  # noqa: T201

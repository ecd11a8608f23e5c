"""The one Definitions object, assembled from the defs modules: every asset, job, schedule and sensor they
define at module level is in it, so a new one needs no edit here. The resources are the deployment's,
configured from the environment when a run launches (defs/resources.py); step outputs go beside the lake
(defs/step_outputs.py), so a step runs on any machine that reaches the lake. Every job, the implicit asset job of
`quant-assets materialize` included, runs on the executor of defs/executor.py (run config picks the engine)."""

from __future__ import annotations

import warnings

import dagster as dg

from quant_assets.defs import (
    automation,
    backtests,
    drift,
    features,
    jobs,
    lineage,
    models,
    promotion,
    raw,
    replay,
    research,
    trading,
)
from quant_assets.defs.executor import engine_executor
from quant_assets.defs.resources import default_resources
from quant_assets.defs.step_outputs import StepOutputsIOManager

MODULES = (raw, features, models, promotion, trading, backtests, drift, lineage, jobs, research, replay, automation)

RESOURCES = default_resources()
RESOURCES["io_manager"] = StepOutputsIOManager(lake=RESOURCES["lake"])

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # load_definitions_from_modules is marked preview
    defs = dg.load_definitions_from_modules(MODULES, resources=RESOURCES, executor=engine_executor)

"""The one Definitions object, assembled from the defs modules: every asset, job, schedule and sensor they
define at module level is in it, so a new one needs no edit here. The resources are the deployment's,
configured from the environment when a run launches (defs/resources.py)."""

from __future__ import annotations

import warnings

import dagster as dg

from quant_assets.defs import automation, backtests, drift, features, jobs, models, raw
from quant_assets.defs.resources import default_resources

MODULES = (raw, features, models, backtests, drift, jobs, automation)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)  # load_definitions_from_modules is marked preview
    defs = dg.load_definitions_from_modules(MODULES, resources=default_resources())

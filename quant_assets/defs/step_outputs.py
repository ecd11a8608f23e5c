"""Step outputs beside the lake, so a step on another machine needs no disk shared with the one before it.

Dagster passes an asset's or op's return value to the next step through an IO manager; its default keeps
them under ``$DAGSTER_HOME/storage`` on the machine that ran the step. This one pickles them under
``<data root>/_step_outputs/`` instead: a local directory for the local default, the bucket for an ``s3://``
root (with the lake's own endpoint and credentials), which every Celery worker reaches. The values are small
(paths, fingerprints, sweep cells and their results); the lake's data never goes through here.
"""

from __future__ import annotations

import pickle

import dagster as dg
from upath import UPath

from quant_assets.defs.resources import LakeResource

STEP_OUTPUTS = "_step_outputs"


class _PickledUPathIOManager(dg.UPathIOManager):
    extension = ".pickle"

    def dump_to_path(self, context: dg.OutputContext, obj, path: UPath) -> None:
        path.write_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def load_from_path(self, context: dg.InputContext, path: UPath):
        return pickle.loads(path.read_bytes())


class StepOutputsIOManager(dg.ConfigurableIOManagerFactory):
    """Pickled step outputs under ``<data root>/_step_outputs`` (see the module docstring)."""

    lake: LakeResource

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.UPathIOManager:
        base = self.lake.path / STEP_OUTPUTS
        return _PickledUPathIOManager(base_path=base if isinstance(base, UPath) else UPath(base))

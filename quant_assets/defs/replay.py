"""``replay_job``: a registered model (or one of its backtests) replayed from the launchpad (core/registry/replay.py);
the report shows on the op's output, one table per artifact and the environment's differences, and the run fails
when anything differs."""

import shutil
import tempfile
from pathlib import Path

import dagster as dg

from quant_assets.core.registry import artifacts, replay
from quant_assets.core.research.snapshots import SnapshotError
from quant_assets.defs.config import ReplayConfig
from quant_assets.defs.resources import LakeResource, RegistryResource
from quant_assets.provenance import code_version


@dg.op(
    description="Rebuild the target's snapshot from the raw lake as known at its as-of with today's feature code, "
    "retrain it with its recorded configuration, rescore its prediction days, rerun its backtests, and compare each "
    "artifact and the environment with what was recorded; fails on any difference."
)
def replay_model(context: dg.OpExecutionContext, config: ReplayConfig, lake: LakeResource, registry: RegistryResource):
    scratch = Path(config.scratch) if config.scratch else Path(tempfile.mkdtemp(prefix="quant-replay-"))
    if config.scratch and scratch.exists() and any(scratch.iterdir()):
        raise dg.Failure(f"scratch {scratch} is not empty: give a new or empty directory")
    try:
        with registry.connect() as conn:
            report = replay.replay(
                conn, lake.path, scratch, config.target, code_version=code_version(lake.code_version)
            )
    except (replay.ReplayError, SnapshotError, artifacts.ArtifactTampered) as exc:
        raise dg.Failure(str(exc)) from None
    finally:
        if not config.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    context.log.info(report.text())
    yield dg.Output(report.identical, metadata=_metadata(report))
    if not report.identical:
        differ = [a.name for a in report.artifacts if not a.identical] + (["environment"] if report.environment else [])
        raise dg.Failure(f"{report.model} does not replay as recorded; differing: {', '.join(differ)} (see the output)")


def _metadata(report: replay.Report) -> dict:
    """The verdict, one table per artifact (recorded, replayed, why), the environment's differences, the notes."""
    out = {
        "model": dg.MetadataValue.text(report.model),
        "result": dg.MetadataValue.text("identical" if report.identical else "differs"),
        "artifacts": dg.MetadataValue.md(report.table()[["artifact", "result"]].to_markdown(index=False)),
    }
    for row in report.table().itertuples(index=False):
        lines = [("result", row.result), ("recorded", row.recorded), ("replayed", row.replayed), ("why", row.why)]
        table = "| | |\n| --- | --- |\n" + "\n".join(f"| {k} | {v or '-'} |" for k, v in lines)
        out[row.artifact] = dg.MetadataValue.md(table)
    env = report.environment_table()
    out["environment"] = dg.MetadataValue.md(env.to_markdown(index=False) if len(env) else "as recorded")
    out["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in report.notes))
    return out


@dg.job(
    tags={"quant/trigger": "replay"},
    description="Replay a registered model or backtest (model:<name>:vN or backtest:<id>) in a scratch data root "
    "and report, per artifact, identical or differs with the environment's differences; fails on any difference. "
    "`quant-assets replay` does the same.",
)
def replay_job():
    replay_model()

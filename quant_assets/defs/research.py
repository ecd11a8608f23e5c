"""Feature research from the UI's launchpad: ``feature_research_job`` evaluates a candidate feature from the raw
lake, without a backfill (core/research/feature_research.py), and shows its figures and tear sheet."""

from pathlib import Path

import dagster as dg

from quant_assets.core.research import feature_research
from quant_assets.core.research.candidate import CandidateError
from quant_assets.defs import plots
from quant_assets.defs.config import FeatureResearchConfig
from quant_assets.defs.resources import LakeResource
from quant_assets.paths import PROJECT_ROOT


def candidate_spec(spec: str) -> str:
    """A relative ``path.py:NAME`` is taken from the project root: a step's working directory is the launcher's."""
    target, sep, name = spec.rpartition(":")
    if sep and (target.endswith(".py") or "/" in target) and not Path(target).is_absolute():
        return f"{PROJECT_ROOT / target}:{name}"
    return spec


@dg.op(
    description="A candidate feature's IC decay, quantile returns, persistence, coverage, correlation with the "
    "stored features and lookahead guards, point in time from the raw lake; fails when a guard fails."
)
def evaluate_candidate(context: dg.OpExecutionContext, config: FeatureResearchConfig, lake: LakeResource):
    try:
        report = feature_research.evaluate(
            lake.path, candidate_spec(config.candidate), config.start, config.end,
            guard_days=config.guard_days, store=lake.feature_store(),
        )  # fmt: skip
    except (CandidateError, ValueError) as exc:
        raise dg.Failure(str(exc)) from None
    png, figures = feature_research.write(report, config.out_dir or lake.path / "research")
    context.log.info(f"tear sheet {png}, figures {figures}")
    yield dg.Output(str(figures), metadata=_metadata(report, png))
    if not report.lookahead_passed:
        failed = [name for name, guard in report.guards.items() if not guard.passed]
        raise dg.Failure(
            f"lookahead guard(s) {', '.join(failed)} failed: the candidate's values depend on more than the inputs "
            "known at their time; its figures are not evidence",
            metadata={"failures": dg.MetadataValue.md("\n".join(f"- {m}" for g in failed
                                                                for m in report.guards[g].failures))},
        )  # fmt: skip


def _metadata(report: feature_research.Report, png) -> dict:
    figures = report.figures()
    guards = {name: "passed" if g["passed"] else "FAILED" for name, g in figures["lookahead"].items()}
    return {
        "candidate": f"{report.feature.name}@{report.feature.version}",
        "window": f"{report.start}..{report.end} ({len(report.values)} sessions)",
        "ic_decay": dg.MetadataValue.md(report.ic_summary().round(4).to_markdown()),
        "quantile_returns_bps": dg.MetadataValue.md((report.quantiles * 1e4).round(2).to_frame("bps").to_markdown()),
        "persistence": dg.MetadataValue.json(figures["persistence"]),
        "coverage": dg.MetadataValue.float(float(report.overall_coverage)),
        "correlations": dg.MetadataValue.md(
            report.correlations.round(3).to_markdown() if len(report.correlations) else "no stored feature"
        ),
        "lookahead_guards": dg.MetadataValue.json(guards),
        "tear_sheet": plots.png_markdown(png.read_bytes(), "tear sheet"),
        "tear_sheet_path": dg.MetadataValue.path(str(png)),
    }


@dg.job(
    tags={"quant/trigger": "research"},
    description="Evaluate a candidate feature (a FeatureDef in a file or module) point in time over a window, from "
    "the raw lake, with no backfill: launch from the launchpad with its path and the window. The figures and the "
    "tear sheet show on the op's output; `quant-assets research feature` does the same.",
)
def feature_research_job():
    evaluate_candidate()

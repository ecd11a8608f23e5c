"""feature_research_job on a Postgres-backed instance: the figures and the inline tear sheet on its output, the
files where the metadata says; a candidate that cannot be evaluated fails the run with the reason."""

import json

from quant_assets.defs.research import feature_research_job
from quant_assets.defs.resources import LakeResource
from quant_assets.defs.step_outputs import StepOutputsIOManager


def _run(instance, lake, tmp_path, candidate: str):
    resource = LakeResource(root=str(lake))
    config = {"candidate": candidate, "start": "2024-03-01", "end": "2024-04-30", "guard_days": 3,
              "out_dir": str(tmp_path / "out")}  # fmt: skip
    return feature_research_job.execute_in_process(
        run_config={"ops": {"evaluate_candidate": {"config": config}}},
        instance=instance,
        resources={"lake": resource, "io_manager": StepOutputsIOManager(lake=LakeResource(root=str(tmp_path)))},
        raise_on_error=False,
    )


def test_the_job_shows_the_figures_and_the_tear_sheet(dagster_instance, feature_lake, tmp_path):
    result = _run(dagster_instance, feature_lake, tmp_path, "examples/candidate_feature.py:INTRADAY_REVERSAL")
    assert result.success
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    meta = output.event_specific_data.metadata
    assert meta["candidate"].value.startswith("intraday_reversal_3@")
    assert meta["window"].value == "2024-03-01..2024-04-30 (42 sessions)"
    assert meta["tear_sheet"].value.startswith("![tear sheet](data:image/png;base64,iVBORw0KGgo")
    assert "| horizon |" in meta["ic_decay"].value.replace("|   horizon |", "| horizon |")
    assert meta["lookahead_guards"].value == dict.fromkeys(
        ["no_lookahead_recompute", "date_blind_recompute", "ingest_not_before_inputs"], "passed"
    )
    figures = json.loads((tmp_path / "out" / result.output_for_node("evaluate_candidate").split("/")[-1]).read_text())
    assert meta["coverage"].value == figures["coverage"]["overall"] == 1.0
    assert meta["tear_sheet_path"].value.endswith("_2024-03-01_2024-04-30.png")


def test_a_candidate_that_cannot_be_evaluated_fails_the_run_with_the_reason(dagster_instance, feature_lake, tmp_path):
    result = _run(dagster_instance, feature_lake, tmp_path, "examples/candidate_feature.py:NOPE")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "has no NOPE; it defines the FeatureDef(s) INTRADAY_REVERSAL" in failure.event_specific_data.error.message

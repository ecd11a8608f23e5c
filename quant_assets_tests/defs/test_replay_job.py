"""replay_job on a Postgres-backed instance: a freshly trained model's replay succeeds with every artifact identical in
its output's metadata; with a recorded library version that is not today's the run fails and the output names it."""

from __future__ import annotations

from quant_assets.core import environment
from quant_assets.core.storage import pg
from quant_assets.defs.replay import replay_job
from quant_assets.defs.resources import LakeResource, RegistryResource
from quant_assets.defs.step_outputs import StepOutputsIOManager
from quant_assets_tests.core.registry.helpers import base_lake, registered


def _run(instance, root, url, tmp_path, target: str):
    resources = {
        "lake": LakeResource(root=str(root)),
        "registry": RegistryResource(url=url, model_name="replayed"),
        "io_manager": StepOutputsIOManager(lake=LakeResource(root=str(tmp_path / "outputs"))),
    }
    result = replay_job.execute_in_process(
        run_config={"ops": {"replay_model": {"config": {"target": target}}}},
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    return result, output.event_specific_data.metadata


def test_the_job_shows_each_artifact_and_fails_on_a_recorded_environment_that_differs(
    dagster_instance, tmp_path, tmp_path_factory, pg_db
):
    root = tmp_path / "lake"
    ref, backtest = registered(base_lake(tmp_path_factory), root, pg_db)
    result, meta = _run(dagster_instance, root, pg_db, tmp_path, ref.node)
    assert result.success and meta["result"].value == "identical" and meta["model"].value == ref.node
    for artifact in ("snapshot fingerprint", "artifact sha256", "predictions", f"{backtest} metrics"):
        assert f"| {artifact} " in meta["artifacts"].value and "| result | identical |" in meta[artifact].value
    assert meta["environment"].value == "as recorded"

    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute("""UPDATE quant.model_trainings SET environment = environment || '{"lightgbm": "0.0.1"}'""")
    result, meta = _run(dagster_instance, root, pg_db, tmp_path, backtest)
    assert not result.success and meta["result"].value == "differs"
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert (
        f"{ref.node} does not replay as recorded; differing: environment (see"
        in failure.event_specific_data.error.message
    )
    now = environment.versions()["lightgbm"]
    assert f"| training key  | lightgbm | 0.0.1      | {now}" in meta["environment"].value, meta["environment"].value

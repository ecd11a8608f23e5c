"""The executor every job runs on: the run config picks the engine, the default is the multiprocess one, and
choosing celery where dagster-celery is not installed fails the run with one line naming the extra.

A one-op job that returns its process id runs on a real (temporary, on-disk) instance through ``execute_job``,
in this process; Celery itself, with a broker and a worker, is test_celery_sweep.py's.
"""

from __future__ import annotations

import importlib
import os
import sys

import dagster as dg
import pytest

from quant_assets.definitions import defs
from quant_assets.defs import executor as executor_module


@dg.op
def where() -> list[int]:
    """The step's pid, its parent's, and whether LightGBM was imported before the step ran: the test module does
    not import it, so only a fork of a server that preloaded it has it."""
    return [os.getpid(), os.getppid(), int("lightgbm" in sys.modules)]


def pid_job() -> dg.JobDefinition:
    """Module-level, so a step process can rebuild it; on the executor as ``executor_module`` now holds it."""

    @dg.job(executor_def=executor_module.engine_executor)
    def pid_job():
        where()

    return pid_job


def _run(instance: dg.DagsterInstance, run_config: dict) -> tuple[bool, int | None, set[int], list]:
    """Success, the op's pid and its parent's, the pids of the step events, and the run's failure events."""
    with dg.execute_job(dg.reconstructable(pid_job), instance, run_config=run_config) as result:
        output = tuple(result.output_for_node("where")) if result.success else None
        events = result.all_events
    step_pids = {e.pid for e in events if e.step_key and e.event_type == dg.DagsterEventType.STEP_SUCCESS}
    return result.success, output, step_pids, [e for e in events if e.event_type == dg.DagsterEventType.RUN_FAILURE]


def test_every_job_runs_on_the_one_executor():
    names = ["ingest_job", "daily_job", "retrain_job", "promotion_job", "sweep_job", "compaction_job", "__ASSET_JOB"]
    assert {defs.resolve_job_def(n).executor_def.name for n in names} == {executor_module.engine_executor.name}
    assert not any(j.name.endswith("_celery") for j in defs.resolve_all_job_defs())


def test_run_config_selects_in_process_and_defaults_to_multiprocess_forked_from_a_forkserver(tmp_path):
    spawn = {"execution": {"config": {"multiprocess": {"start_method": {"spawn": {}}}}}}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        in_process = _run(instance, {"execution": {"config": {"in_process": {}}}})
        default = _run(instance, {})
        spawned = _run(instance, spawn)
    assert in_process[0] and in_process[1][:2] == (os.getpid(), os.getppid()) and in_process[2] == {os.getpid()}
    ok, (pid, parent, preloaded), step_pids, _ = default
    assert ok and step_pids == {pid} and pid != os.getpid()  # a step process of its own,
    assert parent != os.getpid() and preloaded  # forked by the forkserver, which had imported PRELOAD
    ok, (pid, parent, preloaded), step_pids, _ = spawned
    assert ok and step_pids == {pid} and parent == os.getpid()  # spawn, when the run config asks for it
    assert not preloaded


def test_the_forkserver_is_the_default_start_method_only_where_none_is_named():
    assert executor_module.with_start_method({"max_concurrent": 2}) == {
        "max_concurrent": 2,
        "start_method": {"forkserver": {"preload_modules": list(executor_module.PRELOAD)}},
    }
    named = {"start_method": {"spawn": {}}}
    assert executor_module.with_start_method(named) == named


def test_engine_config_reads_the_run_config_block():
    assert executor_module.engine_config({}, "multiprocess") == {}
    assert executor_module.engine_config({}, "celery") is None
    mp = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
    assert executor_module.engine_config(mp, "multiprocess") == {"max_concurrent": 2}
    assert executor_module.engine_config(mp, "celery") is None
    assert executor_module.engine_config({"execution": {"config": {"celery": None}}}, "celery") == {}


@pytest.fixture
def without_dagster_celery(monkeypatch):
    """quant_assets.defs.executor as imported where the 'celery' extra is not installed; restored after."""
    monkeypatch.setitem(sys.modules, "dagster_celery", None)  # `import dagster_celery` raises ImportError
    yield importlib.reload(executor_module)
    monkeypatch.undo()
    importlib.reload(executor_module)


def test_celery_without_the_extra_fails_the_run_in_one_line(without_dagster_celery, tmp_path):
    celery = {"execution": {"config": {"celery": {"broker": "pyamqp://guest@127.0.0.1//"}}}}
    with pytest.raises(dg.DagsterUnmetExecutorRequirementsError) as raised:
        without_dagster_celery.check_engine(celery)
    assert str(raised.value) == without_dagster_celery.CELERY_MISSING
    assert "pip install -e '.[celery]'" in str(raised.value) and "\n" not in str(raised.value)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        ok, _, step_pids, (failure,) = _run(instance, celery)
    assert not ok and not step_pids
    error = failure.event_specific_data.error
    assert error.cls_name == "DagsterUnmetExecutorRequirementsError"
    assert error.message.strip().endswith(without_dagster_celery.CELERY_MISSING)
    # The other engines are untouched.
    without_dagster_celery.check_engine({"execution": {"config": {"in_process": {}}}})


def test_a_job_named_on_the_cli_runs_with_its_own_run_config_under_the_given_one():
    """``quant-assets materialize daily_job KEY`` runs daily_job in process, as its schedule's runs do (Dagster
    applies a partitioned job's config to the runs it launches, not to ``execute_job``); a run config given on
    the command line wins."""
    import datetime as dt

    from quant_assets.cli.launch import _run_config
    from quant_assets.cli.stage import Stage

    job, day = defs.resolve_job_def("daily_job"), (dt.date(2024, 7, 1), dt.date(2024, 7, 1))
    assert _run_config(job, Stage("t", [], day, {}, "daily_job")) == {"execution": {"config": {"in_process": {}}}}
    mp = {"execution": {"config": {"multiprocess": {}}}}
    assert _run_config(job, Stage("t", [], day, mp, "daily_job")) == mp
    assert _run_config(job, Stage("t", ["raw_prices"], day, {})) == {}  # assets: the default engine

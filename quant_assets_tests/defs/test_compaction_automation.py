"""Compaction without an operator: the sensor after runs and backfills that wrote features, the morning schedule,
both running by default. The lake is a toy feature family written with the core API; the runs that "wrote" it
are stand-in assets under the feature assets' keys, materialised on a real (Postgres) instance."""

import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

from quant_assets.core import sessions
from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import family_dir, write_day
from quant_assets.defs import automation
from quant_assets.defs.automation import compact_after_writes, compaction_schedule
from quant_assets.defs.jobs import compaction_job
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.resources import AutomationRunConfig, LakeResource

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def level(panel):
    return panel["close"].iloc[-1]


TOY = FeatureFamily(
    "toy", "raw_prices", ("close",), (FeatureDef("x", "toy", level, "toy", ("raw_prices",), 1, pd.Timedelta(0)),), "toy"
)


@pytest.fixture
def lake(tmp_path):
    """A file per session of 2024-01-02..2024-03-15 (22, 21 and 11 per month) of a one-feature family."""
    root = tmp_path / "lake"
    for day in sessions.sessions_between("2024-01-02", "2024-03-15"):
        close = pd.Timestamp(sessions.session_close(day))
        rows = pd.DataFrame({"entity_key": ["A", "B"], "event_time": close, "ingest_time": close, "x": [1.0, 2.0]})
        write_day(root, TOY, day, rows, {"producer": "test"})
    return root


def _stand_in(name: str) -> dg.AssetsDefinition:
    """An asset under a feature asset's key that writes nothing: its materialisations are what the sensor reads."""

    @dg.asset(name=name, partitions_def=trading_days, backfill_policy=dg.BackfillPolicy.single_run())
    def _asset() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    return _asset


def _write(instance, name: str, first: str, last: str, **tags) -> None:
    """A single run materialising ``name`` for the sessions first..last, as a range run does."""
    tags = {RANGE_START: first, RANGE_END: last, **tags}
    assert dg.materialize([_stand_in(name)], instance=instance, tags=tags).success


def _tick(instance, root, cursor):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"lake": LakeResource(root=str(root)), "automation_run_config": AutomationRunConfig()},
    )
    result = compact_after_writes(context)
    return list(result.run_requests or []), result.cursor, result.skip_reason and result.skip_reason.skip_message


def test_compaction_runs_by_default():
    from quant_assets.definitions import defs

    sensor = next(s for s in defs.sensors if s.name == "compact_after_writes")
    schedule = next(s for s in defs.schedules if s.name == "compaction_schedule")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING and schedule.job_name == compaction_job.name
    assert schedule.cron_schedule == "0 6 * * *"  # daily, not monthly


def test_sensor_requests_the_complete_months_a_run_wrote_and_a_backfill_once_it_is_over(
    lake, dagster_instance, monkeypatch
):
    monkeypatch.setattr(automation, "exchange_today", lambda: dt.date(2024, 3, 15))
    _write(dagster_instance, "price_features", "2024-01-02", "2024-03-15")
    requests, cursor, _ = _tick(dagster_instance, lake, None)
    (request,) = requests  # March is the current month: it waits for its end
    assert request.job_name in (None, compaction_job.name)
    assert request.run_config["ops"]["compact_feature_files"]["config"]["months"] == ["2024-01", "2024-02"]
    assert request.tags["quant/trigger"] == "written" and request.tags["quant/months"] == "2024-01..2024-02"
    assert _tick(dagster_instance, lake, cursor)[0] == []  # nothing new

    assert compaction_job.execute_in_process(
        run_config=request.run_config, resources={"lake": LakeResource(root=str(lake))}
    ).success
    records = sorted(p.name[:7] for p in (family_dir(lake, TOY) / "_compacted").glob("*.json"))
    assert records == ["2024-01", "2024-02"]
    _write(dagster_instance, "alt_features", "2024-02-01", "2024-02-05")  # a rerun of compacted days
    requests, cursor, skipped = _tick(dagster_instance, lake, cursor)
    assert requests == [] and "no complete month" in skipped  # nothing due: no run that would do nothing

    # A backfill: its months wait until it is over, whatever order its runs finish in.
    monkeypatch.setattr(automation, "exchange_today", lambda: dt.date(2024, 4, 2))
    backfill = PartitionBackfill("bf1", BulkActionStatus.REQUESTED, False, {}, time.time())
    dagster_instance.add_backfill(backfill)
    _write(dagster_instance, "price_features", "2024-03-11", "2024-03-15", **{"dagster/backfill": "bf1"})
    requests, cursor, skipped = _tick(dagster_instance, lake, cursor)
    assert requests == [] and "backfills still running: bf1" in skipped
    assert json.loads(cursor)["held"] == {"bf1": ["2024-03"]}
    dagster_instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    requests, cursor, _ = _tick(dagster_instance, lake, cursor)
    assert [r.run_config["ops"]["compact_feature_files"]["config"]["months"] for r in requests] == [["2024-03"]]
    assert json.loads(cursor)["held"] == {}


@pytest.mark.parametrize("day, expected", [("2024-03-01", ["2024-02"]), ("2024-03-20", ["2024-02"])])
def test_schedule_compacts_the_month_just_ended_until_it_is_done(lake, day, expected):
    when = dt.datetime.fromisoformat(f"{day}T06:00").replace(tzinfo=ZoneInfo(sessions.EXCHANGE_TZ))
    resources = {"lake": LakeResource(root=str(lake)), "automation_run_config": AutomationRunConfig()}
    request = compaction_schedule(dg.build_schedule_context(scheduled_execution_time=when, resources=resources))
    assert request.run_config["ops"]["compact_feature_files"]["config"]["months"] == expected
    assert request.run_key == f"compaction:{expected[0]}:{day}"
    assert compaction_job.execute_in_process(run_config=request.run_config, resources=resources).success
    again = compaction_schedule(dg.build_schedule_context(scheduled_execution_time=when, resources=resources))
    assert isinstance(again, dg.SkipReason) and "2024-02 is compacted" in again.skip_message
    empty = when.replace(month=1)  # December 2023: no files at all
    assert isinstance(
        compaction_schedule(dg.build_schedule_context(scheduled_execution_time=empty, resources=resources)),
        dg.SkipReason,
    )

"""The instance's event log (quant_assets/defs/event_log.py, named in dagster.yaml): a partition range's planned
materialisation events (written as one batch) and planned asset-check rows (from one serialisation of their
event) are the rows dagster-postgres writes.

A run of a range of a partitioned asset with a check goes through both storages on a real Postgres, with
DAGSTER_EVENT_BATCH_SIZE set as the settings set it; each check's execution records (one planned per partition,
and the range's evaluation), the planned events and the asset's row must be the same, apart from the run's own
id and the times.
"""

import dagster as dg
import yaml

from quant_assets import settings
from quant_assets.defs.event_log import EventLogStorage
from quant_assets.paths import PROJECT_ROOT

days = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.asset(partitions_def=days, backfill_policy=dg.BackfillPolicy.single_run(), check_specs=[
    dg.AssetCheckSpec("positive", asset="ranged")
])  # fmt: skip
def ranged(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=len(context.partition_keys) == 3)])


def _records(url: str, home, storage: dict) -> list[tuple]:
    """(partition, status, the recorded event's type) of the check's executions in one range run."""
    with dg.instance_for_test(overrides=storage, temp_dir=str(home)) as instance:
        span = {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-03"}
        result = dg.materialize([ranged], instance=instance, tags=span)
        assert result.success
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("ranged"), "positive"), limit=10
        )
        planned = instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        ).records
        (asset,) = instance.get_asset_records([dg.AssetKey("ranged")])
        assert asset.asset_entry.last_run_id == result.run_id
        checks = sorted(
            (str(r.partition), r.status.value, r.event.dagster_event.event_type_value)
            for r in records
            if r.run_id == result.run_id
        )
        return checks + [
            ("planned", r.partition_key, r.event_log_entry.dagster_event.asset_key.path[0]) for r in planned
        ]


def test_range_runs_store_the_same_check_records_as_dagster_postgres(pg_db, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", settings.default("DAGSTER_EVENT_BATCH_SIZE"))
    ours = {"event_log_storage": {"module": "quant_assets.defs.event_log", "class": "EventLogStorage",
                                  "config": {"postgres_url": pg_db}},
            "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage",
                            "config": {"postgres_url": pg_db}}}  # fmt: skip
    theirs = {"storage": {"postgres": {"postgres_url": pg_db}}}
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    mine = _records(pg_db, tmp_path / "a", ours)
    planned = [(f"2024-01-0{d}", "PLANNED", "ASSET_CHECK_EVALUATION_PLANNED") for d in (1, 2, 3)]
    materializations = [("planned", f"2024-01-0{d}", "ranged") for d in (1, 2, 3)]  # in order, one per partition
    assert mine == [*planned, ("None", "SUCCEEDED", "ASSET_CHECK_EVALUATION"), *materializations]
    assert _records(pg_db, tmp_path / "b", theirs) == mine


def test_dagster_yaml_names_this_event_log_storage():
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    assert config["event_log_storage"]["module"] == EventLogStorage.__module__
    assert config["event_log_storage"]["class"] == EventLogStorage.__name__
    assert "storage" not in config  # the three storages are named one by one

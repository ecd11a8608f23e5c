"""The instance's event log: dagster-postgres's, with the planned asset-check rows of a partition range written
from one serialisation of their event (``dagster.yaml``, ``event_log_storage``).

Dagster 1.13 records a run's planned asset-check evaluations once per partition and serialises the whole event
(its partitions subset, the trading-day partitions' holiday exclusions included) again for every row. A
single-run backfill of the ingest and feature assets over two years (502 partitions, 16 checks) spent about 50 s
of CPU there, in the launching process, before its first step started. Here the event is serialised once per
check; the rows are the same (``test_event_log.py`` compares them with dagster-postgres's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from dagster._core.events import AssetCheckEvaluationPlanned
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from dagster_shared.serdes import serialize_value


class EventLogStorage(PostgresEventLogStorage):
    """dagster-postgres's event log storage, configured as it is (``postgres_url`` or ``postgres_db``)."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> EventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        planned = cast(AssetCheckEvaluationPlanned, event.get_dagster_event().event_specific_data)
        partitions = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert().values([{**row, "partition": p} for p in partitions]))

"""The instance's event log: dagster-postgres's, with a partition range's planned events written in batches and
its planned asset-check rows from one serialisation of their event (``dagster.yaml``, ``event_log_storage``).

Dagster 1.13 records a run's planned asset-check evaluations once per partition and serialises the whole event
(its partitions subset, the trading-day partitions' holiday exclusions included) again for every row. A
single-run backfill of the ingest and feature assets over two years (502 partitions, 16 checks) spent about 50 s
of CPU there, in the launching process, before its first step started. Here the event is serialised once per
check; the rows are the same (``test_event_log.py`` compares them with dagster-postgres's own).

The same run also plans one materialisation per asset and partition: 2,008 events for those four assets, each
written by dagster-postgres on a connection of its own (its pool opens one per use), one after the other: about
a minute on a loaded machine. Dagster hands a run's planned events over as one batch when
``DAGSTER_EVENT_BATCH_SIZE`` is set (a default of ``quant_assets/settings.py``); dagster-postgres writes a batch of
materialisations as one insert but falls back to one event at a time for planned ones. Here a batch of planned
materialisations is one insert too, with the asset rows updated as its last event per asset would.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, cast

from dagster._core.events import AssetCheckEvaluationPlanned, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
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

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Each stretch of planned materialisations as one insert; the other events as dagster-postgres stores
        them. The stretches keep the batch's order, so the events' storage ids keep it too."""
        for planned, stretch in itertools.groupby(events, key=_is_planned_materialization):
            stretch = list(stretch)
            if planned and len(stretch) > 1:
                self._store_planned(stretch)
            else:
                super().store_event_batch(stretch)

    def _store_planned(self, events: list[EventLogEntry]) -> None:
        """What ``store_event`` does for each planned materialisation, in one insert and one transaction: the
        event rows, their tags, and each asset's row as its last planned event leaves it."""
        with self._connect() as conn:
            rows = conn.execute(self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id))
            ids = [int(row[0]) for row in rows.fetchall()]
        last = {event.get_dagster_event().asset_key: (event, i) for event, i in zip(events, ids, strict=True)}
        with self.index_transaction() as conn:
            self._store_asset_event_tags(conn, events, ids)
            for event, i in last.values():
                self._store_asset_event(conn, event, i)

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


def _is_planned_materialization(event: EventLogEntry) -> bool:
    return event.get_dagster_event().event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED

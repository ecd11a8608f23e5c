"""Daily scoring: the champion ranks the day's universe from features known at the decision time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa

from quant_assets.core import lake
from quant_assets.core import time as qtime
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.models import Ensemble

DATASET = "predictions"
STALE_SESSIONS = 5  # read features from this many sessions back; only the previous session's are used
SCHEMA = pa.schema(
    [
        ("entity_key", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("prediction", pa.float64()),
        ("ingest_time", pa.timestamp("us", tz="UTC")),
    ]
)


def score_day(store: FeatureStore, model: Ensemble, model_node: str, day: dt.date, universe: list[str]) -> pd.DataFrame:
    """Predictions for ``day`` for every name whose price features are fresh at its decision time.

    event_time = ingest_time = the decision time: a prediction is made then, from what was known then.
    """
    when = qtime.decision_time(day)
    pit = store.get_latest(
        universe, model.features, when, since=qtime.session_offset(day, -STALE_SESSIONS), until=day
    )  # later partitions hold only events after the decision time: a backfill of old days does not read them
    fresh = pit["event_time_price"] == qtime.session_close(qtime.previous_session(day))
    pit = pit[fresh.to_numpy()]
    return pd.DataFrame(
        {
            "entity_key": pit["entity_key"].astype(str).to_numpy(),
            "event_time": when,
            "model": model_node,
            "prediction": model.predict(pit) if len(pit) else [],
            "ingest_time": when,
        }
    )


def write_day(root: Path, day: dt.date, predictions: pd.DataFrame) -> lake.WriteResult:
    """Append; the same model scoring the same day again adds nothing."""
    return lake.append_new_versions(
        root, DATASET, day, predictions, ["entity_key", "model"], ["prediction"], qtime.decision_time(day), SCHEMA
    )

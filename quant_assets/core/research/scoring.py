"""Daily scoring: the champion ranks the day's universe from features known at the decision time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from quant_assets.core import sessions
from quant_assets.core.features import staleness
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.research.training import Ensemble
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location

DATASET = "predictions"
SCHEMA = pa.schema(
    [
        ("entity_key", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("prediction", pa.float64()),
        ("ingest_time", pa.timestamp("us", tz="UTC")),
    ]
)


def scoring_frame(store: FeatureStore, features: list[str], day: dt.date, universe: list[str]) -> pd.DataFrame:
    """The model's inputs for ``day``: each name's features as known at its decision time, under the one
    staleness rule (``features.staleness``) that training snapshots use too; names without usable prices
    are left out. Holds ``entity_key``, the features and each family's answering event time."""
    when = sessions.decision_time(day)
    pit = store.get_latest(universe, features, when, since=staleness.earliest_partition(day), until=day)
    # later partitions hold only events after the decision time: a backfill of old days does not read them
    pit, usable = staleness.apply(pit, [day] * len(pit), store.families(features))
    return pit[usable].reset_index(drop=True)


def score_day(store: FeatureStore, model: Ensemble, model_node: str, day: dt.date, universe: list[str]) -> pd.DataFrame:
    """Predictions for ``day`` for every name with usable features at its decision time."""
    return _predictions(model, model_node, day, scoring_frame(store, model.features, day, universe))


def _predictions(model: Ensemble, model_node: str, day: dt.date, frame: pd.DataFrame) -> pd.DataFrame:
    """event_time = ingest_time = the decision time: a prediction is made then, from what was known then."""
    when = sessions.decision_time(day)
    return pd.DataFrame(
        {
            "entity_key": frame["entity_key"].astype(str).to_numpy(),
            "event_time": when,
            "model": model_node,
            "prediction": model.predict(frame) if len(frame) else [],
            "ingest_time": when,
        }
    )


@dataclass(frozen=True)
class DayScores:
    """One scored and stored day: its predictions, rows newly written, and the gaps in optional inputs."""

    day: dt.date
    predictions: pd.DataFrame
    written: int
    gaps: list[staleness.Gap]


def score_days(
    root: Location, store: FeatureStore, model: Ensemble, model_node: str, days: list[dt.date], universe: list[str]
) -> list[DayScores]:
    """Score and store each day, saying per day which optional inputs were missing and for how long."""
    families = store.families(model.features)
    out = []
    for day in days:
        frame = scoring_frame(store, model.features, day, universe)
        predictions = _predictions(model, model_node, day, frame)
        written = write_day(root, day, predictions).rows_written
        gaps = staleness.gaps(frame, day, families, store.newest_partitions(model.features, day))
        out.append(DayScores(day, predictions, written, gaps))
    return out


def write_day(root: Location, day: dt.date, predictions: pd.DataFrame) -> lake.WriteResult:
    """Append; the same model scoring the same day again adds nothing."""
    return lake.append_new_versions(
        root, DATASET, day, predictions, ["entity_key", "model"], ["prediction"], sessions.decision_time(day), SCHEMA
    )


def stored(root: Location, node: str, days: list[dt.date]) -> dict[dt.date, pd.DataFrame]:
    """The stored predictions of model ``node`` (date, entity_key, prediction; each name's latest version) on
    each of ``days`` it scored: what the book trades, a shadow's evidence and a track record read."""
    out = {}
    for day, frame in lake.read_partitions(root, DATASET, days).items():
        mine = frame[frame["model"] == node] if len(frame) else frame
        if len(mine):
            out[day] = lake.latest_versions(mine, ["entity_key"])[["entity_key", "prediction"]].assign(date=day)
    return out


def scored_days(root: Location, after: dt.date) -> list[dt.date]:
    """The sessions after ``after`` with stored predictions (of any model), from the dataset's listing."""
    days = {sessions.as_date(p.parent.name.removeprefix("date=")) for p in lake.dataset_files(root, DATASET)}
    return sorted(d for d in days if d > after)


def models_scored(root: Location, first: dt.date, last: dt.date, name: str) -> list[str]:
    """Nodes (``model:<name>:vN``, by version) of the models of ``name`` with predictions stored for any session
    in [first, last]. Reads the model column of those partitions only: this module owns the predictions
    dataset's layout, so the monitoring asks it rather than globbing the lake itself. duckdb is imported
    here, not with the module, which is on the Dagster definitions' import path (benchmarks/RESULTS.md)."""
    files = [
        f
        for d in sessions.sessions_between(first, last)
        for f in lake.partition_files(lake.partition_dir(root, DATASET, d))
    ]
    if not files:
        return []
    with fs.duckdb_connection(files) as con:
        rows = con.sql(
            "SELECT DISTINCT model FROM read_parquet(?) WHERE starts_with(model, ?)",
            params=[[str(f) for f in files], f"model:{name}:v"],
        ).fetchall()
    return sorted((m for (m,) in rows), key=lambda m: int(m.rsplit(":v", 1)[1]))

"""Daily scoring: the champion ranks the day's universe from features known at the decision time.

A day's scores are a function of the model, the universe, the code and the feature files its point-in-time read
answers from (the partitions of its staleness window, ``staleness.earliest_partition(day)``..``day``). Feature
files are content-addressed, so their names are their content. After a day is scored and stored, a receipt
``predictions/date=D/_receipt-<key>.json`` records its outcome (how many predictions, the first few, the gaps in
optional inputs) under the hash of all of that (``fingerprints``). A rerun over days whose inputs have not changed
finds their receipts by listing, once per month, the feature partitions and the receipts, and returns the days
marked ``unchanged`` without reading a feature or a prediction, predicting or writing: the same model scoring the
same inputs again would have added nothing. A late or restated feature file in a day's window, another model
(node or bytes), universe, feature version or scoring code gives another key, and the day is scored as before. A
day no name could be scored on gets no receipt. Receipts are not rows: readers of the dataset take its parts
(``lake.partition_files``). The key also hashes the names of the day's parts as they are once it is stored (as an
ingest receipt's does), so a day whose predictions were lost or deleted is scored and written again; another
model's scores written into the same partition later cost one more scoring of the day that writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from quant_assets.core import sessions
from quant_assets.core.features import staleness
from quant_assets.core.features.files import day_names, partition_day
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.research import training
from quant_assets.core.research.training import Ensemble
from quant_assets.core.storage import fs, lake, receipt
from quant_assets.core.storage.fs import Location
from quant_assets.core.storage.hashing import code_hash, lines_hash

DATASET = "predictions"
PREVIEW_ROWS = 5  # the first predictions of a day its receipt keeps (the asset shows them)
SCHEMA = pa.schema(
    [
        ("entity_key", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()),
        ("prediction", pa.float64()),
        ("ingest_time", pa.timestamp("us", tz="UTC")),
        *lake.PROVENANCE_FIELDS,
    ]
)


def scoring_frame(
    store: FeatureStore, features: list[str], day: dt.date, universe: list[str], known_at=None, ingest_times=False
) -> pd.DataFrame:
    """The model's inputs for ``day``: each name's features as known at its decision time, under the one
    staleness rule (``features.staleness``) that training snapshots use too; names without usable prices
    are left out. Holds ``entity_key``, the features and each family's answering event time (and, asked, its
    ingest time). ``known_at``: the same events (up to the decision time) as known at that later time instead,
    what an explanation compares with the vector scoring saw (core/registry/explain.py)."""
    when = sessions.decision_time(day)
    since, until = staleness.earliest_partition(day), day
    pit = store.get_latest(universe, features, when, since, until, known_at, ingest_times)
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
    """One scored and stored day: its predictions (how many, and the first few), rows newly written, and the gaps
    in optional inputs. ``unchanged``: taken from its receipt, as its inputs have not changed since it was scored
    (nothing was read, predicted or written)."""

    day: dt.date
    rows: int
    written: int
    gaps: list[staleness.Gap]
    head: pd.DataFrame  # its first PREVIEW_ROWS predictions
    unchanged: bool = False
    read: tuple[str, ...] = ()  # a scored day's: the lines naming the feature files its read answers from (lineage)


def score_days(
    root: Location,
    store: FeatureStore,
    model: Ensemble,
    model_node: str,
    days: list[dt.date],
    universe: list[str],
    provenance: Mapping[str, str] | None = None,
) -> list[DayScores]:
    """Score and store each day (its rows stamped with ``provenance``: ``write_day``), saying per day which optional
    inputs were missing and for how long. A day with a receipt for its inputs (``fingerprints``) is taken from it; a
    day scored is given one once stored, unless no name could be scored (the caller fails on such a day: a later run
    scores it again)."""
    read = store.read_inputs(model.features, _windows(days))
    inputs = fingerprints(store, model, model_node, days, universe, read)
    stored_parts = _part_names(root, days)
    kept = receipts(root, {d: lines_hash([inputs[d], *stored_parts.get(d, [])]) for d in days})
    families = store.families(model.features) if len(kept) < len(days) else {}
    out = []
    for day, lines in zip(days, read, strict=True):
        if day in kept:
            out.append(kept[day])
            continue
        frame = scoring_frame(store, model.features, day, universe)
        predictions = _predictions(model, model_node, day, frame)
        written = write_day(root, day, predictions, provenance).rows_written
        gaps = staleness.gaps(frame, day, families, store.newest_partitions(model.features, day))
        scored = DayScores(day, len(predictions), written, gaps, predictions.head(PREVIEW_ROWS), read=tuple(lines))
        if len(predictions):
            parts = [f.name for f in lake.partition_files(lake.partition_dir(root, DATASET, day))]
            receipt.write(_receipt_path(root, day, lines_hash([inputs[day], *parts])), _receipt_body(scored))
        out.append(scored)
    return out


def fingerprints(
    store: FeatureStore,
    model: Ensemble,
    model_node: str,
    days: list[dt.date],
    universe: list[str],
    inputs: list[list[str]] | None = None,
) -> dict[dt.date, str]:
    """Each day's receipt key: the hash of what its scoring depends on. The model (its node, its bytes, hence its
    feature list), the universe and the text of the scoring code, then the day and the lines naming the stored
    feature files its point-in-time read answers from (``FeatureStore.read_inputs``, the window
    ``staleness.earliest_partition(day)``..``day``). Parts are content-addressed: a late or restated file in the
    window adds a name and changes the key. Listed once per month of the range (unless ``inputs`` gives the listing
    already made), never read."""
    scored_by = json.dumps([_code(), model_node, training.sha256(model.to_bytes()), model.features, universe])
    inputs = store.read_inputs(model.features, _windows(days)) if inputs is None else inputs
    return {day: lines_hash([scored_by, day.isoformat(), *lines]) for day, lines in zip(days, inputs, strict=True)}


def _windows(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Each day's point-in-time read window: its oldest usable partition (``staleness``) to the day."""
    return [(staleness.earliest_partition(day), day) for day in days]


def receipts(root: Location, keys: dict[dt.date, str]) -> dict[dt.date, DayScores]:
    """The days of ``keys`` whose receipt for that key is stored, as their receipts say (marked unchanged): one
    listing of the receipts per month, and the matching ones fetched at once (``fs.read_many``)."""
    base = lake.under(root, DATASET)
    present = receipt.present(base, keys)
    found = {d: p for d, k in keys.items() if fs.relative(p := _receipt_path(root, d, k), base) in present}
    blobs = fs.read_many(list(found.values()))
    return {
        d: receipt.read(p, _from_receipt, "a predictions receipt", blob)
        for (d, p), blob in zip(found.items(), blobs, strict=True)
    }


def _part_names(root: Location, days: list[dt.date]) -> dict[dt.date, list[str]]:
    """The names of each day's stored parts, in name order: one listing per month of ``days``."""
    out: dict[dt.date, list[str]] = {}
    for name in day_names(lake.under(root, DATASET), {d.isoformat()[:7] for d in days}):
        out.setdefault(dt.date.fromisoformat(partition_day(name)), []).append(name.partition("/")[2])
    return out


def read_receipt(path: Location) -> DayScores:
    """The day a predictions receipt holds; one that does not read as one raises ``CorruptFile`` naming it."""
    return receipt.read(path, _from_receipt, "a predictions receipt")


def _receipt_path(root: Location, day: dt.date, key: str) -> Location:
    return receipt.path(lake.partition_dir(root, DATASET, day), key)


def _receipt_body(scores: DayScores) -> dict:
    """What a day's receipt holds: its outcome (rows, gaps, first rows), not this run's writes."""
    return {
        "day": scores.day.isoformat(),
        "rows": scores.rows,
        "gaps": [dataclasses.asdict(g) for g in scores.gaps],
        "head": scores.head.to_dict("split", index=False),  # {"columns", "data"}; times as text
    }


def _from_receipt(body: dict) -> DayScores:
    """The day ``_receipt_body`` wrote, its first rows' times typed (built column by column: a tenth of the cost
    of converting a frame, for a receipt per session of a range)."""
    names, rows = body["head"]["columns"], body["head"]["data"]
    head = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    head.update({name: pd.DatetimeIndex(head[name]) for name in ("event_time", "ingest_time")})
    gaps = [staleness.Gap(**g) for g in body["gaps"]]
    day = dt.date.fromisoformat(body["day"])
    return DayScores(day, int(body["rows"]), 0, gaps, pd.DataFrame(head, columns=names), unchanged=True)


def _code() -> str:
    """The text of the code a day's scoring runs: the feature store and staleness rule (the features package),
    this module, the model's prediction, the lake's writer and the calendar."""
    files = (Path(__file__), Path(training.__file__), Path(lake.__file__), Path(sessions.__file__))
    return code_hash(Path(staleness.__file__).parent, *files)


def write_day(
    root: Location, day: dt.date, predictions: pd.DataFrame, provenance: Mapping[str, str] | None = None
) -> lake.WriteResult:
    """Append, each row stamped with ``provenance`` (``lake.PROVENANCE``: the asset, code version and run); the same
    model scoring the same day again adds nothing, whichever run or code version does (the receipt, and the head
    ``DayScores`` keep, hold predictions only, so they are the same whoever scored)."""
    key, values, when = ["entity_key", "model"], ["prediction"], sessions.decision_time(day)
    return lake.append_new_versions(root, DATASET, day, predictions, key, values, when, SCHEMA, provenance)


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

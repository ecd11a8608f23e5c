"""Explain a past prediction: the inputs a model saw at a session's decision time, the prediction recomputed from
its stored artifact against the stored one, and what today's knowledge of the same events would have given.

The vector is read exactly as scoring read it (``scoring.scoring_frame``: the decision time as both cut-offs, the
one staleness rule), from the bitemporal store, so a restatement delivered after the decision does not change it:
the recomputed prediction must equal the stored one bit for bit. "Today's knowledge" keeps the event cut-off at the
decision time and moves the knowledge cut-off to ``known_at`` (``FeatureStore``: two cut-offs), so it shows what
later restatements of those very events changed, never a later event. The rows view (``used_rows``) lists, for a
(model, session), every stored feature row the scoring used, the file holding it and the raw parts its day's
computation read (the partition's ``_inputs-<hash>`` marker, ``units.marked_inputs``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features import staleness, units
from quant_assets.core.features.files import (
    day_names,
    event_column,
    ingest_column,
    months_between,
    partition_day,
    within,
)
from quant_assets.core.features.library import FAMILIES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.registry import artifacts, models
from quant_assets.core.research import scoring
from quant_assets.core.research.training import Ensemble
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location

VECTOR = ["feature", "version", "value", "event_time", "ingest_time"]


class ExplainError(LookupError):
    """What cannot be explained (an unknown model, a session it did not score, a name it did not score then)."""


@dataclass(frozen=True)
class Explanation:
    """One prediction explained: the vector as known then (one row per feature: ``VECTOR``), the prediction
    recomputed from it and the stored one; the same events as known at ``known_at``, the features whose stored row
    changed since (``restated``) and the prediction that vector gives."""

    node: str
    day: dt.date
    ticker: str
    then: pd.DataFrame
    recomputed: float
    stored: float
    known_at: pd.Timestamp
    now: pd.DataFrame
    restated: list[str]
    now_prediction: float

    @property
    def decision_time(self) -> pd.Timestamp:
        return sessions.decision_time(self.day)

    @property
    def identical(self) -> bool:
        """The recomputed prediction is the stored one, bit for bit."""
        return same_bits(self.recomputed, self.stored)


def same_bits(a: float, b: float) -> bool:
    """Two floats with the very same bits (``-0.0`` is not ``0.0``; a NaN only equals its own payload)."""
    bits = np.array([a, b], dtype="float64").view("u8")
    return bool(bits[0] == bits[1])


def _model(conn, spec: str) -> tuple[models.ModelRef, Ensemble]:
    """The registered model ``spec`` (``name:vN``, or a name: its champion, else its latest version) loaded from
    its artifact, verified against the registry's SHA-256."""
    try:
        ref = models.model(conn, spec)
    except (LookupError, ValueError) as exc:
        raise ExplainError(str(exc)) from None
    return ref, artifacts.load_model(conn, ref)


def _stored_day(root: Location, node: str, day: dt.date) -> pd.DataFrame:
    """The stored predictions of ``node`` on ``day`` (entity_key, prediction), refused when it scored none."""
    found = scoring.stored(root, node, [day]).get(day)
    if found is None:
        raise ExplainError(f"{node} has no stored predictions for session {day}: it did not score that day")
    return found.reset_index(drop=True)


def _vector(store: FeatureStore, features: list[str], frame: pd.DataFrame) -> pd.DataFrame:
    """The inputs of ``frame`` (a scoring frame, with ingest times) as rows: entity_key and ``VECTOR``, each
    feature with its stored version, its value and the answering row's event and ingest times."""
    family = store.families(features)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "entity_key": frame["entity_key"].to_numpy(),
                    "feature": f,
                    "version": store.resolve(f)[1],
                    "value": frame[f].to_numpy(),
                    "event_time": frame[event_column(family[f])].to_numpy(),
                    "ingest_time": frame[ingest_column(family[f])].to_numpy(),
                    "family": family[f],
                }
            )
            for f in features
        ],
        ignore_index=True,
    )


def _one(vector: pd.DataFrame, ticker: str) -> pd.DataFrame:
    return vector[vector["entity_key"] == ticker][VECTOR].reset_index(drop=True)


def explain(
    conn, root: Location, store: FeatureStore, spec: str, day: dt.date, ticker: str, known_at: pd.Timestamp
) -> Explanation:
    """Explain ``spec``'s prediction for ``ticker`` on session ``day``: scored again over the names it scored that
    day, as scoring did, and once more for the name with the knowledge cut-off at ``known_at`` (a time after the
    decision: "now")."""
    ref, model = _model(conn, spec)
    stored = _stored_day(root, ref.node, day)
    if ticker not in set(stored["entity_key"]):
        raise ExplainError(f"{ref.node} did not score {ticker} on {day} ({len(stored)} names scored that day)")
    frame = scoring.scoring_frame(store, model.features, day, stored["entity_key"].tolist(), ingest_times=True)
    mine = (frame["entity_key"] == ticker).to_numpy()
    recomputed = float(model.predict(frame)[mine][0]) if mine.any() else float("nan")
    now_frame = scoring.scoring_frame(store, model.features, day, [ticker], known_at, ingest_times=True)
    now_prediction = float(model.predict(now_frame)[0]) if len(now_frame) else float("nan")
    then, now = (
        _one(_vector(store, model.features, frame), ticker),
        _one(_vector(store, model.features, now_frame), ticker),
    )
    return Explanation(
        ref.node,
        day,
        ticker,
        then,
        recomputed,
        float(stored.loc[stored["entity_key"] == ticker, "prediction"].iloc[0]),
        pd.Timestamp(known_at),
        now,
        _restated(then, now),
        now_prediction,
    )


def _restated(then: pd.DataFrame, now: pd.DataFrame) -> list[str]:
    """The features whose answering row (value, event or ingest time) differs between the two vectors."""
    if now.empty:
        return then["feature"].tolist()
    both = then.merge(now, on=["feature", "version"], suffixes=("", "_now"))
    same = np.array([same_bits(a, b) for a, b in zip(both["value"], both["value_now"], strict=True)], dtype=bool)
    for column in ("event_time", "ingest_time"):
        same &= (both[column] == both[f"{column}_now"]).to_numpy() | (
            both[column].isna() & both[f"{column}_now"].isna()
        )
    return both.loc[~same, "feature"].tolist()


@dataclass(frozen=True)
class UsedRows:
    """Every stored feature row a (model, session) scoring used (entity_key, feature, version, event_time,
    ingest_time, file: relative to the root, inputs: the marker naming the raw parts its day read, relative to the
    root), and per marker those raw parts."""

    node: str
    day: dt.date
    rows: pd.DataFrame
    sources: dict[str, list[str]]


def used_rows(conn, root: Location, store: FeatureStore, spec: str, day: dt.date) -> UsedRows:
    """The rows view of ``spec``'s predictions on ``day``: the scoring frame read again with each answer's ingest
    time, less the values the staleness rule discarded (optional data too old: the model saw a gap there), each row
    found in its stored day file, and the raw parts behind it."""
    ref, model = _model(conn, spec)
    stored = _stored_day(root, ref.node, day)
    frame = scoring.scoring_frame(store, model.features, day, stored["entity_key"].tolist(), ingest_times=True)
    vector = _vector(store, model.features, frame)
    oldest = {f: staleness.oldest_usable(FAMILIES[f], day) for f in vector["family"].unique()}
    usable = vector["event_time"] >= vector["family"].map(oldest).astype(vector["event_time"].dtype)
    rows = _located(root, store, day, vector[usable.to_numpy()])
    sources: dict[str, list[str]] = {}
    markers = []
    for (directory, partition), found in rows.groupby(["directory", "partition"], sort=False):
        base = fs.location(root) / directory
        marked = units.marked_inputs(root, units.unit_of(root, FAMILIES[base.parent.name], base), partition)
        for ingest in found["ingest_time"].unique():
            first = next((m for m in marked if m.through >= ingest), None)
            name = f"{directory}/date={partition}/{first.marker}" if first else ""
            sources.update({name: first.parts} if first else {})
            markers.append((directory, partition, ingest, name))
    inputs = pd.DataFrame(markers, columns=["directory", "partition", "ingest_time", "inputs"])
    rows = rows.merge(inputs, on=["directory", "partition", "ingest_time"], how="left")
    columns = ["entity_key", "feature", "version", "event_time", "ingest_time", "file", "inputs"]
    return UsedRows(ref.node, day, rows.sort_values(["entity_key", "feature"])[columns].reset_index(drop=True), sources)


def _located(root: Location, store: FeatureStore, day: dt.date, vector: pd.DataFrame) -> pd.DataFrame:
    """``vector``'s rows with the stored day file holding each (its directory, partition day and file name, relative
    to the root): the original files of the staleness window in the directories holding the features, each read
    once (its keys), matched on (entity, event time, ingest time) in a directory holding the row's version."""
    keys = ["entity_key", "event_time", "ingest_time"]
    first, held = staleness.earliest_partition(day), []
    features = list(vector["feature"].unique())
    for base in store.directories(features):
        names = within(day_names(base, months_between(first, day)), first, day)
        directory = fs.relative(base, fs.location(root))
        for name, table in zip(names, lake.read_parts([base / n for n in names], keys), strict=True):
            partition = dt.date.fromisoformat(partition_day(name))
            held.append(table.to_pandas().assign(directory=directory, partition=partition, file=f"{directory}/{name}"))
    holding = pd.DataFrame(
        [(f, fs.relative(d, fs.location(root))) for f in features for d in store.directories([f])],
        columns=["feature", "directory"],
    )
    none = pd.DataFrame(columns=[*keys, "directory", "partition", "file"])
    stored = pd.concat(held or [none], ignore_index=True).merge(holding, on="directory")
    return vector.merge(stored, on=[*keys, "feature"], how="left")

"""Immutable, fingerprinted training snapshots.

A snapshot is the point-in-time training matrix for a window: for each
session t and entity, the features as known at t's decision time and the
label (adjusted open-to-open return from t to t+h), using only price versions
known at the snapshot's as-of time and only rows whose label matured by then.
It is stored as ``<root>/snapshots/<fingerprint>/{data.parquet, manifest.json}``;
the fingerprint is the SHA-256 of the canonical data and the manifest's
content fields, so the same inputs give the same directory and nothing new is
written, and a read recomputes it and refuses a file that changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quant_assets.core import lake
from quant_assets.core import time as qtime
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.sources.base import PRICE_LAG

LABEL = "label"
INDEX = ["date", "entity_key"]
# Recorded in the manifest but not part of the content: the same data built by another commit is the same snapshot.
NOT_CONTENT = ("fingerprint", "code_version", "producer_versions")


class SnapshotError(RuntimeError):
    pass


class SnapshotTampered(SnapshotError):
    pass


@dataclass(frozen=True)
class Snapshot:
    path: Path
    data: pd.DataFrame
    manifest: dict

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def features(self) -> list[str]:
        return list(self.manifest["features"])


def fingerprint_of(table: pa.Table, manifest: dict) -> str:
    content = {k: v for k, v in manifest.items() if k not in NOT_CONTENT}
    h = hashlib.sha256(lake.table_digest(table).encode())
    h.update(json.dumps(content, sort_keys=True).encode())
    return h.hexdigest()


def labels(root: Path, sessions: list[dt.date], horizon: int, as_of_time: pd.Timestamp) -> pd.DataFrame:
    """Adjusted open-to-open forward returns for ``sessions`` from price versions known at ``as_of_time``."""
    needed = sessions + [qtime.session_offset(sessions[-1], k) for k in range(1, horizon + 1)]
    files = [str(f) for d in needed for f in lake.partition_dir(root, "raw_prices", d).glob("part-*.parquet")]
    if not files:
        raise SnapshotError(f"no raw_prices partitions for {sessions[0]}..{sessions[-1]} under {root}")
    px = duckdb.sql(
        """
        SELECT ticker AS entity_key, event_time, open * adj_close / close AS adj_open
        FROM read_parquet(?)
        WHERE ingest_time <= ?
        QUALIFY row_number() OVER (PARTITION BY ticker, event_time ORDER BY ingest_time DESC) = 1
        """,
        params=[files, as_of_time.to_pydatetime()],
    ).df()
    return forward_returns(px, sessions, horizon)


def forward_returns(px: pd.DataFrame, sessions: list[dt.date], horizon: int) -> pd.DataFrame:
    """(date, entity_key, label): adjusted open-to-open returns from each session to ``horizon`` sessions on.

    ``px`` holds one version per bar (entity_key, event_time, adj_open). The bars are placed on the calendar's
    sessions, so a session without a bar gives no label, never a return over a longer span.
    """
    needed = sessions + [qtime.session_offset(sessions[-1], k) for k in range(1, horizon + 1)]
    dates = px["event_time"].dt.tz_convert(qtime.EXCHANGE_TZ).dt.date
    wide = px.assign(date=dates).pivot(index="date", columns="entity_key", values="adj_open").reindex(needed)
    fwd = wide.shift(-horizon) / wide - 1
    out = fwd.loc[sessions].stack().rename(LABEL).reset_index()
    return out.rename(columns={"level_0": "date"}).dropna(subset=[LABEL])


def build(
    root: Path,
    store: FeatureStore,
    start,
    end,
    as_of,
    features: list[str],
    horizon: int = 1,
    universe: list[str] | None = None,
    code_version: str = "unknown",
) -> tuple[pd.DataFrame, dict]:
    """The training matrix and its manifest (not yet written)."""
    as_of = qtime.require_session(as_of)
    as_of_time = qtime.session_close(as_of) + PRICE_LAG  # the end of day A: A's own bar is in
    candidates = qtime.sessions_between(start, end)
    sessions = [t for t in candidates if qtime.label_maturity(t, horizon) <= as_of_time]
    if not sessions:
        raise SnapshotError(f"no session in {start}..{end} has a {horizon}-day label matured by {as_of}")
    y = labels(root, sessions, horizon, as_of_time)
    if universe is not None:
        y = y[y["entity_key"].isin(set(universe))]
    y["decision_time"] = y["date"].map({d: qtime.decision_time(d) for d in y["date"].unique()})
    pit = store.get_point_in_time(y.rename(columns={"decision_time": "as_of"})[["entity_key", "as_of"]], features)
    matrix = pd.concat([y.reset_index(drop=True), pit[features]], axis=1)
    known = pit.filter(like="event_time_").notna().any(axis=1).to_numpy()
    matrix = matrix[known].sort_values(INDEX, kind="mergesort").reset_index(drop=True)
    matrix = matrix[["date", "entity_key", "decision_time", LABEL, *features]]
    resolved = dict(store.resolve(f) for f in features)
    manifest = {
        "features": {f: resolved[store.resolve(f)[0]] for f in features},
        "label": {
            "kind": "adjusted_open_to_open",
            "horizon": horizon,
            "matures": "open of t+h",
            "formula": "open(t+h)*adj/close / open(t)*adj/close - 1",
        },
        "date_range": [str(matrix["date"].min()), str(matrix["date"].max())] if len(matrix) else [None, None],
        "as_of": as_of.isoformat(),
        "as_of_time": as_of_time.isoformat(),
        "universe": sorted(matrix["entity_key"].unique().tolist()),
        "row_count": len(matrix),
        "source_partitions": {
            "raw_prices": [sessions[0].isoformat(), qtime.session_offset(sessions[-1], horizon).isoformat()],
            "features": sorted({d.parent.name + "@" + d.name[3:] for d in _family_dirs(store, features)}),
        },
        "code_version": code_version,
        "producer_versions": _producer_versions(store, features, sessions),
    }
    return matrix, manifest


def _producer_versions(store: FeatureStore, features: list[str], sessions: list[dt.date]) -> dict[str, list[str]]:
    """Code versions that produced the feature rows of the window, per family version."""
    out = {}
    for d in _family_dirs(store, features):
        files = [
            str(f)
            for f in d.glob("date=*/part-*.parquet")
            if sessions[0].isoformat() <= f.parent.name[5:] <= sessions[-1].isoformat()
        ]
        if files:
            rows = duckdb.sql(
                "SELECT DISTINCT producer_version FROM read_parquet(?) ORDER BY 1", params=[files]
            ).fetchall()
            out[f"{d.parent.name}@{d.name[3:]}"] = [r[0] for r in rows]
    return out


def _family_dirs(store: FeatureStore, features: list[str]) -> list[Path]:
    return [d for dirs in store._groups(features) for d in dirs]


def write(root: Path, data: pd.DataFrame, manifest: dict) -> tuple[Path, bool]:
    """Write once under the fingerprint; returns (path, created). An existing snapshot is left as is.

    The fingerprint is taken over the Parquet file as it reads back, the same
    bytes ``read`` will hash.
    """
    base = Path(root) / "snapshots"
    tmp = base / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        pq.write_table(pa.Table.from_pandas(data, preserve_index=False), tmp / "data.parquet", compression="zstd")
        table = pq.read_table(tmp / "data.parquet").replace_schema_metadata(None)
        manifest = {**manifest, "fingerprint": fingerprint_of(table, manifest)}
        final = base / manifest["fingerprint"]
        if final.exists():
            read(final)  # verify what is there rather than trust it
            return final, False
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.rename(tmp, final)
        return final, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read(path: Path) -> Snapshot:
    """Load a snapshot, recomputing its fingerprint; a mismatch raises SnapshotTampered."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        table = pq.read_table(path / "data.parquet")
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise SnapshotTampered(f"snapshot {path} is unreadable: {exc}") from exc
    actual = fingerprint_of(table.replace_schema_metadata(None), manifest)
    if actual != manifest.get("fingerprint") or actual != path.name:
        raise SnapshotTampered(
            f"snapshot {path} fails verification: content hashes to {actual[:16]}…, "
            f"manifest says {str(manifest.get('fingerprint'))[:16]}…, directory {path.name[:16]}…"
        )
    return Snapshot(path, table.to_pandas(), manifest)

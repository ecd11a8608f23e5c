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
import re
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from quant_assets.core import environment, sessions
from quant_assets.core.features import compute, staleness
from quant_assets.core.features.files import day_names, partition_day
from quant_assets.core.features.library import ALL_FEATURES, FAMILIES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location

LABEL = "label"
INDEX = ["date", "entity_key"]
# Recorded in the manifest but not part of the content: the same data built by another commit, or in another
# environment, is the same snapshot.
NOT_CONTENT = ("fingerprint", "code_version", "run_id", "producer_versions", "environment")
DATA, MANIFEST = "data.parquet", "manifest.json"
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


class SnapshotError(RuntimeError):
    pass


class SnapshotTampered(SnapshotError):
    pass


@dataclass(frozen=True)
class Snapshot:
    path: Location
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


def labels(root: Location, days: list[dt.date], horizon: int, as_of_time: pd.Timestamp) -> pd.DataFrame:
    """Adjusted open-to-open forward returns for ``days`` from price versions known at ``as_of_time``."""
    needed = days + [sessions.session_offset(days[-1], k) for k in range(1, horizon + 1)]
    bars = [b for b in lake.read_partitions(root, "raw_prices", needed).values() if not b.empty]
    if not bars:
        raise SnapshotError(f"no raw_prices partitions for {days[0]}..{days[-1]} under {root}")
    return forward_returns(known_bars(pd.concat(bars, ignore_index=True), as_of_time), days, horizon)


def known_bars(bars: pd.DataFrame, as_of_time: pd.Timestamp) -> pd.DataFrame:
    """What was known of ``bars`` at ``as_of_time``: per bar its latest version ingested by then, with its
    adjusted open (entity_key, event_time, adj_open) -- the input of every label."""
    known = lake.latest_versions(bars[bars["ingest_time"] <= as_of_time], ["ticker", "event_time"])
    adj_open = known["open"] * known["adj_close"] / known["close"]
    frame = {"entity_key": known["ticker"], "event_time": known["event_time"], "adj_open": adj_open}
    return pd.DataFrame(frame).reset_index(drop=True)


def forward_returns(px: pd.DataFrame, days: list[dt.date], horizon: int) -> pd.DataFrame:
    """(date, entity_key, label): adjusted open-to-open returns from each session to ``horizon`` days on.

    ``px`` holds one version per bar (entity_key, event_time, adj_open). The bars are placed on the calendar's
    days, so a session without a bar gives no label, never a return over a longer span.
    """
    needed = days + [sessions.session_offset(days[-1], k) for k in range(1, horizon + 1)]
    dates = sessions.exchange_dates(px["event_time"])
    wide = px.assign(date=dates).pivot(index="date", columns="entity_key", values="adj_open").reindex(needed)
    fwd = wide.shift(-horizon) / wide - 1
    out = fwd.loc[days].stack().rename(LABEL).reset_index()
    return out.rename(columns={"level_0": "date"}).dropna(subset=[LABEL])


def build(
    root: Location,
    store: FeatureStore,
    start,
    end,
    as_of,
    features: list[str],
    horizon: int = 1,
    universe: list[str] | None = None,
    code_version: str = "unknown",
    run_id: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The training matrix and its manifest (not yet written). The code version and ``run_id`` that built it, like
    its environment, are recorded outside the fingerprint (NOT_CONTENT): the same rows built by another run are
    the same snapshot, and its first builder's record stands."""
    as_of = sessions.require_session(as_of)
    as_of_time = known_by_close(as_of)
    candidates = sessions.sessions_between(start, end)
    days = [t for t in candidates if sessions.label_maturity(t, horizon) <= as_of_time]
    if not days:
        raise SnapshotError(f"no session in {start}..{end} has a {horizon}-day label matured by {as_of}")
    y = labels(root, days, horizon, as_of_time)
    if universe is not None:
        y = y[y["entity_key"].isin(set(universe))]
    matrix = _training_rows(store, y, features)
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
            "raw_prices": [days[0].isoformat(), sessions.session_offset(days[-1], horizon).isoformat()],
            "features": sorted({d.parent.name + "@" + d.name[3:] for d in store.directories(features)}),
        },
        "code_version": code_version,
        "run_id": run_id,
        "producer_versions": _producer_versions(store, features, days),
        "environment": environment.recorded(),
    }
    return matrix, manifest


def _training_rows(store: FeatureStore, y: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Each labelled (date, entity) with its features as scoring sees them at the date's decision time.

    Read under the one staleness rule (``features.staleness``): a row without usable prices is left out,
    alternative data too old to be used is missing, exactly as on a live day.
    """
    if y.empty:
        raise SnapshotError("no labelled row: the window has no prices to label")
    y = y.reset_index(drop=True)
    y["decision_time"] = y["date"].map({d: sessions.decision_time(d) for d in y["date"].unique()})
    queries = pd.DataFrame({"entity_key": y["entity_key"], "as_of": y["decision_time"]})
    pit = store.get_point_in_time(queries, features, since=staleness.earliest_partition(y["date"].min()))
    pit, usable = staleness.apply(pit, y["date"].tolist(), store.families(features))
    matrix = pd.concat([y, pit[features]], axis=1)[usable]
    if matrix.empty:
        raise SnapshotError(f"no labelled row of {y['date'].min()}..{y['date'].max()} has usable price features")
    matrix = matrix.sort_values(INDEX, kind="mergesort").reset_index(drop=True)
    return matrix[["date", "entity_key", "decision_time", LABEL, *features]]


def _producer_versions(store: FeatureStore, features: list[str], days: list[dt.date]) -> dict[str, list[str]]:
    """Code versions that produced the feature rows of the window, per family version.

    duckdb is imported here, not with the module, which is on the Dagster definitions' import path
    (benchmarks/RESULTS.md, import cost).
    """
    out = {}
    for d in store.directories(features):
        files = [d / n for n in day_names(d) if days[0].isoformat() <= partition_day(n) <= days[-1].isoformat()]
        if files:
            with fs.duckdb_connection(files) as con:
                rows = con.sql(
                    "SELECT DISTINCT producer_version FROM read_parquet(?) ORDER BY 1", params=[[str(f) for f in files]]
                ).fetchall()
            out[f"{d.parent.name}@{d.name[3:]}"] = [r[0] for r in rows]
    return out


def locate(root: Location, fingerprint: str) -> Location:
    """The directory of the snapshot with ``fingerprint`` (a SHA-256 in hex; nothing else becomes a path)."""
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise SnapshotError(f"not a snapshot fingerprint (64 hex digits): {fingerprint!r}")
    return root / "snapshots" / fingerprint


def write(root: Location, data: pd.DataFrame, manifest: dict) -> tuple[Location, bool]:
    """Write once under the fingerprint; returns (path, created). An existing snapshot is verified, not rewritten.

    The fingerprint is taken over the Parquet file as it reads back, the same table ``read`` will hash.
    ``data.parquet`` goes in first (``fs.put_once``) and ``manifest.json`` last (``fs.put_record``): a reader
    sees a complete snapshot or an incomplete one it refuses, never a partial file, and two writers of the
    same snapshot (the same bytes) never fail each other.
    """
    blob = lake.parquet_bytes(pa.Table.from_pandas(data, preserve_index=False))
    table = lake.read_parquet(DATA, source=pa.BufferReader(blob))
    manifest = {**manifest, "fingerprint": fingerprint_of(table, manifest)}
    final = locate(root, manifest["fingerprint"])
    created = fs.put_once(final / DATA, blob)
    text = json.dumps(manifest, indent=2, sort_keys=True)
    try:
        created |= fs.put_record(final / MANIFEST, text.encode(), [final / DATA])
    except fs.ConflictingWrite:
        pass  # the same data recorded by an earlier build (another code version): that record stands
    read(final)  # verify what is there rather than trust it
    return final, created


def read(path: Location) -> Snapshot:
    """Load a snapshot, recomputing its fingerprint; a mismatch raises SnapshotTampered."""
    path = fs.location(path)
    if not (path / DATA).exists() and not (path / MANIFEST).exists():
        raise SnapshotError(
            f"snapshot {path} not found: this lake does not hold it (a model registered on another data root?)"
        )
    if (path / DATA).is_file() and not (path / MANIFEST).exists():
        raise SnapshotError(
            f"snapshot {path} is incomplete (no {MANIFEST}): its writer was interrupted; build it again"
        )
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        table = lake.read_parquet(path / DATA)
    except (OSError, ValueError, lake.CorruptFile) as exc:
        raise SnapshotTampered(f"snapshot {path} is unreadable: {exc}") from exc
    actual = fingerprint_of(table, manifest)
    if actual != manifest.get("fingerprint") or actual != path.name:
        raise SnapshotTampered(
            f"snapshot {path} fails verification: content hashes to {actual[:16]}…, "
            f"manifest says {str(manifest.get('fingerprint'))[:16]}…, directory {path.name[:16]}…"
        )
    return Snapshot(path, table.to_pandas(), manifest)


def create(
    root: Location,
    store: FeatureStore,
    start,
    end,
    as_of,
    features: list[str],
    horizon: int,
    code_version: str,
    run_id: str | None = None,
) -> tuple[Location, bool, dict]:
    """Build the snapshot and write it once: (its directory, whether it was new, its manifest as stored, with the
    fingerprint). The same inputs give the same directory, so rebuilding costs a read, not a new snapshot."""
    data, manifest = build(root, store, start, end, as_of, features, horizon, code_version=code_version, run_id=run_id)
    path, created = write(root, data, manifest)
    return path, created, read(path).manifest


def lineage_windows(manifest: dict) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What the snapshot's lineage edges need: each feature's family version ("price@<version>"), and per raw
    dataset the partitions the snapshot was built from, no more: for each family, the raw windows of the feature
    partitions its point-in-time read could answer from (``staleness.earliest_partition`` of the first date, a
    family ``lookback`` further back, to the last date), and the price sessions its labels read (the manifest's
    ``source_partitions``: the first labelled session to the last + horizon)."""
    family_of = {f: ALL_FEATURES[f].family for f in manifest["features"]}
    feature_family = {f: f"{fam}@{FAMILIES[fam].version}" for f, fam in family_of.items()}
    first, last = sessions.as_date(manifest["date_range"][0]), sessions.as_date(manifest["date_range"][1])
    read: dict[str, set[dt.date]] = {}
    for name in sorted(set(family_of.values())):
        family = FAMILIES[name]
        start = compute.window_partitions(family, staleness.earliest_partition(first))[0]
        read.setdefault(family.source, set()).update(sessions.sessions_between(start, last))
    labelled = manifest.get("source_partitions", {}).get("raw_prices")
    if labelled:
        read.setdefault("raw_prices", set()).update(sessions.sessions_between(*labelled))
    return feature_family, {dataset: [d.isoformat() for d in sorted(days)] for dataset, days in read.items()}


def stored_partitions(root: Location, sources: dict[str, list[str]]) -> dict[str, list[str]]:
    """``sources`` (``lineage_windows``' partitions per dataset) without the days the lake holds no partition of:
    a window reaching back before the lake's first session read nothing there (one listing per dataset)."""
    held = {ds: {d.name.removeprefix("date=") for d in fs.children(lake.under(root, ds))} for ds in sources}
    return {ds: [d for d in days if d in held[ds]] for ds, days in sources.items()}

"""The Parquet lake: hive-partitioned, append-only, content-addressed files.

A dataset lives under ``<root>/<dataset>/date=YYYY-MM-DD/part-<sha>.parquet``.
Files are never rewritten: a write adds only the rows that are new or whose
values changed (a restatement), as one new file of canonically ordered rows
named by the SHA-256 of its bytes. Re-writing the same data therefore adds
nothing, and history is never lost.

The lake's root is a local directory or an object-store prefix (``fs.location``); every file the project
writes goes through ``fs.put_once`` (records: ``fs.put_record``), so a reader sees a complete file or none,
after any kill, and two writers of the same object never fail each other. Parquet files carry page
checksums; every pyarrow read verifies them and, for parts, the bytes against the name (``CorruptFile``
names the file). DuckDB reads do not: ``core/audit.py`` covers those files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from quant_assets.core.storage import fs
from quant_assets.core.storage.fs import Location

PART_PREFIX = "part-"
# The columns naming what wrote a row: the asset (or caller), the code version and the run. Not values: an append
# compares values only, so a rerun that differs in these alone adds nothing; parts written before a dataset had
# them are read as they are (a reader selects its columns, a concatenation fills nulls).
PROVENANCE = ["producer", "producer_version", "run_id"]
PROVENANCE_FIELDS = [pa.field(c, pa.string()) for c in PROVENANCE]


@dataclass(frozen=True)
class WriteResult:
    rows_offered: int
    rows_written: int
    path: Location | None


def partition_dir(root: Location, dataset: str, day: dt.date) -> Location:
    return under(root, *(dataset.split("/") if dataset else ())) / f"date={day.isoformat()}"


_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=-]*")


def under(root: Location, *names: str) -> Location:
    """``root/name/...`` for names that stay under ``root`` (no separators, no ``..``); ValueError otherwise.

    Every name that becomes a path (datasets, feature families and versions, model names) goes through
    here or a stricter check, so a bad name is refused where it enters instead of writing elsewhere.
    """
    bad = [n for n in names if not _COMPONENT.fullmatch(n)]
    if bad:
        raise ValueError(f"invalid name(s) for a path under {root}: {bad!r} (letters, digits, '_', '.', '=', '-')")
    return root.joinpath(*names)


def canonical_table(df: pd.DataFrame, sort_by: list[str], schema: pa.Schema | None = None) -> pa.Table:
    """Rows sorted by ``sort_by``, index dropped, cast to ``schema``: same data, same table."""
    ordered = df.sort_values(sort_by, kind="mergesort").reset_index(drop=True)
    return pa.Table.from_pandas(ordered, schema=schema, preserve_index=False)


def stamp(df: pd.DataFrame, provenance: Mapping[str, str] | None) -> pd.DataFrame:
    """``df`` with the PROVENANCE columns set from ``provenance`` (a missing one, or no mapping: empty text, as a
    caller outside a run, a test or a notebook, names no producer)."""
    given = provenance or {}
    return df.assign(**{c: given.get(c, "") for c in PROVENANCE})


def conform(df: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """``df`` with exactly the columns and types of ``schema`` (as stored files read back)."""
    return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False).to_pandas()


def table_digest(table: pa.Table) -> str:
    """SHA-256 of the Arrow IPC stream of a table: schema and values, nothing else."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
        writer.write_table(table.replace_schema_metadata(None))
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


class CorruptFile(RuntimeError):
    """A stored file that does not read back as what was written; the message names the file."""


def parquet_bytes(table: pa.Table, **options) -> bytes:
    """The one way the lake encodes Parquet: zstd unless ``options`` say otherwise, always page checksums.

    Encoded in memory, so every store (a local disk, a bucket) is given the finished object in one piece."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **{"compression": "zstd", **options, "write_page_checksum": True})
    return sink.getvalue().to_pybytes()


def write_parquet(table: pa.Table, path: Location, **options) -> bool:
    """``fs.put_once`` of a Parquet file (see ``parquet_bytes``); returns whether this call created it."""
    return fs.put_once(path, parquet_bytes(table, **options))


def write_part(directory: Location, table: pa.Table) -> Location:
    """Write ``table`` once as ``<directory>/part-<sha>.parquet``, named by the SHA-256 of the file's bytes.

    The same rows written again give the same bytes and so the same name (nothing is added), and every
    later read can check the whole file, metadata and statistics included, against its name.
    """
    blob = parquet_bytes(table)
    path = directory / _part_name(hashlib.sha256(blob).hexdigest())
    fs.put_once(path, blob)
    return path


def read_parquet(path: Location, columns: list[str] | None = None, source=None) -> pa.Table:
    """A Parquet file (or its bytes, ``source``) with its page checksums verified; damage raises
    ``CorruptFile`` naming the file.

    Read as one file (``ParquetFile``): the same table ``pq.read_table`` gives, at well under half its cost, as that
    goes through the datasets machinery, whose setup was most of the time of reading one of the lake's small parts.
    """
    try:
        if source is None:
            source = pa.BufferReader(path.read_bytes())
        return pq.ParquetFile(source, page_checksum_verification=True).read(columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise CorruptFile(f"{path}: unreadable Parquet ({exc})") from exc


def file_sha256(path: Location) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _part_name(sha256: str) -> str:
    return f"{PART_PREFIX}{sha256[:32]}.parquet"


def read_part(path: Location, blob: bytes | None = None, columns: list[str] | None = None) -> pa.Table:
    """A content-addressed part (its bytes already read: ``blob``; ``columns`` of it), refused (``CorruptFile``
    naming it) unless its bytes hash to its name."""
    try:
        blob = path.read_bytes() if blob is None else blob
    except OSError as exc:
        raise CorruptFile(f"{path}: unreadable ({exc})") from exc
    if _part_name(hashlib.sha256(blob).hexdigest()) != path.name:
        raise CorruptFile(f"{path}: content does not hash to its name (changed after it was written)")
    return read_parquet(path, columns, source=pa.BufferReader(blob))


def read_parts(paths: list[Location], columns: list[str] | None = None) -> list[pa.Table]:
    """``read_part`` of each of ``paths``, their bytes fetched at once (concurrently on an object store), then
    checked and decoded on two threads: hashing and decoding leave the interpreter free, so the few hundred small
    parts of a range are read on both cores."""
    try:
        blobs = fs.read_many(paths)
    except OSError as exc:
        raise CorruptFile(f"one of {len(paths)} parts is unreadable ({exc})") from exc
    if len(paths) < 2:
        return [read_part(p, b, columns) for p, b in zip(paths, blobs, strict=True)]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda pb: read_part(*pb, columns), zip(paths, blobs, strict=True)))


def read_frame(paths: list[Location], columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of the parts ``paths`` (``columns`` of them) as one frame, in order: their tables concatenated and
    converted to pandas once (a dataset's parts share its schema, but parts written before it had PROVENANCE lack
    those columns: null there). A frame per part, concatenated, cost more than reading the parts."""
    tables = [t if columns is None else t.select(columns) for t in read_parts(paths, columns)]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def partition_files(directory: Location) -> list[Location]:
    """The parts of one partition directory, in name order."""
    return fs.listing(directory, f"{PART_PREFIX}*.parquet")


def dataset_files(root: Location, dataset: str) -> list[Location]:
    """Every part of a dataset, in date then name order."""
    return fs.listing(under(root, *dataset.split("/")), f"date=*/{PART_PREFIX}*.parquet")


def read_partition(root: Location, dataset: str, day: dt.date, columns: list[str] | None = None) -> pd.DataFrame:
    """Every stored row of one partition (all versions; ``columns`` of them), or an empty frame."""
    return read_partitions(root, dataset, [day], columns)[day]


def read_partitions(
    root: Location, dataset: str, days: list[dt.date], columns: list[str] | None = None
) -> dict[dt.date, pd.DataFrame]:
    """``read_partition`` of each of ``days`` (an empty frame where nothing is stored): the partitions are listed
    concurrently and their parts fetched in one batch (``fs.read_many``), so a window of sessions on an object
    store costs a few round trips, not two per session. One day is listed in this thread (a pool costs more)."""
    listing = lambda d: partition_files(partition_dir(root, dataset, d))  # noqa: E731
    if len(days) == 1:
        listed = [listing(days[0])]
    else:
        with ThreadPoolExecutor(min(8, max(1, len(days)))) as pool:
            listed = list(pool.map(listing, days))
    tables = iter(read_parts([f for files in listed for f in files], columns))
    out = {}
    for day, files in zip(days, listed, strict=True):
        frames = [next(tables).to_pandas() for _ in files]
        out[day] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out


def latest_versions(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The most recently ingested row per key."""
    if df.empty:
        return df
    # the common case costs a tenth: a partition of one delivery has one ingest_time and no key twice
    ordered = df if df["ingest_time"].is_monotonic_increasing else df.sort_values("ingest_time", kind="mergesort")
    return ordered if distinct_keys(ordered, key) else ordered.drop_duplicates(key, keep="last")


def distinct_keys(df: pd.DataFrame, key: list[str]) -> bool:
    """Whether no ``key`` occurs twice in ``df``: the key's columns as integer codes, combined into one number per
    row, at a tenth of the cost of ``duplicated`` for the few hundred rows of a partition. A missing value in a key
    answers False (pandas counts missing values as equal), so the caller takes its general path."""
    combined = np.zeros(len(df), dtype=np.int64)
    for k in key:
        codes, uniques = pd.factorize(df[k])
        if (codes < 0).any():
            return False
        if len(uniques) and combined.max(initial=0) >= (1 << 62) // len(uniques):
            return False  # the combined number would overflow: let pandas decide
        combined = combined * len(uniques) + codes
    return len(np.unique(combined)) == len(df)


def _changed(new: pd.DataFrame, old: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Row-wise 'differs' with NaN equal to NaN."""
    out = np.zeros(len(new), dtype=bool)
    for c in cols:
        a, b = new[c].to_numpy(), old[c].to_numpy()
        both_na = pd.isna(a) & pd.isna(b)
        out |= ~((a == b) | both_na)
    return out


def append_new_versions(
    root: Location,
    dataset: str,
    day: dt.date,
    batch: pd.DataFrame,
    key: list[str],
    value_cols: list[str],
    restatement_time: pd.Timestamp,
    schema: pa.Schema,
    provenance: Mapping[str, str] | None = None,
) -> WriteResult:
    """Append the rows of ``batch`` that are new or changed against the stored latest, stamped with ``provenance``
    (``stamp``; ``schema`` holds PROVENANCE_FIELDS).

    ``batch`` carries its first-delivery ``ingest_time``. A changed value is a
    restatement: it is stamped with ``restatement_time`` (or one microsecond
    after the version it replaces, whichever is later), so the old row stays
    queryable as of any earlier time. Only ``value_cols`` decide a change: a run that offers the stored values
    again, under another run id or code version, writes nothing.
    """
    if batch.empty:
        return WriteResult(0, 0, None)
    batch = conform(stamp(batch, provenance), schema)
    stored = latest_versions(read_partition(root, dataset, day), key)
    if stored.empty:
        fresh = batch
    else:
        merged = batch.merge(
            stored[key + value_cols + ["ingest_time"]],
            on=key,
            how="left",
            suffixes=("", "__old"),
            indicator=True,
        )
        is_new = (merged["_merge"] == "left_only").to_numpy()
        old = merged[[f"{c}__old" for c in value_cols]].set_axis(value_cols, axis=1)
        is_changed = ~is_new & _changed(merged[value_cols], old, value_cols)
        keep = is_new | is_changed
        fresh = merged.loc[keep, list(batch.columns)].copy()
        floor = merged.loc[keep, "ingest_time__old"] + pd.Timedelta(microseconds=1)
        restamp = floor.where(floor > restatement_time, restatement_time)
        fresh["ingest_time"] = fresh["ingest_time"].where(~is_changed[keep], restamp)
    if fresh.empty:
        return WriteResult(len(batch), 0, None)
    path = write_part(partition_dir(root, dataset, day), canonical_table(fresh, key + ["ingest_time"], schema))
    return WriteResult(len(batch), len(fresh), path)


def append_quarantine(
    root: Location,
    dataset: str,
    day: dt.date,
    rejects: pd.DataFrame,
    schema: pa.Schema,
    provenance: Mapping[str, str] | None = None,
) -> WriteResult:
    """Record rejected records once, stamped with ``provenance``: a record already quarantined (every field of
    it equal, whoever quarantined it) is not added again.

    The whole record is the key: records without a line or raw text (a synthetic source's, a whole-file
    problem) differ only in their ticker or detail, and none of them may hide another.
    """
    key = ["ticker", "source_file", "source_line", "reason", "detail", "raw"]
    if rejects.empty:
        return WriteResult(0, 0, None)
    stored = read_partition(root, f"quarantine/{dataset}", day)
    fresh = rejects
    if not stored.empty:
        seen = set(stored[key].astype(str).itertuples(index=False, name=None))
        offered = rejects[key].astype(str).itertuples(index=False, name=None)
        fresh = rejects.loc[[k not in seen for k in offered]]
    if fresh.empty:
        return WriteResult(len(rejects), 0, None)
    table = canonical_table(stamp(fresh, provenance), key, schema)
    path = write_part(partition_dir(root, f"quarantine/{dataset}", day), table)
    return WriteResult(len(rejects), len(fresh), path)

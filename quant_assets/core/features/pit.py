"""The point-in-time kernel: the answer to many (entity, as_of) queries from one family version's files.

Point-in-time rule for a query (entity, as_of): among rows with ``event_time <= as_of AND ingest_time <=
as_of`` take the latest event_time, then the latest ingest_time. Because every row has ingest_time >=
event_time (enforced on write), that is the row with the lexicographically largest (event_time,
ingest_time) among those ingested by as_of. A query reads the key columns and the requested feature
columns once (DuckDB over the Parquet files, features as one fixed-size list per row), computes per entity
in ingest order the running best row (a running ``max`` of event_time), keeps the rows that are the best
when they arrive, and answers every (entity, as_of) pair with one binary search over (entity,
ingest_time) in NumPy: vectorised, no loop over dates, no sort of the wide rows. The answering rows'
features are scattered straight into one float matrix in query order, which the returned frame wraps
without a copy.

A query may also carry a knowledge cut-off apart from its event cut-off (``q_known``): rows with ``event_time <=
as_of AND ingest_time <= known_at``, the latest event then the latest ingest. ``known_at = as_of`` is the rule
above; a later ``known_at`` asks what was known *later* about the events of as_of (an explanation's "today's
knowledge": restatements delivered since). Rows with a later event may then be ingested by ``known_at``, so that
search is another one (``_best_rows_known``); the plain path is untouched.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quant_assets.core.storage import fs
from quant_assets.core.storage.fs import Location

if TYPE_CHECKING:
    import duckdb


def point_in_time(
    read_files: Callable[[Callable[[list[Location]], list[pa.RecordBatch]]], list[pa.RecordBatch]],
    columns: list[str],
    q_keys: pa.Array,
    q_time: np.ndarray,
    q_known: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, event_time, ingest_time)``: the answers as a row-major float matrix (NaN when nothing was
    known) and the answering rows' event and ingest times (datetime64[us], NaT when none). ``q_known``: each
    query's knowledge cut-off (epoch microseconds; None: its as-of, the plain rule).

    ``read_files`` is given the function that reads files' rows (the columns asked for) and returns every
    batch the query needs: the store passes its plan (``compaction.read_planned``), which starts reading
    compacted parts before the whole plan is known.
    """
    connections: list[duckdb.DuckDBPyConnection] = []
    try:
        batches = read_files(lambda files: _read_rows(files, columns, connections) if files else [])
        return _answer(batches, len(columns), q_keys, q_time, q_known)
    finally:
        for con in connections:
            con.close()


def point_in_time_rows(
    rows: pa.Table, columns: list[str], q_keys: pa.Array, q_time: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``point_in_time`` over rows held in memory (``entity_key``, ``event_time``, ``ingest_time`` and
    ``columns``) instead of stored files: the answer for values not stored, such as a research candidate's
    (core/research/candidate.py), by the same projection and the same kernel as the store's queries.
    duckdb is imported here for the same reason as in ``_read_rows``."""
    import duckdb

    with duckdb.connect(config={"threads": 1}) as con:
        con.register("stored_rows", rows)
        batches = list(con.sql(_rows_sql(columns, "stored_rows")).to_arrow_reader())
        return _answer(batches, len(columns), q_keys, q_time)


_FILES_PER_SCAN = 512  # below this many files per CPU ...
_BYTES_PER_SCAN = 32 << 20  # ... and this many bytes per CPU, one scan


def _read_rows(
    files: list[Location], columns: list[str], connections: list[duckdb.DuckDBPyConnection]
) -> list[pa.RecordBatch]:
    """Keys (event and ingest time as epoch microseconds) and the features as one fixed-size list per row.

    Read with DuckDB, projecting only these columns, in file order. Every file of a group holds every
    column asked for (the manifests say so), and DuckDB matches the other files' columns to the first
    one's by name, so no schema pre-pass (``union_by_name``) is needed; it is the fallback should a file
    disagree. Thousands of small files are split into one contiguous run per CPU, each scanned by its
    own single-threaded DuckDB in a thread: that scales better than one multi-threaded scan, whose
    per-file work does not spread well. The batches stay valid while ``connections`` (appended to
    here; the caller closes them) are open. Files on an object store are fetched first (``_read_remote``).
    duckdb is imported here, not with the module, because the module is on the
    Dagster definitions' import path (benchmarks/RESULTS.md, import cost).
    """
    import duckdb

    if files and not fs.is_local(files[0]):
        return _read_remote(files, columns, connections)
    cpus = _cpus()
    sizes = np.cumsum([os.path.getsize(f) for f in files])
    total = int(sizes[-1]) if len(files) else 0
    n_scans = max(1, min(cpus, len(files), max(len(files) // _FILES_PER_SCAN, total // _BYTES_PER_SCAN)))
    cuts = [0, *np.searchsorted(sizes, [total * k / n_scans for k in range(1, n_scans)], side="right"), len(files)]
    runs = [[str(f) for f in files[a:b]] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    for _ in runs:
        connections.append(duckdb.connect(config={"threads": 1} if n_scans > 1 else {}))

    def scan(con: duckdb.DuckDBPyConnection, run: list[str]) -> list[pa.RecordBatch]:
        try:
            return list(con.sql(_rows_sql(columns, "read_parquet(?)"), params=[run]).to_arrow_reader())
        except duckdb.Error:
            query = _rows_sql(columns, "read_parquet(?, union_by_name = true)")
            return list(con.sql(query, params=[run]).to_arrow_reader())

    if n_scans == 1:
        return scan(connections[0], runs[0])
    with ThreadPoolExecutor(n_scans) as pool:
        return [b for batches in pool.map(scan, connections, runs) for b in batches]


def _rows_sql(columns: list[str], source: str) -> str:
    """The one projection of stored rows the kernel reads, from ``source`` (files or an Arrow table)."""
    values = ", ".join(f'"{c}"' for c in columns)
    return f"""
        SELECT entity_key, epoch_us(event_time) AS event_us, epoch_us(ingest_time) AS ingest_us,
               [{values}]::DOUBLE[{len(columns)}] AS "values"
        FROM {source}
        WHERE entity_key IS NOT NULL AND event_time IS NOT NULL AND ingest_time IS NOT NULL
    """


def _read_remote(
    files: list[Location], columns: list[str], connections: list[duckdb.DuckDBPyConnection]
) -> list[pa.RecordBatch]:
    """``_read_rows`` on an object store: every object fetched at once (concurrent GETs, one per object,
    ``fs.read_many``), then each decoded by pyarrow (the needed columns) and given the same projection by
    DuckDB over that Arrow table, one file at a time per CPU (each thread its own single-threaded
    connection), in file order. One request per file, where DuckDB through fsspec makes several small
    range reads per file, each a round trip. File by file, each fetched object and its decoded table are
    released as soon as they are projected, so the next file's decode reuses that memory: decoding all of
    them first would first-touch a second copy of the data, which costs more than the decode on this
    project's VM (benchmarks/RESULTS.md, object store), and raise the peak.
    """
    import duckdb
    import pyarrow.parquet as pq

    keep = ["entity_key", "event_time", "ingest_time", *columns]
    blobs: list[bytes | None] = list(fs.read_many(files))
    cons = [duckdb.connect(config={"threads": 1}) for _ in range(min(_cpus(), len(blobs)))]
    connections.extend(cons)
    query = _rows_sql(columns, "stored_rows")

    def project(k: int) -> list[tuple[int, list[pa.RecordBatch]]]:
        con, out = cons[k], []
        for i in range(k, len(blobs), len(cons)):
            con.register("stored_rows", pq.read_table(pa.BufferReader(blobs[i]), columns=keep, use_threads=False))
            blobs[i] = None
            out.append((i, list(con.sql(query).to_arrow_reader())))
            con.unregister("stored_rows")
        return out

    with ThreadPoolExecutor(len(cons)) as pool:
        done = sorted(part for parts in pool.map(project, range(len(cons))) for part in parts)
    return [batch for _, batches in done for batch in batches]


def _cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _best_rows(
    code: np.ndarray, event: np.ndarray, ingest: np.ndarray, q_code: np.ndarray, q_time: np.ndarray
) -> np.ndarray:
    """For each query (entity code, as_of), the index of the row that answers it, or -1.

    Rows in (entity, ingest_time, event_time) order; the running maximum of event_time per entity is
    what is known at each arrival, and a row is a candidate answer iff it is that maximum when it
    arrives (one per (entity, ingest_time): the latest event). A query takes the entity's last candidate
    ingested by as_of: one binary search over (entity, ingest rank) keys.
    """
    order = np.lexsort((event, ingest, code))
    c, e, i = code[order], event[order], ingest[order]
    best = pd.Series(e).groupby(c, sort=False).cummax().to_numpy()
    cand = np.flatnonzero(e == best)
    cc, ci = c[cand], i[cand]
    last = np.ones(len(cand), dtype=bool)
    last[:-1] = (cc[1:] != cc[:-1]) | (ci[1:] != ci[:-1])
    cand, cc, ci = cand[last], cc[last], ci[last]
    times = np.unique(ci)
    width = len(times) + 1
    key = cc * width + np.searchsorted(times, ci, side="right")
    q_key = q_code * width + np.searchsorted(times, q_time, side="right")
    j = np.searchsorted(key, q_key, side="right") - 1
    jj = np.maximum(j, 0)
    found = (j >= 0) & (q_code >= 0) & (cc[jj] == q_code)
    return np.where(found, order[cand[jj]], -1)


def _best_rows_known(
    code: np.ndarray, event: np.ndarray, ingest: np.ndarray, q_code: np.ndarray, q_time: np.ndarray, q_known: np.ndarray
) -> np.ndarray:
    """``_best_rows`` with a knowledge cut-off per query: the row of the query's entity with the largest (event_time,
    ingest_time) among those with ``event_time <= q_time`` and ``ingest_time <= q_known``, or -1.

    One pass per distinct cut-off (an explanation asks at one or a few): the rows known by it, in (entity, event,
    ingest) order, and one binary search over (entity, event rank) keys, whose last match has the latest ingest.
    """
    out = np.full(len(q_code), -1, dtype="int64")
    for known in np.unique(q_known):
        asked = np.flatnonzero(q_known == known)
        rows = np.flatnonzero(ingest <= known)
        if not len(rows):
            continue
        order = rows[np.lexsort((ingest[rows], event[rows], code[rows]))]
        c, e = code[order], event[order]
        times = np.unique(e)
        width = len(times) + 1
        key = c * width + np.searchsorted(times, e, side="right")
        q_key = q_code[asked] * width + np.searchsorted(times, q_time[asked], side="right")
        j = np.searchsorted(key, q_key, side="right") - 1
        jj = np.maximum(j, 0)
        found = (j >= 0) & (q_code[asked] >= 0) & (c[jj] == q_code[asked])
        out[asked] = np.where(found, order[jj], -1)
    return out


def _float_matrix(n_rows: int, n_cols: int) -> np.ndarray:
    """An uninitialised float64 matrix; a large one in plain 4 KiB pages (an anonymous mmap).

    numpy asks the kernel for transparent huge pages on large arrays. On this project's 2-core VM,
    first-touching fresh memory in 2 MiB pages usually costs several times as much as in 4 KiB ones
    for a matrix the size of a full-size query's answer (benchmarks/bench_feature_store.py prints this
    probe; figures in benchmarks/RESULTS.md). Elsewhere the difference is small either way. The pages are
    touched as the answers are scattered in, while the read batches are being released, which also keeps
    the peak lower.
    """
    size = n_rows * n_cols * 8
    if size < 1 << 24:
        return np.empty((n_rows, n_cols), dtype="float64")
    return np.frombuffer(mmap.mmap(-1, size), dtype="float64").reshape(n_rows, n_cols)


def _answer(
    batches: list[pa.RecordBatch], width: int, q_keys: pa.Array, q_time: np.ndarray, q_known: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The point-in-time answers to the queries from the rows ``_read_rows`` returned."""
    n_q = len(q_time)
    event_out = np.full(n_q, np.iinfo(np.int64).min, dtype="int64")
    ingest_out = event_out.copy()
    if not batches or not sum(b.num_rows for b in batches):
        values = _float_matrix(n_q, width)
        values[:] = np.nan
        return values, event_out.view("datetime64[us]"), ingest_out.view("datetime64[us]")
    keys = pa.Table.from_batches(batches).select([0, 1, 2])
    entities = pc.unique(keys.column(0))
    code = pc.index_in(keys.column(0), value_set=entities).to_numpy().astype("int64")
    q_code = pc.index_in(q_keys, value_set=entities.cast(q_keys.type))
    q_code = pc.fill_null(q_code, -1).to_numpy().astype("int64")
    event, ingest = keys.column(1).to_numpy(), keys.column(2).to_numpy()
    del keys
    if q_known is None:
        rows = _best_rows(code, event, ingest, q_code, q_time)
    else:
        rows = _best_rows_known(code, event, ingest, q_code, q_time, q_known)
    found = rows >= 0
    event_out[found] = event[rows[found]]
    ingest_out[found] = ingest[rows[found]]
    # Scatter batch by batch (queries sorted by answering row): the read features are never concatenated
    # into a second full copy, and the wide rows are never sorted.
    by_row = np.argsort(rows, kind="stable")
    sorted_rows = rows[by_row]
    starts = np.cumsum([0] + [b.num_rows for b in batches])
    bounds = np.searchsorted(sorted_rows, starts, side="left")
    del code, event, ingest, q_code
    values = _float_matrix(n_q, width)  # after the search's temporaries are freed: a lower peak
    for k in range(len(batches)):
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            flat = batches[k].column(3).flatten().to_numpy(zero_copy_only=False)
            block = flat.reshape(-1, width)
            values[by_row[lo:hi]] = block[sorted_rows[lo:hi] - starts[k]]
        batches[k] = None
    values[~found] = np.nan
    return values, event_out.view("datetime64[us]"), ingest_out.view("datetime64[us]")

"""Feature-store benchmark: a wide point-in-time matrix from a bitemporal store (prints figures, not a test).

Run from the repository root::

    .venv/bin/python benchmarks/bench_feature_store.py
    .venv/bin/python benchmarks/bench_feature_store.py --quick   # smoke run: 160 days, 1 repetition (~1 min)
    .venv/bin/python benchmarks/bench_feature_store.py --pipeline  # the store the pipeline leaves (below)

Everything is written into a temporary directory (``tempfile.mkdtemp``),
removed at the end; ``data/lake`` is never touched. Total runtime is about 5-8
minutes on 2 cores, most of it the store build and the naive baseline.

The store
---------
A benchmark ``FeatureFamily`` of ``N_FEATURES`` (50) features (module-level
dummy function, one version each) for ``N_ENTITIES`` (500) entities over the
``N_DAYS`` (2,520) NYSE sessions ending ``END`` (2024-12-31), written with the
real ``files.write_day`` (``BUILD_WORKERS`` processes over contiguous day
ranges), so the layout is exactly the production one:
``features/bench/fv=<version>/date=YYYY-MM-DD/part-<sha>.parquet`` plus
``_manifest.json``. Per session: one delivery of all entities with
``event_time`` = the session close (``time.session_close``) and
``ingest_time`` = close + 15 min, then one restatement delivery (a second
``write_day`` call, so a second file in the same partition) of 2% of them
(10 entities): the same event, other values, ``ingest_time`` later by a random
1-10 days (seconds resolution). Values are standard normals drawn from
``(SEED, day index)``, so any process regenerates the identical rows.

That is 5,040 small files, and DuckDB pays about 1 ms of CPU per file. Each
store is then hard-linked into a second one that ``compaction.compact`` compacts
(one uncompressed file per month written beside the originals, plus a record
of the originals each covers; nothing is rewritten): the figures are for the
compacted store, and the full-size uncompacted store is timed alongside for
comparison; the verification checks the two answer bit for bit alike.

The query
---------
Every (entity, ``time.decision_time(day)``) pair, 500 x 2,520 = 1.26M rows,
for all 50 features: ``FeatureStore(root, defs).get_point_in_time(entity_times,
features)``, read from the Parquet files on disk, with the full bitemporal and
version semantics (manifest resolution, both times, restatements). Each
repetition runs in a fresh subprocess; the wall time is ``time.perf_counter``
around the call (imports, calendar, building the query frame excluded), also
split into the Parquet read (the kernel's ``pit._read_rows``: DuckDB scan + Arrow
export) and the rest; "cpu" is user+sys time of the process over the call
(DuckDB threads included). Peak memory is ``getrusage().ru_maxrss`` of that
process, and "added" is the peak minus the RSS after imports and the query
frame. "2nd call" is the same query again in the same process (memory the
process has just freed is reused; see the first-touch probe below). The median
of ``REPS`` repetitions is reported, repetitions interleaved across sizes.

Baselines (same run, in memory, on the same rows regenerated from the seed)
--------------------------------------------------------------------------
The rows are regenerated once (``_child_rows``) into an uncompressed Arrow file
that each baseline process loads before its clock starts.

a) naive per-date loop: for each date, keep rows with ``ingest_time <= as_of``
   and ``event_time <= as_of``, sort by (entity, event_time, ingest_time), take
   the last row per entity, align to the entities. Timed on ``NAIVE_SAMPLE``
   evenly spaced dates of the 2,520 (first and last included) and extrapolated
   linearly (sum x 2,520 / sample size); the per-date cost grows with the date
   (more rows are known), which the even spacing averages out.
b) ``pandas.merge_asof`` with the same semantics: sort by (entity,
   ingest_time, event_time), running maximum of event_time per entity, keep
   the rows that are the best when they arrive (the latest event per (entity,
   ingest_time)), then ``merge_asof(by="entity_key", on ingest_time <= as_of,
   direction="backward")`` and back to input order. All of it is timed.

Correctness (asserted): the rows regenerated from the seed equal the rows read
back from the store's files; the store's full answer (values, NaN pattern and
the answering event time) equals the merge_asof answer on all 1.26M queries,
and equals the naive loop on the sampled dates.

The store the pipeline leaves behind (``--pipeline``)
---------------------------------------------------------
The full-size store only, hard-linked into a copy compacted as the pipeline compacts after a backfill
(the compact_after_writes sensor, or the CLI after an in-process range run): ``compaction.compact(root,
months=compaction.complete_months(days, today))``, the complete months the backfill wrote, with ``today``
the last session (``END``): a live deployment at the end of a month, whose current month (21 sessions, 42
files) is read uncompacted beside the 119 compacted months. Timed in the same run, ``REPS`` interleaved
repetitions in fresh processes: the full query on that store, on the uncompacted store, and merge_asof
in memory; verified as below (without the naive loop). No scaling, no naive loop.

Scaling: the same query at 1x, 4x and 16x the rows: the last 158, 630 and
2,520 sessions (the 158- and 630-day stores hold hard links to the full
store's partitions, i.e. identical files, each compacted on its own).

The machine: a 2-core VM. Other jobs may run on it; the load average is printed
around every measurement, and the cpu seconds are less sensitive to it than the
wall time. On this VM first-touching fresh memory in 2 MiB transparent huge
pages (what numpy asks the kernel for on large arrays) costs several times as
much as in 4 KiB pages; the first-touch probe (512 MiB in a fresh process, both
ways) measures it, because it is part of every fresh-process figure (the
store allocates its answer matrix in 4 KiB pages for this reason).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import _common as common

REPO = Path(__file__).resolve().parents[1]
SEED = 42
END = "2024-12-31"
N_ENTITIES = 500
N_DAYS = 2520
N_FEATURES = 50
RESTATED_PER_DAY = 10  # 2% of N_ENTITIES
INGEST_LAG_MIN = 15
RESTATE_DELAY_DAYS = (1, 10)
SCALES = (158, 630, 2520)  # 1x, 4x, 16x the rows; 2520 is the full target
REPS = 3
NAIVE_SAMPLE = 50
if os.environ.get("BENCH_FEATURE_STORE_QUICK"):  # --quick: a smoke run of the whole script (~1 min)
    N_DAYS, SCALES, REPS, NAIVE_SAMPLE = 160, (10, 40, 160), 1, 5
BUILD_WORKERS = 2
TARGET_S = 3.0
TARGET_GIB = 4.0
PROVENANCE = {"producer": "bench_feature_store", "producer_version": "bench", "run_id": "first"}
RESTATEMENT_PROVENANCE = {**PROVENANCE, "run_id": "restatement"}


def bench_value(panel, k):
    """The benchmark features' function (never called: values are written directly)."""
    return panel["close"].iloc[-1] * k


# --------------------------------------------------------------------------- data


def _family():
    import pandas as pd

    from quant_assets.core.features.definitions import FeatureDef, FeatureFamily

    features = tuple(
        FeatureDef(f"f{i:02d}", "bench", bench_value, "benchmark", ("raw_prices",), 1, pd.Timedelta(0), params={"k": i})
        for i in range(N_FEATURES)
    )
    return FeatureFamily("bench", "raw_prices", ("close",), features, "benchmark family")


def _entities():
    import numpy as np

    return np.array([f"E{i:04d}" for i in range(N_ENTITIES)])


def _days() -> list:
    """The N_DAYS sessions ending END, oldest first."""
    from quant_assets.core import sessions

    days = sessions.sessions_between(sessions.calendar().first, END)[-N_DAYS:]
    assert len(days) == N_DAYS
    return days


def _day_rows(index: int, day):
    """(first delivery, restatements) of one session; ``index`` is the day's position in ``_days()``."""
    import numpy as np
    import pandas as pd

    from quant_assets.core import sessions

    rng = np.random.default_rng([SEED, index])
    names = [f"f{i:02d}" for i in range(N_FEATURES)]
    event = sessions.session_close(day).as_unit("us")
    first = pd.DataFrame(rng.standard_normal((N_ENTITIES, N_FEATURES)), columns=names)
    first.insert(0, "entity_key", _entities())
    first.insert(1, "event_time", event)
    first.insert(2, "ingest_time", event + pd.Timedelta(minutes=INGEST_LAG_MIN))
    pick = np.sort(rng.choice(N_ENTITIES, RESTATED_PER_DAY, replace=False))
    delay = pd.to_timedelta(np.round(rng.uniform(*RESTATE_DELAY_DAYS, RESTATED_PER_DAY) * 86400), unit="s")
    restated = first.iloc[pick].reset_index(drop=True)
    restated["ingest_time"] = restated["ingest_time"] + delay
    restated[names] = restated[names].to_numpy() + rng.normal(0.0, 0.1, (RESTATED_PER_DAY, N_FEATURES))
    return first, restated


def _generate_rows() -> object:
    """Every stored row of all N_DAYS sessions, regenerated from the seed, as one frame."""
    import pandas as pd

    days = _days()
    frames = []
    for i in range(N_DAYS):
        frames.extend(_day_rows(i, days[i]))
    data = pd.concat(frames, ignore_index=True)
    for c in ("event_time", "ingest_time"):
        data[c] = data[c].astype("datetime64[us, UTC]")
    return data


def _memory_rows(rows_path: str, n_days: int):
    """The rows of the last ``n_days`` sessions in memory (the baselines' input), from ``_child_rows``'s file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.feather as feather

    from quant_assets.core import sessions

    table = feather.read_table(rows_path, memory_map=True)  # only the pages used are read
    if n_days < N_DAYS:
        first = pa.scalar(sessions.session_close(_days()[-n_days]), type=table.schema.field("event_time").type)
        table = table.filter(pc.greater_equal(table["event_time"], first))
    return table.to_pandas()


def _queries(n_days: int):
    """Every (entity, decision time) pair of the last ``n_days`` sessions, date-major."""
    import numpy as np
    import pandas as pd

    from quant_assets.core import sessions

    decisions = pd.DatetimeIndex([sessions.decision_time(d) for d in _days()[-n_days:]])
    return pd.DataFrame(
        {"entity_key": np.tile(_entities(), n_days), "as_of": np.repeat(decisions, N_ENTITIES).as_unit("us")}
    )


def _feature_names() -> list[str]:
    return [f"f{i:02d}" for i in range(N_FEATURES)]


# --------------------------------------------------------------------------- baselines


def naive_one_date(data, as_of, entities, features):
    """What a naive feature store runs per date: filter by both times, sort, latest row per entity.

    Only the key columns are filtered and sorted; the features are taken for the winning rows alone.
    """
    keys = ["entity_key", "event_time", "ingest_time"]
    known = data.loc[(data["ingest_time"] <= as_of) & (data["event_time"] <= as_of), keys]
    latest = known.sort_values(keys).drop_duplicates("entity_key", keep="last")
    return data.loc[latest.index, ["entity_key", "event_time"] + features].set_index("entity_key").reindex(entities)


def merge_asof_answer(data, queries, features):
    """The store's semantics with pandas.merge_asof: running best row per entity in ingest order, then as-of."""
    import numpy as np
    import pandas as pd

    rows = data.sort_values(["entity_key", "ingest_time", "event_time"], kind="stable")
    best = rows.groupby("entity_key", sort=False)["event_time"].cummax()
    candidates = rows[rows["event_time"] == best].drop_duplicates(["entity_key", "ingest_time"], keep="last")
    candidates = candidates.sort_values("ingest_time", kind="stable")
    left = queries.assign(qid=np.arange(len(queries))).sort_values("as_of", kind="stable")
    answer = pd.merge_asof(
        left,
        candidates[["entity_key", "ingest_time", "event_time"] + features],
        left_on="as_of",
        right_on="ingest_time",
        by="entity_key",
        direction="backward",
        allow_exact_matches=True,
    )
    return answer.sort_values("qid").reset_index(drop=True)


# --------------------------------------------------------------------------- child side


def _child_build(root: str, lo: int, hi: int) -> dict:
    from quant_assets.core.features.files import write_day

    family, days = _family(), _days()
    t0 = time.perf_counter()
    written = 0
    for i in range(lo, hi):
        first, restated = _day_rows(i, days[i])
        written += write_day(Path(root), family, days[i], first, PROVENANCE).rows_written
        written += write_day(Path(root), family, days[i], restated, RESTATEMENT_PROVENANCE).rows_written
    return {"rows": written, "wall_s": time.perf_counter() - t0}


def _child_store(root: str, n_days: int) -> dict:
    from quant_assets.core.features import compaction, files, pit
    from quant_assets.core.features.store import FeatureStore

    queries = _queries(n_days)
    features = _feature_names()
    store = FeatureStore(Path(root), {f.name: f for f in _family().features})
    n_files = len(compaction.read_plan(files.family_dir(Path(root), _family())))
    read = pit._read_rows = common.Timer(pit._read_rows)
    rss0, load0, cpu0 = common.maxrss_mb(), common.load1(), common.cpu_s()
    t0 = time.perf_counter()
    answer = store.get_point_in_time(queries, features)
    wall = time.perf_counter() - t0
    cpu, peak, read_s = common.cpu_s() - cpu0, common.maxrss_mb(), read.seconds
    shape = list(answer.shape)
    del answer
    t1 = time.perf_counter()
    store.get_point_in_time(queries, features)
    second = time.perf_counter() - t1
    return {
        "wall_s": wall,
        "read_s": read_s,
        "cpu_s": cpu,
        "second_s": second,
        "rss_before_mb": rss0,
        "rss_peak_mb": peak,
        "shape": shape,
        "files": n_files,
        "load": [load0, common.load1()],
    }


def _child_compact(root: str, today: str | None = None) -> dict:
    """Compact every month, or (with ``today``) the complete months of the sessions, as the pipeline does."""
    import datetime as dt

    from quant_assets.core.features.compaction import compact, complete_months

    months = None if today is None else complete_months(_days(), dt.date.fromisoformat(today))
    load0, cpu0, t0 = common.load1(), common.cpu_s(), time.perf_counter()
    done = compact(Path(root), months=months)
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": common.cpu_s() - cpu0,
        "records": len(done),
        "files": sum(c.files for c in done),
        "rows": sum(c.rows for c in done),
        "load": [load0, common.load1()],
    }


def _child_rows(path: str) -> dict:
    import pyarrow as pa
    import pyarrow.feather as feather

    t0 = time.perf_counter()
    data = _generate_rows()
    feather.write_feather(pa.Table.from_pandas(data, preserve_index=False), path, compression="uncompressed")
    return {"rows": len(data), "wall_s": time.perf_counter() - t0}


def _child_asof(rows_path: str, n_days: int) -> dict:
    data = _memory_rows(rows_path, n_days)
    queries = _queries(n_days)
    rss0, load0, cpu0 = common.maxrss_mb(), common.load1(), common.cpu_s()
    t0 = time.perf_counter()
    merge_asof_answer(data, queries, _feature_names())
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": common.cpu_s() - cpu0,
        "rss_before_mb": rss0,
        "rss_peak_mb": common.maxrss_mb(),
        "load": [load0, common.load1()],
    }


def _sample_dates(n_days: int) -> list[int]:
    import numpy as np

    return sorted({int(x) for x in np.linspace(0, n_days - 1, NAIVE_SAMPLE).round()})


def _child_naive(rows_path: str, n_days: int, out_path: str) -> dict:
    import numpy as np

    data = _memory_rows(rows_path, n_days)
    queries = _queries(n_days)
    features, entities = _feature_names(), _entities()
    sample = _sample_dates(n_days)
    load0, cpu0 = common.load1(), common.cpu_s()
    seconds, answers = [], []
    for k in sample:
        as_of = queries["as_of"].iloc[k * N_ENTITIES]
        t0 = time.perf_counter()
        answer = naive_one_date(data, as_of, entities, features)
        seconds.append(time.perf_counter() - t0)
        answers.append(answer)
    np.save(out_path, np.stack([a[features].to_numpy() for a in answers]))
    np.save(
        out_path.replace(".npy", "_event.npy"),
        np.stack([a["event_time"].to_numpy(dtype="datetime64[us]") for a in answers]),
    )
    return {
        "sample": sample,
        "seconds": seconds,
        "cpu_s": common.cpu_s() - cpu0,
        "rss_peak_mb": common.maxrss_mb(),
        "load": [load0, common.load1()],
    }


def _child_verify(root: str, raw_root: str, rows_path: str, naive_path: str) -> dict:
    import duckdb
    import numpy as np
    import pandas as pd

    from quant_assets.core.features.store import FeatureStore

    features = _feature_names()
    data = _memory_rows(rows_path, N_DAYS)
    # 1. the regenerated rows are the stored rows
    files = sorted(str(p) for p in Path(root).glob("features/bench/fv=*/date=*/part-*.parquet"))
    stored = duckdb.sql(
        f"SELECT entity_key, event_time, ingest_time, {', '.join(features)} FROM read_parquet(?) "
        "ORDER BY entity_key, event_time, ingest_time",
        params=[files],
    ).df()
    mine = data.sort_values(["entity_key", "event_time", "ingest_time"]).reset_index(drop=True)
    assert len(stored) == len(mine) == N_DAYS * (N_ENTITIES + RESTATED_PER_DAY)
    assert (stored["entity_key"].to_numpy() == mine["entity_key"].to_numpy()).all()
    for c in ("event_time", "ingest_time"):
        assert (stored[c].dt.tz_convert("UTC").astype("datetime64[us, UTC]") == mine[c]).all(), c
    assert np.array_equal(stored[features].to_numpy(), mine[features].to_numpy())
    del stored, mine

    # 2. store == merge_asof on the full query
    queries = _queries(N_DAYS)
    got = FeatureStore(Path(root), {f.name: f for f in _family().features}).get_point_in_time(queries, features)
    raw = FeatureStore(Path(raw_root), {f.name: f for f in _family().features}).get_point_in_time(queries, features)
    pd.testing.assert_frame_equal(got, raw, check_exact=True)
    for c in got.columns[2:]:  # the features' float bits and the answering event times
        u, v = (x[c].dt.tz_convert(None) if c.startswith("event_time") else x[c] for x in (got, raw))
        assert u.to_numpy().tobytes() == v.to_numpy().tobytes(), f"compacted != uncompacted in {c}"
    del raw
    want = merge_asof_answer(data, queries, features)
    assert got.shape == (len(queries), 2 + N_FEATURES + 1), got.shape
    assert (got["entity_key"].to_numpy() == queries["entity_key"].to_numpy()).all()
    assert (got["as_of"] == queries["as_of"]).all()
    got_values, want_values = got[features].to_numpy(), want[features].to_numpy()
    assert np.array_equal(got_values, want_values, equal_nan=True), "store != merge_asof"
    got_event = got["event_time_bench"].to_numpy(dtype="datetime64[us]")
    want_event = want["event_time"].dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
    assert np.array_equal(got_event, want_event, equal_nan=True), "event times differ"
    answered = ~np.isnan(want_values[:, 0])
    lag = want["ingest_time"] - want["event_time"]
    restated_answers = int((lag > pd.Timedelta(minutes=INGEST_LAG_MIN)).sum())

    # 3. store == naive on the sampled dates (none in --pipeline mode)
    sampled = _sample_dates(N_DAYS) if naive_path else []
    naive_values = np.load(naive_path) if naive_path else None
    naive_event = np.load(naive_path.replace(".npy", "_event.npy")) if naive_path else None
    for n, k in enumerate(sampled):
        rows = slice(k * N_ENTITIES, (k + 1) * N_ENTITIES)
        assert np.array_equal(got_values[rows], naive_values[n], equal_nan=True), f"store != naive on date {k}"
        assert np.array_equal(got_event[rows], naive_event[n], equal_nan=True), f"event times != naive on {k}"
    return {
        "rows": len(data),
        "queries": len(queries),
        "answered": int(answered.sum()),
        "unanswered": int((~answered).sum()),
        "restated_answers": restated_answers,
        "naive_dates": len(sampled),
    }


def _child_touch() -> dict:
    import mmap

    import numpy as np

    t0 = time.perf_counter()
    a = np.ones(2**26)  # 512 MiB of float64
    thp = time.perf_counter() - t0
    t1 = time.perf_counter()
    a[:] = 2.0
    again = time.perf_counter() - t1
    t2 = time.perf_counter()
    b = np.frombuffer(mmap.mmap(-1, 2**29), dtype="float64")
    b[:] = 1.0
    small = time.perf_counter() - t2
    return {"thp_s": thp, "small_pages_s": small, "rewrite_s": again}


CHILDREN = {
    "build": _child_build,
    "compact": _child_compact,
    "rows": _child_rows,
    "store": _child_store,
    "asof": _child_asof,
    "naive": _child_naive,
    "verify": _child_verify,
    "touch": _child_touch,
}


# --------------------------------------------------------------------------- parent side


_spawn = partial(common.spawn, __file__)  # _spawn(kind, *args): this script's child process
_run = partial(common.run, __file__)


def write_store(tmp: Path) -> Path:
    """The full-size store, written with files.write_day by BUILD_WORKERS processes."""
    from quant_assets.core.features.files import family_dir

    root = tmp / f"store_{N_DAYS}"
    common.section(
        f"build: {N_ENTITIES} entities x {N_DAYS} sessions to {END}, {N_FEATURES} features, "
        f"{RESTATED_PER_DAY / N_ENTITIES:.0%} restated; files.write_day, {BUILD_WORKERS} processes"
    )
    t0 = time.perf_counter()
    first = _run("build", str(root), 0, 1)  # creates the manifest before the workers race for it
    chunk = -(-(N_DAYS - 1) // BUILD_WORKERS)
    procs = [_spawn("build", str(root), lo, min(lo + chunk, N_DAYS)) for lo in range(1, N_DAYS, chunk)]
    results = [first] + [common.collect(p) for p in procs]
    wall = time.perf_counter() - t0
    base = family_dir(root, _family())
    files = sorted(base.glob("date=*/part-*.parquet"))
    size = sum(f.stat().st_size for f in files)
    rows = sum(r["rows"] for r in results)
    print(
        f"built in {wall:.0f} s: {rows:,} rows ({N_DAYS * N_ENTITIES:,} first deliveries + "
        f"{N_DAYS * RESTATED_PER_DAY:,} restatements), {len(files):,} files in "
        f"{len(list(base.glob('date=*')))} partitions, {size / 2**20:.0f} MiB on disk; {base.relative_to(tmp)}"
    )
    return root


def link_store(src: Path, dst: Path, n_days: int | None = None) -> Path:
    """A store holding hard links to ``src``'s manifest and the partitions of its last ``n_days`` (all: None)."""
    from quant_assets.core.features.files import family_dir

    src_base, dst_base = family_dir(src, _family()), family_dir(dst, _family())
    dst_base.mkdir(parents=True)
    shutil.copy2(src_base / "_manifest.json", dst_base / "_manifest.json")
    for part in sorted(src_base.glob("date=*"))[-(n_days or N_DAYS) :]:
        (dst_base / part.name).mkdir()
        for f in part.iterdir():
            os.link(f, dst_base / part.name / f.name)
    return dst


def compacted_copy(src: Path, dst: Path) -> dict:
    """The store ``src`` hard-linked into ``dst``, which ``compaction.compact`` then compacts (in a child); the
    child's figures. Also what benchmarks/bench_object_store.py builds its store with."""
    return _run("compact", str(link_store(src, dst)))


def make_rows(tmp: Path) -> None:
    made = _run("rows", str(tmp / "rows.arrow"))
    print(
        f"in-memory rows for the baselines regenerated from the seed in {made['wall_s']:.0f} s: {made['rows']:,} rows"
    )


def build_store(tmp: Path) -> Path:
    from quant_assets.core.features.files import family_dir

    root = write_store(tmp)
    for n_days in SCALES[:-1]:
        link_store(root, tmp / f"store_{n_days}", n_days)
    print(f"compaction (compaction.compact, one file per month beside the originals); {common.load_text()}")
    for n_days in SCALES:
        packed = tmp / f"packed_{n_days}"
        c = compacted_copy(tmp / f"store_{n_days}", packed)
        size = sum(f.stat().st_size for f in (family_dir(packed, _family()) / "_compacted").glob("*.parquet"))
        print(
            f"  {n_days} sessions: {c['files']:,} files -> {c['records']} compacted files ({size / 2**20:.0f} MiB,"
            f" uncompressed) in {c['wall_s']:.0f} s wall, {c['cpu_s']:.0f} s cpu, load {common.loads([c])}"
        )
    make_rows(tmp)
    return root


def bench(tmp: Path, root: Path) -> None:
    common.section("first-touch probe: 512 MiB of fresh memory (then written once), fresh process")
    time.sleep(5)
    touch = _run("touch")
    print(
        f"numpy array (asks for transparent huge pages) {touch['thp_s']:.2f} s; anonymous mmap (4 KiB pages, what "
        f"the store's answer matrix uses) {touch['small_pages_s']:.2f} s; rewriting touched memory "
        f"{touch['rewrite_s']:.2f} s"
    )

    common.section(f"store and merge_asof at 1x/4x/16x rows, {REPS} interleaved repetitions, fresh processes")
    rows_path = str(tmp / "rows.arrow")
    store_runs: dict[int, list[dict]] = {n: [] for n in SCALES}
    asof_runs: dict[int, list[dict]] = {n: [] for n in SCALES}
    raw_runs: list[dict] = []  # the full-size store before compaction, for comparison
    for _ in range(REPS):
        for n in SCALES:
            store_runs[n].append(_run("store", str(tmp / f"packed_{n}"), n))
            asof_runs[n].append(_run("asof", rows_path, n))
        raw_runs.append(_run("store", str(root), N_DAYS))
    print(f"naive per-date loop, {NAIVE_SAMPLE} sampled dates of {N_DAYS}; {common.load_text()}")
    naive_path = str(tmp / "naive_answers.npy")
    naive = _run("naive", rows_path, N_DAYS, naive_path)
    print(f"verification (full query: store vs merge_asof; sampled dates: store vs naive); {common.load_text()}")
    check = _run("verify", str(tmp / f"packed_{N_DAYS}"), str(root), rows_path, naive_path)

    rows = []
    base_n = SCALES[0]
    for n in SCALES:
        s, a = store_runs[n], asof_runs[n]
        rows.append(
            [
                f"{n / base_n:.0f}x",
                n,
                f"{n * (N_ENTITIES + RESTATED_PER_DAY):,}",
                f"{n * N_ENTITIES:,}",
                f"{common.med(s, 'wall_s'):.2f}",
                f"{common.med(s, 'read_s'):.2f}",
                f"{common.med(s, 'wall_s') - common.med(s, 'read_s'):.2f}",
                f"{common.med(s, 'cpu_s'):.2f}",
                f"{common.med(s, 'second_s'):.2f}",
                f"{common.med(s, 'wall_s') / common.med(store_runs[base_n], 'wall_s'):.1f}",
                f"{max(r['rss_peak_mb'] for r in s):.0f}",
                f"{max(r['rss_peak_mb'] - r['rss_before_mb'] for r in s):.0f}",
                f"{common.med(a, 'wall_s'):.2f}",
                f"{common.med(a, 'wall_s') / common.med(asof_runs[base_n], 'wall_s'):.1f}",
                f"{max(r['rss_peak_mb'] for r in a):.0f}",
                f"{common.med(s, 'wall_s') / common.med(a, 'wall_s'):.2f}",
                common.loads(s + a),
            ]
        )
    print()
    common.print_table(
        ["rows", "days", "stored rows", "queries", "store s", "read s", "rest s", "cpu s", "2nd call s", "growth"]
        + ["peak MiB", "added MiB", "merge_asof s", "growth", "peak MiB (with data)", "store/asof", "load"],
        rows,
        "store s: median wall of get_point_in_time (fresh process); read s: inside the Parquet read (DuckDB scan +"
        " Arrow export); rest s: the point-in-time search, gather and frame; growth: vs 1x; peak MiB: max"
        " ru_maxrss over the repetitions; added: peak minus RSS after imports and the query frame.",
    )

    full_store, full_asof = store_runs[N_DAYS], asof_runs[N_DAYS]
    store_s, asof_s = common.med(full_store, "wall_s"), common.med(full_asof, "wall_s")
    per_date = statistics.mean(naive["seconds"])
    naive_s = sum(naive["seconds"]) * N_DAYS / len(naive["seconds"])
    peak_gib = max(r["rss_peak_mb"] for r in full_store) / 1024
    print(
        f"\n== full target: {N_ENTITIES} entities x {N_DAYS} days x {N_FEATURES} features "
        f"({check['queries']:,} queries, {check['rows']:,} stored rows)"
    )
    print(
        f"store (on disk, Parquet, compacted: {full_store[0]['files']} files): {store_s:.2f} s wall"
        f" (reps {common.reps(full_store)}), of which Parquet read {common.med(full_store, 'read_s'):.2f} s and"
        f" the rest {store_s - common.med(full_store, 'read_s'):.2f} s; cpu {common.med(full_store, 'cpu_s'):.2f} s;"
        f" 2nd call in the same process {common.med(full_store, 'second_s'):.2f} s; load {common.loads(full_store)}"
    )
    print(
        f"same store before compaction ({raw_runs[0]['files']:,} files): {common.med(raw_runs, 'wall_s'):.2f} s wall"
        f" (reps {common.reps(raw_runs)}), Parquet read {common.med(raw_runs, 'read_s'):.2f} s, cpu"
        f" {common.med(raw_runs, 'cpu_s'):.2f} s, peak {max(r['rss_peak_mb'] for r in raw_runs) / 1024:.2f} GiB;"
        f" load {common.loads(raw_runs)}"
    )
    print(
        f"store peak RSS {peak_gib:.2f} GiB (process), added over imports + query frame "
        f"{max(r['rss_peak_mb'] - r['rss_before_mb'] for r in full_store) / 1024:.2f} GiB"
    )
    print(
        f"naive per-date loop (in memory): {per_date:.3f} s/date on {len(naive['seconds'])} sampled dates "
        f"(first {naive['seconds'][0]:.3f}, last {naive['seconds'][-1]:.3f}), extrapolated x{N_DAYS}: "
        f"{naive_s:.0f} s; peak {naive['rss_peak_mb'] / 1024:.2f} GiB"
    )
    print(
        f"merge_asof (in memory): {asof_s:.2f} s (reps {common.reps(full_asof)}),"
        f" peak {max(r['rss_peak_mb'] for r in full_asof) / 1024:.2f} GiB"
    )
    print(
        f"ratios: store/naive {store_s / naive_s:.4f} (naive/store {naive_s / store_s:.0f}x), "
        f"store/merge_asof {store_s / asof_s:.2f}; store without the Parquet read / merge_asof "
        f"{(store_s - common.med(full_store, 'read_s')) / asof_s:.2f}"
    )
    print(
        f"targets: time < {TARGET_S:.0f} s: {'MET' if store_s < TARGET_S else 'NOT MET'} ({store_s:.2f} s); "
        f"memory < {TARGET_GIB:.0f} GiB: {'MET' if peak_gib < TARGET_GIB else 'NOT MET'} ({peak_gib:.2f} GiB); "
        f"load during the full-size store runs {common.loads(full_store)}"
    )
    print(
        f"verified: stored rows == regenerated rows; compacted store == uncompacted store bit for bit; store =="
        f" merge_asof on all {check['queries']:,} queries "
        f"(values, NaN pattern, answering event time): {check['answered']:,} answered, {check['unanswered']:,} "
        f"before any data; {check['restated_answers']:,} answers are restated values; store == naive on "
        f"{check['naive_dates']} sampled dates"
    )


def pipeline(tmp: Path) -> None:
    """The full-size store as the pipeline leaves it (automatic compaction) against merge_asof, same run."""
    root = write_store(tmp)
    auto = link_store(root, tmp / "auto")
    c = _run("compact", str(auto), END)
    print(
        f"automatic compaction (the complete months of the backfill's sessions, today = {END}): {c['files']:,} files"
        f" -> {c['records']} compacted months in {c['wall_s']:.0f} s wall, {c['cpu_s']:.0f} s cpu; load"
        f" {common.loads([c])}"
    )
    make_rows(tmp)
    common.section(f"the full query, {REPS} interleaved repetitions in fresh processes")
    runs: dict[str, list[dict]] = {"auto": [], "raw": [], "asof": []}
    rows_path = str(tmp / "rows.arrow")
    for _ in range(REPS):
        runs["auto"].append(_run("store", str(auto), N_DAYS))
        runs["asof"].append(_run("asof", rows_path, N_DAYS))
        runs["raw"].append(_run("store", str(root), N_DAYS))
    check = _run("verify", str(auto), str(root), rows_path, "")
    asof_cpu = common.med(runs["asof"], "cpu_s")
    table = [
        [
            label,
            runs[k][0].get("files", "-"),
            f"{common.med(runs[k], 'wall_s'):.2f}",
            f"{common.med(runs[k], 'cpu_s'):.2f}",
            common.reps(runs[k], "cpu_s"),
            f"{common.med(runs[k], 'cpu_s') / asof_cpu:.2f}",
            f"{max(r['rss_peak_mb'] for r in runs[k]) / 1024:.2f}",
            common.loads(runs[k]),
        ]
        for k, label in [("auto", "store as the pipeline leaves it"), ("raw", "same store, never compacted")]
        + [("asof", "merge_asof in memory")]
    ]
    print()
    common.print_table(
        "|files|wall s|cpu s|cpu s per rep|cpu / merge_asof|peak GiB|load",
        table,
        f"{N_ENTITIES} entities x {N_DAYS} days x {N_FEATURES} features, {check['queries']:,} queries; medians of "
        f"{REPS}; cpu: user+sys of the process over the call, DuckDB threads included.",
    )
    print(
        f"verified: the automatically compacted store == the uncompacted store bit for bit == merge_asof on all "
        f"{check['queries']:,} queries (values, NaN pattern, answering event time)"
    )


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 160 days, 1 repetition")
    parser.add_argument("--pipeline", action="store_true", help="the store the pipeline leaves vs merge_asof")
    args = parser.parse_args()
    if args.quick:
        os.environ["BENCH_FEATURE_STORE_QUICK"] = "1"
        rest = [a for a in sys.argv[1:] if a != "--quick"]
        os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *rest])
    with common.report("bench_feature_store", "quant_assets/core/features") as tmp:
        if args.pipeline:
            pipeline(tmp)
        else:
            bench(tmp, build_store(tmp))


if __name__ == "__main__":
    if not common.child_main(CHILDREN):
        main()

"""Object-store benchmark: the lake on an S3-compatible server against the same lake on local disk, in one
run (prints figures, not a test).

Run from the repository root::

    .venv/bin/python benchmarks/bench_object_store.py             # full size, 8-12 minutes on 2 shared cores
    .venv/bin/python benchmarks/bench_object_store.py --quick     # smoke run: 160 days, 1 repetition (~1 min)
    .venv/bin/python benchmarks/bench_object_store.py --profile   # and a cProfile of one query from the bucket

Everything is written into a temporary directory and a bucket of a server the script starts and stops;
``data/lake`` is never touched.

The server
----------
moto's S3 server (``quant_assets_tests/object_store.py``) on 127.0.0.1, one bucket. It is a pure-Python
server on the same (shared, 2-core) machine as the client: its CPU seconds over each measurement
(``/proc/<pid>/stat``) are printed beside the client's, and it is slower than a real object store at some
things (a listing page of 1,000 keys costs it about 0.2 s of CPU), faster at others (no network). The
figures are for this server; a real store adds latency per round trip and removes the server's CPU from
this machine.

1. The point-in-time matrix
---------------------------
bench_feature_store.py's store, built by its own functions (``write_store``, ``compacted_copy``): 500
entities x 2,520 sessions x 50 features, 2% restated, then compacted (121 monthly files beside the 5,040
originals). The compacted store's files are uploaded as they are (s3fs ``put``, untimed) to
``s3://<bucket>/pit``; the local figures read the same files from the temporary directory (in the page
cache after the build). The query is bench_feature_store.py's: ``FeatureStore(root).get_point_in_time``
for all 1.26M (entity, decision time) pairs and all 50 features, in a fresh process each, local, bucket and
bucket through a warm read cache (``QUANT_READ_CACHE``'s ``storage/cache.py``, filled by one untimed query
first) interleaved, ``REPS`` times. "wall" is ``time.perf_counter`` around the call, "cpu" the process's user+sys
seconds over it (all threads), "server cpu" moto's. Phases (time inside, wall): "plan" = the time spent
choosing files and not reading them (the family version directories and their manifests, then
``compaction.read_planned`` less the reads it makes: the compaction records, and the wait for the listing of
the originals that outlasts the reading of the compacted parts), "fetch" = the kernel's ``fs.read_many`` (its
GETs; bucket only), "decode+scan" = the rest of ``pit._read_rows`` (DuckDB over the files, or pyarrow's decode
and DuckDB over Arrow), "answer" = ``pit._answer`` (the search and the scatter), "rest" = the remainder (the
query frame, the result frame). The answers must be identical: every run's values (float bits, so the NaN
pattern too) and answering event times hash alike.

2. One daily session
--------------------
The synthetic market (200 names), a lake that already holds the ``HISTORY`` sessions before ``DAY``
(``features.backfill.backfill`` into a local directory, untimed; the bucket gets a copy of those files
under a fresh prefix per repetition, the local runs a hard-linked copy). Timed, in a fresh process: the
next session, ``DAY``, through the core calls the daily assets make: ``ingest_prices``, ``ingest_alt``
(clock "backfill", ``now`` fixed), then ``materialize`` of each feature family with the assets' default
checks (25 rows recomputed per day, 20 stored files verified). Afterwards every object the session
wrote (new names against the history) is compared between the two stores: same names, same bytes.

What is counted
---------------
Requests: every HTTP request the server answered, retries included, by S3 operation, from its access log
(so both clients count: s3fs's, and pyarrow's listings of whole directories). "MiB in": the Content-Length
of every response but a HEAD's to botocore's requests (the child wraps aiobotocore's
``AioEndpoint._do_get_response``): object bodies and s3fs's listing XML, not pyarrow's listing pages;
"MiB out": request bodies (PUTs). "read MiB" is ``/proc/self/io`` rchar over the call: the bytes the
process got from read/pread calls, i.e. from files (page-cache hits included) but not from sockets (asyncio
receives with recv), so on the bucket it is what the process read locally (its own modules, the calendar).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import _common as common

if os.environ.get("BENCH_OBJECT_STORE_QUICK"):
    os.environ["BENCH_FEATURE_STORE_QUICK"] = "1"  # the store builder's own smoke size (160 days)
import bench_feature_store as store_bench

REPS = 1 if os.environ.get("BENCH_OBJECT_STORE_QUICK") else 3
TARGET_RATIO = 2.0
DAY = "2024-06-28"
HISTORY = 70  # sessions before DAY: the longest feature window (ret_60) needs 61
N_TICKERS = 200
NOW = "2024-07-15T00:00:00Z"  # the ingest's fixed wall clock: after everything DAY's source serves is due
PROVENANCE = {"producer": "bench_object_store", "producer_version": "bench", "run_id": "daily"}
LOOKAHEAD_SAMPLE, VERIFY_SAMPLE = 25, 20  # the feature assets' defaults (defs/config.py FeatureConfig)

_spawn = partial(common.spawn, __file__)
_run = partial(common.run, __file__)


# --------------------------------------------------------------------------- child side


class Probe:
    """Requests to the object store, this process's CPU and read bytes, and the server's CPU, over a call.

    Requests are counted from the server's access log (its stdout, found through ``/proc/<pid>/fd/1``), so
    every client counts: s3fs's (botocore) and pyarrow's (listings of whole directories, ``fs._find``).
    Bytes are counted in botocore's requests only, so "MiB in" leaves out the listing pages pyarrow reads."""

    def __init__(self, server_pid: int):
        self.server_pid, self.bytes_in, self.bytes_out, self.log, self.offset = server_pid, 0, 0, None, 0
        if server_pid:
            self.log = Path(os.readlink(f"/proc/{server_pid}/fd/1"))
            self._count_bytes()

    def _count_bytes(self) -> None:
        from aiobotocore import endpoint

        send = endpoint.AioEndpoint._do_get_response
        probe = self

        async def counted(self, request, operation_model, context):
            result = await send(self, request, operation_model, context)
            probe.bytes_out += int(request.headers.get("Content-Length") or 0)
            response = result[0][0] if result[0] is not None else None
            if response is not None and request.method != "HEAD":
                probe.bytes_in += int(response.headers.get("content-length", 0))
            return result

        endpoint.AioEndpoint._do_get_response = counted

    @property
    def requests(self) -> dict:
        """The requests the server logged since ``start``, by S3 operation (a line is logged before the
        response is sent, so every answered request is in it)."""
        if self.log is None:
            return {}
        with open(self.log, "rb") as log:
            log.seek(self.offset)
            lines = log.read().decode(errors="replace").splitlines()
        counts: dict[str, int] = {}
        for line in lines:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # werkzeug colours some lines (a ranged GET's 206)
            found = re.search(r'"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP', line)
            if found:
                name = _operation(*found.groups())
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    def server_cpu(self) -> float:
        """The server process's user+sys CPU seconds so far (0 for the local runs)."""
        if not self.server_pid:
            return 0.0
        fields = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self.offset = self.log.stat().st_size if self.log else 0
        self.bytes_in = self.bytes_out = 0
        self.load0, self.cpu0, self.server0, self.rchar0 = common.load1(), common.cpu_s(), self.server_cpu(), _rchar()
        self.t0 = time.perf_counter()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        return {
            "wall_s": wall,
            "cpu_s": common.cpu_s() - self.cpu0,
            "server_cpu_s": self.server_cpu() - self.server0,
            "read_mb": (_rchar() - self.rchar0) / 2**20,
            "requests": self.requests,
            "in_mb": self.bytes_in / 2**20,
            "out_mb": self.bytes_out / 2**20,
            "load": [self.load0, common.load1()],
        }


def _operation(method: str, target: str) -> str:
    """The S3 operation of a logged request: a GET of a bucket with a ``list-type`` query is a listing."""
    path, _, query = target.partition("?")
    if method == "GET" and "list-type=" in query:
        return "ListObjectsV2"
    names = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject"}
    return names.get(method, method) if path.strip("/").count("/") else f"{method} bucket"


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def _open_root(root: str, options: dict):
    from quant_assets.core.storage import fs

    if options:
        fs.register("s3", options)
    return fs.location(root)


def _answer_digest(answer, features: list[str]) -> dict:
    """Hashes of the answer's float bits (NaN pattern included) and its answering event times."""
    import numpy as np

    values = np.ascontiguousarray(answer[features].to_numpy(dtype="float64"))
    event = np.ascontiguousarray(answer["event_time_bench"].dt.tz_convert(None).to_numpy(dtype="datetime64[us]"))
    return {
        "values_sha256": hashlib.sha256(values.tobytes()).hexdigest(),
        "event_sha256": hashlib.sha256(event.tobytes()).hexdigest(),
        "nan": int(np.isnan(values).sum()),
        "shape": list(answer.shape),
    }


def _child_pit(root: str, options: dict, server_pid: int, profile_path: str, read_cache: str) -> dict:
    from quant_assets.core.features import pit
    from quant_assets.core.features import store as store_module
    from quant_assets.core.storage import fs

    location = _open_root(root, options)
    queries, features = store_bench._queries(store_bench.N_DAYS), store_bench._feature_names()
    definitions = {f.name: f for f in store_bench._family().features}
    store = store_module.FeatureStore(location, definitions, Path(read_cache) if read_cache else None)
    timers = {"groups": common.Timer(store._groups), "read_planned": common.Timer(store_module.read_planned)}
    store._groups, store_module.read_planned = timers["groups"], timers["read_planned"]
    timers["read_many"] = common.Timer(fs.read_many)  # the kernel's fetches only (not the plan's records)
    pit.fs = SimpleNamespace(**{**vars(fs), "read_many": timers["read_many"]})
    for name in ("_read_rows", "_answer"):
        timers[name] = common.Timer(getattr(pit, name))
        setattr(pit, name, timers[name])
    probe = Probe(server_pid)
    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
    probe.start()
    if profiler:
        profiler.enable()
    answer = store.get_point_in_time(queries, features)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile_path)
    out = probe.stop()
    phases = {
        "plan_s": timers["groups"].seconds + timers["read_planned"].seconds - timers["_read_rows"].seconds,
        "fetch_s": timers["read_many"].seconds,
        "scan_s": timers["_read_rows"].seconds - timers["read_many"].seconds,
        "answer_s": timers["_answer"].seconds,
    }
    phases["rest_s"] = out["wall_s"] - sum(phases.values())
    return {**out, **phases, **_answer_digest(answer, features), "rss_peak_mb": common.maxrss_mb()}


def _history_range() -> tuple:
    from quant_assets.core import sessions

    index = sessions.session_index(sessions.require_session(DAY))
    return sessions.session_at(index - HISTORY), sessions.session_at(index - 1)


def _child_history(root: str) -> dict:
    from quant_assets.core.features.backfill import backfill
    from quant_assets.core.ingest.sources import SyntheticMarket

    first, last = _history_range()
    market = SyntheticMarket(seed=42, n_tickers=N_TICKERS)
    t0 = time.perf_counter()
    backfill(Path(root), market, market, first, last, PROVENANCE)
    return {"first": str(first), "last": str(last), "wall_s": time.perf_counter() - t0}


def _child_daily(root: str, options: dict, server_pid: int) -> dict:
    import pandas as pd

    from quant_assets.core import sessions
    from quant_assets.core.features.library import FAMILIES
    from quant_assets.core.features.materialize import materialize
    from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
    from quant_assets.core.ingest.sources import SyntheticMarket

    location = _open_root(root, options)
    market, day, now = SyntheticMarket(seed=42, n_tickers=N_TICKERS), sessions.require_session(DAY), pd.Timestamp(NOW)
    steps, step_requests = {}, {}
    probe = Probe(server_pid)

    def step(name: str, t: float) -> float:
        steps[name] = time.perf_counter() - t
        step_requests[name] = sum(probe.requests.values()) - sum(step_requests.values())
        return time.perf_counter()

    probe.start()
    t = time.perf_counter()
    prices = ingest_prices(market, day, location, "backfill", now)
    t = step("ingest_prices", t)
    alt = ingest_alt(market, day, location, "backfill", now)
    t = step("ingest_alt", t)
    problems, written, verified = [], 0, 0
    for name, family in FAMILIES.items():
        run = materialize(location, family, [day], PROVENANCE, LOOKAHEAD_SAMPLE, VERIFY_SAMPLE)
        t = step(f"materialize {name}", t)
        written, verified = written + run.written, verified + sum(run.files.checked.values())
        problems += run.lookahead + run.early + [str(p) for p in run.files.problems]
    out = probe.stop()
    rows = {"prices": prices.rows_written, "alt": alt.rows_written, "features": written, "verified_files": verified}
    return {**out, "steps": steps, "step_requests": step_requests, "rows": rows, "problems": problems}


CHILDREN = {"pit": _child_pit, "history": _child_history, "daily": _child_daily}


# --------------------------------------------------------------------------- parent side


def objects(root) -> dict[str, str]:
    """Every object under ``root`` (a local directory or a bucket prefix): relative name -> SHA-256."""
    from quant_assets.core.storage import fs

    if fs.is_local(root):
        files = sorted(p for p in root.rglob("*") if p.is_file())
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    prefix = root.path.rstrip("/") + "/"
    keys = sorted(root.fs.find(root.path))
    blobs = root.fs.cat(keys, on_error="raise")
    return {k[len(prefix) :]: hashlib.sha256(blobs[k]).hexdigest() for k in keys}


def upload(local: Path, url: str) -> dict:
    """Every file under ``local`` to the same names under ``url`` (s3fs ``put``, concurrent); untimed setup."""
    from quant_assets.core.storage import fs

    root = fs.location(url)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    t0 = time.perf_counter()
    root.fs.put([str(p) for p in files], [f"{root.path}/{p.relative_to(local).as_posix()}" for p in files])
    size = sum(p.stat().st_size for p in files)
    return {"objects": len(files), "mb": size / 2**20, "wall_s": time.perf_counter() - t0}


def requests_text(requests: dict) -> str:
    short = {"ListObjectsV2": "List", "GetObject": "GET", "HeadObject": "HEAD", "PutObject": "PUT"}
    return " ".join(f"{short.get(k, k)} {v}" for k, v in requests.items()) or "-"


def median_row(label: str, runs: list[dict], extra: list) -> list:
    return [
        label,
        f"{common.med(runs, 'wall_s'):.2f}",
        common.reps(runs),
        f"{common.med(runs, 'cpu_s'):.2f}",
        f"{common.med(runs, 'server_cpu_s'):.2f}",
        requests_text(runs[0]["requests"]),
        f"{common.med(runs, 'in_mb'):.1f}",
        f"{common.med(runs, 'out_mb'):.2f}",
        f"{common.med(runs, 'read_mb'):.0f}",
        *extra,
        common.loads(runs),
    ]


def build_pit(tmp: Path, server, bucket: str) -> tuple[Path, str]:
    from quant_assets.core.features import compaction, files

    common.section(
        f"point-in-time store: {store_bench.N_ENTITIES} entities x {store_bench.N_DAYS} sessions x "
        f"{store_bench.N_FEATURES} features, {store_bench.RESTATED_PER_DAY / store_bench.N_ENTITIES:.0%} restated "
        "(bench_feature_store.write_store), compacted (compacted_copy), uploaded; untimed"
    )
    t0 = time.perf_counter()
    root = store_bench.write_store(tmp)
    packed = tmp / "packed"
    c = store_bench.compacted_copy(root, packed)
    built = time.perf_counter() - t0
    url = f"s3://{bucket}/pit"
    up = upload(packed, url)
    plan = compaction.read_plan(files.family_dir(packed, store_bench._family()))
    print(
        f"built and compacted in {built:.0f} s ({c['files']:,} originals -> {c['records']} compacted files); "
        f"uploaded {up['objects']:,} objects, {up['mb']:.0f} MiB to {url} in {up['wall_s']:.0f} s; a query reads "
        f"{len(plan)} files, {sum(p.stat().st_size for p in plan) / 2**20:.0f} MiB; {common.load_text()}"
    )
    return packed, url


def bench_pit(packed: Path, url: str, server, profile: bool, tmp: Path) -> None:
    common.section(
        f"point-in-time matrix: local disk, bucket, and bucket through a warm read cache; {REPS} interleaved "
        "repetitions, fresh processes"
    )
    options, pid = server.options, server.process.pid
    cache = tmp / "read_cache"
    filled = _run("pit", url, options, pid, "", str(cache))  # untimed: fills the cache (a first query)
    runs: dict[str, list[dict]] = {"local disk": [], "bucket (moto, 127.0.0.1)": [], "bucket, warm read cache": []}
    for _ in range(REPS):
        runs["local disk"].append(_run("pit", str(packed), {}, 0, "", ""))
        runs["bucket (moto, 127.0.0.1)"].append(_run("pit", url, options, pid, "", ""))
        runs["bucket, warm read cache"].append(_run("pit", url, options, pid, "", str(cache)))
    every = [filled, *(r for rs in runs.values() for r in rs)]
    digests = {(r["values_sha256"], r["event_sha256"], r["nan"], tuple(r["shape"])) for r in every}
    assert len(digests) == 1, f"the answers differ between runs: {digests}"
    rows = []
    for label, rs in runs.items():
        phases = [f"{common.med(rs, k):.2f}" for k in ("plan_s", "fetch_s", "scan_s", "answer_s", "rest_s")]
        rows.append(median_row(label, rs, [*phases, f"{max(r['rss_peak_mb'] for r in rs) / 1024:.2f}"]))
    print()
    common.print_table(
        "store|wall s|reps|cpu s|server cpu s|requests (1st run)|MiB in|MiB out|read MiB|plan s|fetch s"
        "|decode+scan s|answer s|rest s|peak GiB|load",
        rows,
        "medians; phases: wall inside each (module docstring); peak: max ru_maxrss of the query process",
    )
    print(
        f"filling the read cache (the first query through it): wall {filled['wall_s']:.2f} s, cpu "
        f"{filled['cpu_s']:.2f} s, {requests_text(filled['requests'])}"
    )
    local = runs["local disk"]
    for label in ("bucket (moto, 127.0.0.1)", "bucket, warm read cache"):
        remote = runs[label]
        wall = common.med(remote, "wall_s") / common.med(local, "wall_s")
        cpu = common.med(remote, "cpu_s") / common.med(local, "cpu_s")
        both = (common.med(remote, "cpu_s") + common.med(remote, "server_cpu_s")) / common.med(local, "cpu_s")
        print(
            f"{label} / local: wall {wall:.2f}, client cpu {cpu:.2f}, client + server cpu {both:.2f}; target "
            f"within {TARGET_RATIO:.0f}x of local disk (wall): {'MET' if wall <= TARGET_RATIO else 'NOT MET'}"
        )
    shape = local[0]["shape"]
    print(
        f"answers identical in all {len(every)} runs: {shape[0]:,} rows x {shape[1]} columns, same float "
        f"bits (values and NaN pattern: {local[0]['nan']:,} NaN) and answering event times"
    )
    if profile:
        profile_pit(url, server, tmp)


def profile_pit(url: str, server, tmp: Path) -> None:
    import pstats

    common.section("cProfile of one query from the bucket (cumulative seconds, top 30)")
    path = tmp / "pit.prof"
    run = _run("pit", url, server.options, server.process.pid, str(path), "")
    print(f"wall under the profiler {run['wall_s']:.2f} s")
    pstats.Stats(str(path), stream=sys.stdout).sort_stats("cumulative").print_stats(30)


def bench_daily(tmp: Path, server, bucket: str) -> None:
    common.section(
        f"one daily session ({DAY}, synthetic market of {N_TICKERS} names) on a lake holding the {HISTORY} sessions"
        f" before it: local disk and bucket, {REPS} interleaved repetitions, fresh processes"
    )
    history = tmp / "history"
    made = _run("history", str(history))
    base = objects(history)
    print(
        f"history {made['first']}..{made['last']} (features.backfill) in {made['wall_s']:.0f} s: {len(base)} "
        f"objects, {sum(p.stat().st_size for p in history.rglob('*') if p.is_file()) / 2**20:.1f} MiB; untimed"
    )
    local, remote, written = [], [], []
    for rep in range(REPS):
        copy, url = tmp / f"daily_{rep}", f"s3://{bucket}/daily-{rep}"
        shutil.copytree(history, copy, copy_function=os.link)
        upload(history, url)
        local.append(_run("daily", str(copy), {}, 0))
        remote.append(_run("daily", url, server.options, server.process.pid))
        written.append(compare_written(copy, url, base))
    print_daily(local, remote, written)


def compare_written(copy: Path, url: str, base: dict[str, str]) -> dict[str, str]:
    """The objects the session wrote in each store (names not in the history): asserted the same names and bytes."""
    from quant_assets.core.storage import fs

    here, there = objects(copy), objects(fs.location(url))
    assert {k: here[k] for k in base} == base == {k: there[k] for k in base}, "the history changed"
    new_here = {k: v for k, v in here.items() if k not in base}
    new_there = {k: v for k, v in there.items() if k not in base}
    assert new_here == new_there, f"written objects differ: {sorted(set(new_here.items()) ^ set(new_there.items()))}"
    return new_here


def print_daily(local: list[dict], remote: list[dict], written: list[dict[str, str]]) -> None:
    for run in local + remote:
        assert not run["problems"], run["problems"]
        assert run["rows"] == local[0]["rows"], (run["rows"], local[0]["rows"])
    rows = []
    for label, runs in (("local disk", local), ("bucket (moto, 127.0.0.1)", remote)):
        steps = [f"{common.med([r['steps'] for r in runs], k):.2f}" for k in runs[0]["steps"]]
        rows.append(median_row(label, runs, steps))
    print()
    common.print_table(
        "store|wall s|reps|cpu s|server cpu s|requests (1st run)|MiB in|MiB out|read MiB|"
        + "|".join(f"{k} s" for k in local[0]["steps"])
        + "|load",
        rows,
        "medians; the steps are wall seconds of each core call",
    )
    wall = common.med(remote, "wall_s") / common.med(local, "wall_s")
    cpu = common.med(remote, "cpu_s") / common.med(local, "cpu_s")
    both = (common.med(remote, "cpu_s") + common.med(remote, "server_cpu_s")) / common.med(local, "cpu_s")
    print(f"bucket / local: wall {wall:.2f}, client cpu {cpu:.2f}, client + server cpu {both:.2f}")
    print(
        "requests per step (bucket, 1st run): " + ", ".join(f"{k} {v}" for k, v in remote[0]["step_requests"].items())
    )
    r = local[0]["rows"]
    print(
        f"written per run: {r['prices']} price rows, {r['alt']} alt rows, {r['features']} feature rows; "
        f"{r['verified_files']} feature files verified; {len(written[0])} new objects, identical names and bytes "
        f"in both stores in all {len(written)} repetitions: "
        + ", ".join(sorted({k.split("/date=")[0] for k in written[0]}))
    )


def main() -> None:
    from quant_assets.core.storage import fs
    from quant_assets_tests import object_store

    parser = common.arguments(__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: 160 days, 1 repetition")
    parser.add_argument("--profile", action="store_true", help="also a cProfile of one query from the bucket")
    args = parser.parse_args()
    if args.quick and not os.environ.get("BENCH_OBJECT_STORE_QUICK"):
        os.environ["BENCH_OBJECT_STORE_QUICK"] = "1"
        os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]])
    code = "quant_assets/core"
    with common.report("bench_object_store", code, detail=f"moto {_moto_version()}") as tmp:
        server = object_store.start(tmp / "moto.log")
        try:
            fs.register("s3", server.options)
            bucket = server.new_bucket()
            print(f"S3 server {server.endpoint} (pid {server.process.pid}), bucket {bucket}")
            packed, url = build_pit(tmp, server, bucket)
            bench_pit(packed, url, server, args.profile, tmp)
            bench_daily(tmp, server, bucket)
        finally:
            server.process.terminate()
            server.process.wait(30)


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


if __name__ == "__main__":
    if not common.child_main(CHILDREN):
        main()

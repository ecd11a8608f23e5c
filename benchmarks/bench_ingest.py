"""Ingest benchmark: prints measured figures for the raw-data ingest (not a test).

Run from the repository root::

    .venv/bin/python benchmarks/bench_ingest.py

Everything is written into a temporary lake directory (``tempfile.mkdtemp``),
removed at the end; ``data/lake`` is never touched. Total runtime is a few
minutes on 2 cores (most of it is the StockNet backfill and the 10-year fill).

What it measures
----------------
1. One trading day (``DAY``, a Wednesday, so the alt partition owns one calendar
   day) of the seeded synthetic market with 200 tickers, raw prices
   (``ingest_prices``) and alt data (``ingest_alt``) into an empty lake. Each
   repetition runs in a fresh subprocess, so the in-process caches (trading
   calendar, Brownian-bridge normals, parsed files) are cold and the peak RSS
   (``getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that measurement alone.
   Reported: wall time of the two ingest calls, rows/second, process peak RSS,
   the part of it added by the ingest (peak minus the RSS after imports and
   the calendar build), and, in separate runs (tracemalloc slows Python down),
   the Python-heap peak of the ingest. Median of ``REPS`` repetitions.
2. History independence: the same day ingested into a lake that already holds
   252 prior sessions (1 year) and one that holds 2520 (10 years), all 200
   tickers, both datasets. The 10-year lake is filled with the real ingest
   functions by two worker processes; the 1-year lake is a copy of its last 252
   partitions. Repetitions are interleaved (empty, 1y, 10y, empty, ...) and the
   day's partitions are deleted after each one. Printed: the ratios 10y/1y and
   each/empty. Because one cold ingest is short (tens of ms) and a busy
   machine makes it noisy, the same comparison is also run warm and paired:
   one process ingesting the day into the three lakes round-robin,
   ``WARM_REPS`` rounds after a discarded warm-up round. Also the cost of
   the synthetic source alone (``prices`` + ``alt``) for a day in 2001 and a
   day in 2026, each in a fresh process, with
   the default regime change (2024-07-01, so 2026 is post-regime) and with the
   regime change moved past both days (same regime, pure date effect).
3. The whole StockNet history from ``../shared/data/stocknet``, one process
   looping over sessions as a single-run backfill does: prices for every
   session 2012-09-04..2017-09-01, tweets for every session
   2014-01-02..2015-12-31 (each dataset in its own fresh process). Reported:
   wall time, rows offered/written/quarantined, rows/second, peak RSS and the
   per-session median and 95th percentile. Skipped with a message if the
   directory is absent.

Wall times are ``time.perf_counter`` around the ingest calls only (interpreter
start and imports excluded; their cost is printed once). The OS page cache is
warm (nothing is dropped); caches inside the Python process are cold.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import time
import tracemalloc
from functools import partial
from pathlib import Path

import _common as common

REPO = Path(__file__).resolve().parents[1]
STOCKNET_DIR = (REPO / ".." / "shared" / "data" / "stocknet").resolve()
REPS = 5
WARM_REPS = 30
N_TICKERS = 200
SEED = 42
DAY = "2024-03-06"  # a Wednesday before the default regime change
HISTORY_1Y = 252
HISTORY_10Y = 2520
FILL_WORKERS = 2
SOURCE_DAYS = ("2001-06-06", "2026-06-03")  # Wednesdays
LATE_REGIME = "2026-11-02"  # a session after both source days
STOCKNET_PRICES = ("2012-09-04", "2017-09-01")
STOCKNET_TWEETS = ("2014-01-02", "2015-12-31")
DATASETS = ("raw_prices", "alt_data")


# --------------------------------------------------------------------------- child side


def _child_ingest(root: str, day: str, trace: bool) -> dict:
    t0 = time.perf_counter()
    from quant_assets.core import sessions
    from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
    from quant_assets.core.ingest.sources import make_sources

    t1 = time.perf_counter()
    sessions.calendar()
    t2 = time.perf_counter()
    prices, alt = make_sources("synthetic", seed=SEED, n_tickers=N_TICKERS)
    session = sessions.as_date(day)
    rss_before = common.maxrss_mb()
    if trace:
        tracemalloc.start()
    t3 = time.perf_counter()
    rp = ingest_prices(prices, session, Path(root))
    t4 = time.perf_counter()
    ra = ingest_alt(alt, session, Path(root))
    t5 = time.perf_counter()
    heap_peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if trace:
        tracemalloc.stop()
    return {
        "import_s": t1 - t0,
        "calendar_s": t2 - t1,
        "prices_s": t4 - t3,
        "alt_s": t5 - t4,
        "total_s": t5 - t3,
        "rows": rp.rows_written + ra.rows_written,
        "rows_prices": rp.rows_written,
        "rows_alt": ra.rows_written,
        "quarantined": rp.rows_quarantined + ra.rows_quarantined,
        "rss_before_mb": rss_before,
        "rss_peak_mb": common.maxrss_mb(),
        "heap_peak_mb": heap_peak,
    }


def _child_ingest_warm(roots: list[str], day: str, n: int) -> dict:
    """Paired warm timings: one process, round-robin over the lakes, the day's partitions removed after each."""
    from quant_assets.core import sessions
    from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
    from quant_assets.core.ingest.sources import make_sources

    prices, alt = make_sources("synthetic", seed=SEED, n_tickers=N_TICKERS)
    session = sessions.as_date(day)
    out: dict[str, list[float]] = {r: [] for r in roots}
    for i in range(n + 1):  # round 0 warms the caches and is discarded
        for r in roots:
            t0 = time.perf_counter()
            ingest_prices(prices, session, Path(r))
            ingest_alt(alt, session, Path(r))
            if i:
                out[r].append(time.perf_counter() - t0)
            _clear_day(Path(r), day)
    return out


def _child_source(day: str, regime: str | None) -> dict:
    from quant_assets.core import sessions
    from quant_assets.core.ingest.sources import make_sources

    sessions.calendar()
    prices, alt = make_sources("synthetic", seed=SEED, n_tickers=N_TICKERS, regime_change=regime)
    session = sessions.as_date(day)
    t0 = time.perf_counter()
    bp = prices.prices(session)
    t1 = time.perf_counter()
    ba = alt.alt(session)
    t2 = time.perf_counter()
    return {"prices_s": t1 - t0, "alt_s": t2 - t1, "total_s": t2 - t0, "rows": len(bp.records) + len(ba.records)}


def _child_fill(root: str, first: str, last: str) -> dict:
    from quant_assets.core import sessions
    from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
    from quant_assets.core.ingest.sources import make_sources

    prices, alt = make_sources("synthetic", seed=SEED, n_tickers=N_TICKERS)
    t0 = time.perf_counter()
    days = sessions.sessions_between(first, last)
    rows = 0
    for s in days:
        rows += ingest_prices(prices, s, Path(root)).rows_written
        rows += ingest_alt(alt, s, Path(root)).rows_written
    return {"sessions": len(days), "rows": rows, "wall_s": time.perf_counter() - t0}


def _child_stocknet(root: str, dataset: str, first: str, last: str, stocknet_dir: str) -> dict:
    from quant_assets.core import sessions
    from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
    from quant_assets.core.ingest.sources import make_sources

    sessions.calendar()
    prices, alt = make_sources("stocknet", stocknet_dir=stocknet_dir)
    days = sessions.sessions_between(first, last)
    rss_before = common.maxrss_mb()
    per_session = []
    tot = {"offered": 0, "clean": 0, "written": 0, "quarantined": 0, "quarantine_written": 0}
    t0 = time.perf_counter()
    for s in days:
        ts = time.perf_counter()
        if dataset == "raw_prices":
            r = ingest_prices(prices, s, Path(root))
        else:
            r = ingest_alt(alt, s, Path(root))
        per_session.append(time.perf_counter() - ts)
        tot["offered"] += r.rows_offered
        tot["clean"] += r.rows_clean
        tot["written"] += r.rows_written
        tot["quarantined"] += r.rows_quarantined
        tot["quarantine_written"] += r.quarantine_written
    wall = time.perf_counter() - t0
    ordered = sorted(per_session)
    return {
        "sessions": len(days),
        "wall_s": wall,
        **tot,
        "first_session_s": per_session[0],
        "median_session_s": statistics.median(per_session),
        "p95_session_s": ordered[int(0.95 * (len(ordered) - 1))],
        "rss_before_mb": rss_before,
        "rss_peak_mb": common.maxrss_mb(),
    }


CHILDREN = {
    "ingest": _child_ingest,
    "ingest_warm": _child_ingest_warm,
    "source": _child_source,
    "fill": _child_fill,
    "stocknet": _child_stocknet,
}


# --------------------------------------------------------------------------- parent side


_spawn = partial(common.spawn, __file__)  # _spawn(kind, *args): this script's child process
_run = partial(common.run, __file__)


def _clear_day(lake: Path, day: str) -> None:
    for ds in DATASETS:
        for base in (lake / ds, lake / "quarantine" / ds):
            shutil.rmtree(base / f"date={day}", ignore_errors=True)


def _count_partitions(lake: Path, ds: str) -> int:
    d = lake / ds
    return sum(1 for p in d.iterdir() if p.name.startswith("date=")) if d.is_dir() else 0


def bench_one_day_and_history(tmp: Path) -> None:
    from quant_assets.core import sessions

    day = sessions.as_date(DAY)
    days = sessions.sessions_between(sessions.calendar().first, day)
    if days[-1] != day:
        raise SystemExit(f"{DAY} is not a session")
    hist10, hist1 = days[-1 - HISTORY_10Y : -1], days[-1 - HISTORY_1Y : -1]

    # Fill the 10-year lake with the real ingest, FILL_WORKERS processes over contiguous chunks.
    lake10, lake1, empty = tmp / "lake_10y", tmp / "lake_1y", tmp / "lake_empty"
    t0 = time.perf_counter()
    chunk = -(-len(hist10) // FILL_WORKERS)
    procs = [
        _spawn("fill", str(lake10), hist10[i].isoformat(), hist10[min(i + chunk, len(hist10)) - 1].isoformat())
        for i in range(0, len(hist10), chunk)
    ]
    fills = [common.collect(p) for p in procs]
    fill_wall = time.perf_counter() - t0
    fill_rows = sum(f["rows"] for f in fills)
    for s in hist1:
        for ds in DATASETS:
            src = lake10 / ds / f"date={s.isoformat()}"
            shutil.copytree(src, lake1 / ds / src.name)
    for lake, n in ((lake10, HISTORY_10Y), (lake1, HISTORY_1Y)):
        counts = [_count_partitions(lake, ds) for ds in DATASETS]
        if counts != [n, n] or (lake / "raw_prices" / f"date={DAY}").exists():
            raise SystemExit(f"{lake} holds {counts} partitions, expected {n} each and no {DAY}")

    load_before_timing = common.load_text()
    lakes = {"empty": empty, "1y": lake1, "10y": lake10}
    timed: dict[str, list[dict]] = {k: [] for k in lakes}
    traced: dict[str, list[dict]] = {k: [] for k in lakes}
    for _ in range(REPS):
        for name, lake in lakes.items():
            timed[name].append(_run("ingest", str(lake), DAY, False))
            _clear_day(lake, DAY)
            traced[name].append(_run("ingest", str(lake), DAY, True))
            _clear_day(lake, DAY)
        shutil.rmtree(empty, ignore_errors=True)

    warm = _run("ingest_warm", [str(p) for p in lakes.values()], DAY, WARM_REPS)
    warm_med = {name: statistics.median(warm[str(p)]) for name, p in lakes.items()}
    shutil.rmtree(empty, ignore_errors=True)

    src_runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(REPS):
        for regime in (None, LATE_REGIME):
            for d in SOURCE_DAYS:
                src_runs.setdefault((d, regime or "2024-07-01 (default)"), []).append(_run("source", d, regime))

    setup = timed["empty"]
    print(
        f"\nprocess setup (not in the timings below): imports {common.ms(common.med(setup, 'import_s'))} ms, "
        f"calendar build {common.ms(common.med(setup, 'calendar_s'))} ms (median of {REPS})"
    )

    print(f"\n[1] + [2] one-day ingest: synthetic seed={SEED}, {N_TICKERS} tickers, session {DAY}, prices + alt")
    print(f"    fresh process per repetition, median of {REPS} (min..max of total in brackets)")
    print(
        f"    10y lake filled with {HISTORY_10Y} sessions x 2 datasets ({fill_rows} rows, {N_TICKERS} tickers) in "
        f"{fill_wall:.1f} s by {FILL_WORKERS} processes ({fill_rows / fill_wall:,.0f} rows/s); "
        f"1y lake = copy of its last {HISTORY_1Y} sessions"
    )
    print(f"    {load_before_timing} when the timed repetitions started")
    rows = []
    base = common.med(timed["empty"], "total_s")
    for name in lakes:
        runs = timed[name]
        tot = [r["total_s"] for r in runs]
        rows.append(
            [
                {"empty": "empty lake", "1y": f"{HISTORY_1Y} sessions (1y)", "10y": f"{HISTORY_10Y} sessions (10y)"}[
                    name
                ],
                common.ms(common.med(runs, "prices_s")),
                common.ms(common.med(runs, "alt_s")),
                f"{common.ms(statistics.median(tot))} [{common.ms(min(tot))}..{common.ms(max(tot))}]",
                f"{common.med(runs, 'total_s') / base:.2f}",
                runs[0]["rows"],
                f"{runs[0]['rows'] / statistics.median(tot):,.0f}",
                common.mb(common.med(runs, "rss_peak_mb")),
                common.mb(common.med(runs, "rss_peak_mb") - common.med(runs, "rss_before_mb")),
                common.mb(common.med(traced[name], "heap_peak_mb")),
            ]
        )
    common.print_table(
        (
            "lake history|prices ms|alt ms|total ms [min..max]|x empty|rows|rows/s|peak RSS MB|RSS added MB|"
            "py heap peak MB"
        ),
        rows,
    )
    r10, r1 = common.med(timed["10y"], "total_s"), common.med(timed["1y"], "total_s")
    m10, m1 = (min(r["total_s"] for r in timed[k]) for k in ("10y", "1y"))
    print(
        f"ratio 10y/1y (median total): {r10 / r1:.3f}   (min total): {m10 / m1:.3f}   "
        f"prices {common.med(timed['10y'], 'prices_s') / common.med(timed['1y'], 'prices_s'):.3f}   "
        f"alt {common.med(timed['10y'], 'alt_s') / common.med(timed['1y'], 'alt_s'):.3f}   "
        f"peak RSS {common.med(timed['10y'], 'rss_peak_mb') / common.med(timed['1y'], 'rss_peak_mb'):.3f}   "
        f"py heap peak {common.med(traced['10y'], 'heap_peak_mb') / common.med(traced['1y'], 'heap_peak_mb'):.3f}"
    )
    print(
        f"warm, one process, lakes round-robin, median of {WARM_REPS}: "
        + ", ".join(f"{k} {common.ms(v)} ms" for k, v in warm_med.items())
        + f";  ratio 10y/1y {warm_med['10y'] / warm_med['1y']:.3f}, 10y/empty {warm_med['10y'] / warm_med['empty']:.3f}"
    )
    print("(peak RSS = whole process incl. pandas/pyarrow imports; RSS added = peak minus RSS after setup;")
    print(f" py heap peak from separate tracemalloc runs, median of {REPS})")

    print(f"\n[2b] synthetic source alone (prices() + alt()), {N_TICKERS} tickers, fresh process, median of {REPS}")
    rows = []
    for regime in ("2024-07-01 (default)", LATE_REGIME):
        early, late = (src_runs[(d, regime)] for d in SOURCE_DAYS)
        for d, runs in zip(SOURCE_DAYS, (early, late), strict=True):
            post = sessions.as_date(d) >= sessions.as_date(regime.split()[0])
            rows.append(
                [
                    d,
                    regime,
                    "post" if post else "pre",
                    common.ms(common.med(runs, "prices_s")),
                    common.ms(common.med(runs, "alt_s")),
                    common.ms(common.med(runs, "total_s")),
                    runs[0]["rows"],
                ]
            )
        ratio = common.med(late, "total_s") / common.med(early, "total_s")
        rows.append(["  ratio 2026/2001", regime, "", "", "", f"{ratio:.3f}", ""])
    common.print_table("day|regime change|regime|prices ms|alt ms|total ms|rows", rows)


def bench_stocknet(tmp: Path) -> None:
    print(f"\n[3] StockNet full history from {STOCKNET_DIR}")
    if not STOCKNET_DIR.is_dir():
        print(f"    skipped: {STOCKNET_DIR} is absent")
        return
    from quant_assets.core import sessions

    lake = tmp / "lake_stocknet"
    runs = {
        "raw_prices": _run("stocknet", str(lake), "raw_prices", *STOCKNET_PRICES, str(STOCKNET_DIR)),
        "alt_data": _run("stocknet", str(lake), "alt_data", *STOCKNET_TWEETS, str(STOCKNET_DIR)),
    }
    # Tweet lines in the files of the calendar days the tweet partitions own (read outside any timing).
    first_day = sessions.owned_calendar_days(STOCKNET_TWEETS[0])[0]
    last_day = sessions.as_date(STOCKNET_TWEETS[1])
    lines = 0
    for f in (STOCKNET_DIR / "tweet" / "preprocessed").glob("*/*"):
        try:
            d = dt.date.fromisoformat(f.name)
        except ValueError:
            continue
        if first_day <= d <= last_day and f.is_file():
            lines += sum(1 for ln in f.read_bytes().split(b"\n") if ln.strip())
    print("    one process per dataset looping over every session (single-run backfill), empty lake at start")
    rows = []
    for ds, (first, last) in (("raw_prices", STOCKNET_PRICES), ("alt_data", STOCKNET_TWEETS)):
        r = runs[ds]
        rows.append(
            [
                ds,
                f"{first}..{last}",
                r["sessions"],
                f"{r['wall_s']:.1f}",
                r["offered"],
                r["written"],
                r["quarantined"],
                f"{r['offered'] / r['wall_s']:,.0f}",
                common.ms(r["first_session_s"]),
                common.ms(r["median_session_s"]),
                common.ms(r["p95_session_s"]),
                common.mb(r["rss_peak_mb"]),
                common.mb(r["rss_peak_mb"] - r["rss_before_mb"]),
            ]
        )
    common.print_table(
        (
            "dataset|sessions|n|wall s|rows offered|rows written|quarantined|rows/s|1st ms|median ms|p95 ms|"
            "peak RSS MB|RSS added MB"
        ),
        rows,
    )
    tw = runs["alt_data"]
    print(
        f"    alt_data rows are (ticker, day) aggregates; quarantined are tweet lines. Tweet lines in owned files: "
        f"{lines:,} ({lines / tw['wall_s']:,.0f} lines/s)"
    )
    total_wall = sum(r["wall_s"] for r in runs.values())
    total_rows = sum(r["offered"] for r in runs.values())
    print(
        f"    both datasets: {total_wall:.1f} s, {total_rows:,} rows offered, {total_rows / total_wall:,.0f} rows/s, "
        f"{sum(r['quarantined'] for r in runs.values())} quarantined"
    )


def main() -> None:
    common.arguments(__doc__).parse_args()
    with common.report("bench_ingest", label="temp lake") as tmp:
        bench_one_day_and_history(tmp)
        bench_stocknet(tmp)


if __name__ == "__main__":
    if not common.child_main(CHILDREN):
        main()

"""Training benchmark: snapshot build and walk-forward training time vs the window (prints figures, not a test).

Run from the repository root::

    .venv/bin/python benchmarks/bench_training.py                 # 200 tickers x 5 years (8-11 min on 2 busy cores)
    .venv/bin/python benchmarks/bench_training.py --tickers 40 --years 2   # a quick smoke run

Everything is written into a temporary directory (``tempfile.mkdtemp``), removed
at the end; ``data/lake`` is never touched. Each measurement runs in a fresh
subprocess, so in-process caches are cold and the peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that step alone; "RSS added"
is that peak minus the RSS after imports and the calendar build. Wall times
are ``time.perf_counter`` around the calls named (imports excluded); "cpu" is
``time.process_time`` over the same calls (all threads of the process, so the
DuckDB query can show more CPU than wall). The OS page cache is warm. Another
job on the machine inflates wall times but hardly CPU times, so growth is
judged on the CPU columns; the load average is printed before every step, and
a digest of the ``quant_assets`` sources at start and end tells whether the
code changed during the run.

What it measures
----------------
1. Lake build: the seeded synthetic market (``SyntheticMarket(seed=42)``,
   ``--tickers`` names) for the sessions of the ``--years`` years ending
   ``AS_OF``, plus the warm-up sessions before them that the longest feature
   lookback needs (so the first day's features are complete). Raw ingest
   (``ingest_prices`` + ``ingest_alt``) per session, then for each feature
   family ``compute.load_inputs`` once and ``compute.compute_day`` +
   ``files.write_day`` per session, as the ``feature_lake`` test fixture does,
   all in one process. Reported: totals, per-session means and medians, and the
   per-session means per calendar year (growth over the build shows here).
2. For windows of 1, ``--years``/2 and ``--years`` years ending ``AS_OF``
   (``as_of = AS_OF``, horizon 1, every feature of ``library.ALL_FEATURES``):
   a) ``snapshots.build`` + ``snapshots.write`` into a fresh output directory
      (one process per window). ``build`` is split into ``labels`` (raw price
      read), ``FeatureStore.get_point_in_time`` (the point-in-time query) and the
      rest (pandas assembly, manifest, producer versions).
   b) ``snapshots.read`` of that snapshot (fingerprint verified), then
      ``training.train_walk_forward(data, features, TrainConfig())`` with the
      default config (4 folds, 3 seeds, 150 rounds, 1 thread), in another fresh
      process: the ``trained_model`` asset's steps (one per fold and one for the
      final fit, same bytes) one after another. Split into ``lgb.train``,
      ``signal_metrics`` and the rest. "Rows fitted" is the sum of the rows of
      the 4 fold training sets and the final full fit (each fitted 3 times).
   Reported: rows, times, peak RSS, out-of-sample overall rank IC, and the
   growth ratios vs the 1-year window (also per row).
3. Reproducibility: the longest window's training is run again in a fresh
   process; its out-of-sample predictions (keys and float64 bits) and the final
   ensemble's bytes must be identical to the first run (asserted).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import statistics
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import _common as common

REPO = Path(__file__).resolve().parents[1]
SEED = 42
AS_OF = "2024-06-28"
HORIZON = 1
PROVENANCE = {"producer": "bench_training", "producer_version": "bench", "run_id": "bench"}


# --------------------------------------------------------------------------- child side


def _child_lake(root: str, tickers: int, first: str, last: str) -> dict:
    from quant_assets.core import sessions
    from quant_assets.core.features import compute, files
    from quant_assets.core.features.library import FAMILIES
    from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
    from quant_assets.core.ingest.sources import SyntheticMarket

    sessions.calendar()
    rss0 = common.maxrss_mb()
    root_p = Path(root)
    market = SyntheticMarket(seed=SEED, n_tickers=tickers)
    days = sessions.sessions_between(first, last)
    ingest_first = min(compute.window_partitions(f, days[0])[0] for f in FAMILIES.values())
    ingest_days = sessions.sessions_between(ingest_first, last)

    out: dict = {"ingest_sessions": len(ingest_days), "feature_sessions": len(days), "ingest_first": str(ingest_first)}
    prices_s, alt_s, rows = [], [], 0
    t0, c0 = time.perf_counter(), time.process_time()
    for d in ingest_days:
        ts = time.perf_counter()
        rows += ingest_prices(market, d, root_p).rows_written
        tm = time.perf_counter()
        rows += ingest_alt(market, d, root_p).rows_written
        prices_s.append(tm - ts)
        alt_s.append(time.perf_counter() - tm)
    out["ingest"] = {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "rows": rows,
        "prices_s": prices_s,
        "alt_s": alt_s,
    }
    out["ingest_days"] = [str(d) for d in ingest_days]
    out["rss_after_ingest_mb"] = common.maxrss_mb()

    for name, family in FAMILIES.items():
        t0, c0 = time.perf_counter(), time.process_time()
        inputs = compute.load_inputs(root_p, family, days)
        load_s = time.perf_counter() - t0
        compute_s, write_s, written = [], [], 0
        for d in days:
            ts = time.perf_counter()
            frame = compute.compute_day(family, compute.window_rows(family, inputs, d), d)
            tm = time.perf_counter()
            written += files.write_day(root_p, family, d, frame, PROVENANCE).rows_written
            compute_s.append(tm - ts)
            write_s.append(time.perf_counter() - tm)
        out[name] = {
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
            "load_s": load_s,
            "input_rows": len(inputs),
            "rows": written,
            "compute_s": compute_s,
            "write_s": write_s,
        }
        del inputs
    out["days"] = [str(d) for d in days]
    out["rss_before_mb"] = rss0
    out["rss_peak_mb"] = common.maxrss_mb()
    return out


def _child_snapshot(root: str, out_root: str, start: str, end: str, as_of: str) -> dict:
    from quant_assets.core import sessions
    from quant_assets.core.features.library import ALL_FEATURES
    from quant_assets.core.features.store import FeatureStore
    from quant_assets.core.research import snapshots

    sessions.calendar()
    rss0 = common.maxrss_mb()
    labels = snapshots.labels = common.Timer(snapshots.labels)
    store = FeatureStore(Path(root), ALL_FEATURES)
    pit = store.get_point_in_time = common.Timer(store.get_point_in_time)
    features = list(ALL_FEATURES)
    t0, c0 = time.perf_counter(), time.process_time()
    data, manifest = snapshots.build(Path(root), store, start, end, as_of, features, HORIZON, code_version="bench")
    t1, c1 = time.perf_counter(), time.process_time()
    rss_build = common.maxrss_mb()
    path, created = snapshots.write(Path(out_root), data, manifest)
    t2, c2 = time.perf_counter(), time.process_time()
    return {
        "build_s": t1 - t0,
        "build_cpu": c1 - c0,
        "labels_s": labels.seconds,
        "pit_s": pit.seconds,
        "pit_cpu": pit.cpu,
        "write_s": t2 - t1,
        "write_cpu": c2 - c1,
        "rows": len(data),
        "dates": int(data["date"].nunique()),
        "tickers": int(data["entity_key"].nunique()),
        "features": len(manifest["features"]),
        "date_range": manifest["date_range"],
        "created": created,
        "path": str(path),
        "file_mb": (path / "data.parquet").stat().st_size / 2**20,
        "fingerprint": path.name,
        "rss_before_mb": rss0,
        "rss_build_mb": rss_build,
        "rss_peak_mb": common.maxrss_mb(),
    }


def _child_train(snap_path: str, pred_out: str) -> dict:
    import numpy as np
    import pandas as pd

    from quant_assets.core import sessions
    from quant_assets.core.research import snapshots, training

    sessions.calendar()
    rss0 = common.maxrss_mb()
    import lightgbm

    lgb_train = lightgbm.train = common.Timer(lightgbm.train)  # training imports lightgbm when it fits
    metrics = training.signal_metrics = common.Timer(training.signal_metrics)
    t0, c0 = time.perf_counter(), time.process_time()
    snap = snapshots.read(Path(snap_path))
    t1, c1 = time.perf_counter(), time.process_time()
    rss_read = common.maxrss_mb()
    data = snap.data
    result = training.train_walk_forward(data, snap.features, training.TrainConfig())
    t2, c2 = time.perf_counter(), time.process_time()
    overall = result.fold_metrics.set_index("fold").loc["overall"]
    fitted = sum(int(data["date"].isin(set(f.train)).sum()) for f in result.folds) + len(data)
    pred = result.predictions
    keys = pd.DataFrame({"date": pred["date"].astype(str), "entity_key": pred["entity_key"].astype(str)})
    h = hashlib.sha256(pd.util.hash_pandas_object(keys, index=False).to_numpy().tobytes())
    h.update(np.ascontiguousarray(pred["prediction"].to_numpy(dtype=np.float64)).tobytes())
    pred[["date", "entity_key", "fold", "prediction"]].assign(date=pred["date"].astype(str)).to_parquet(pred_out)
    return {
        "read_s": t1 - t0,
        "read_cpu": c1 - c0,
        "train_s": t2 - t1,
        "train_cpu": c2 - c1,
        "lgb_train_s": lgb_train.seconds,
        "lgb_train_cpu": lgb_train.cpu,
        "lgb_train_calls": lgb_train.calls,
        "metrics_s": metrics.seconds,
        "metrics_cpu": metrics.cpu,
        "rows": len(data),
        "dates": int(data["date"].nunique()),
        "rows_fitted": fitted,
        "oos_rows": len(pred),
        "folds": [[str(f.train[0]), str(f.train[-1]), str(f.test[0]), str(f.test[-1])] for f in result.folds],
        "rank_ic": float(overall["rank_ic"]),
        "ic": float(overall["ic"]),
        "rank_icir": float(overall["rank_icir"]),
        "oos_days": int(overall["days"]),
        "pred_sha": h.hexdigest(),
        "model_sha": training.sha256(result.artifact),
        "rss_before_mb": rss0,
        "rss_read_mb": rss_read,
        "rss_peak_mb": common.maxrss_mb(),
    }


CHILDREN = {"lake": _child_lake, "snapshot": _child_snapshot, "train": _child_train}


# --------------------------------------------------------------------------- parent side


_run = partial(common.run, __file__)  # _run(kind, *args): this script's child process, its JSON result


def _sources() -> dict[str, str]:
    """SHA-256 of every ``quant_assets`` source file, to detect edits made while the benchmark runs."""
    return {
        str(f.relative_to(REPO)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted((REPO / "quant_assets").rglob("*.py"))
    }


def _code_version(sources: dict[str, str]) -> str:
    """Commit, whether the package has uncommitted changes, and a digest of its sources."""
    digest = hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()[:12]
    return f"{common.git_version('quant_assets')}, sources {digest}"


def _window_start(as_of: dt.date, years: float) -> dt.date:
    """The day after ``as_of`` minus ``years`` (in whole months): a window of exactly that many years."""
    months = round(12 * years)
    y, m = divmod(as_of.year * 12 + as_of.month - 1 - months, 12)
    return dt.date(y, m + 1, min(as_of.day, 28)) + dt.timedelta(days=1)


def _per_year(days: list[str], values: list[float]) -> dict[str, float]:
    by = defaultdict(list)
    for d, v in zip(days, values, strict=True):
        by[d[:4]].append(v)
    return {y: statistics.mean(v) for y, v in sorted(by.items())}


def bench_lake(root: Path, tickers: int, years: float, as_of: dt.date) -> dict:
    from quant_assets.core import sessions

    first = sessions.session_on_or_after(_window_start(as_of, years))
    print(f"\n[1] lake build: SyntheticMarket(seed={SEED}, n_tickers={tickers}), features for {first}..{as_of}")
    print(f"    one process; {common.load_text()} at start")
    lake = _run("lake", str(root), tickers, first.isoformat(), as_of.isoformat())
    ing = lake["ingest"]
    n_ing = lake["ingest_sessions"]
    per_ing = [p + a for p, a in zip(ing["prices_s"], ing["alt_s"], strict=True)]
    rows = [
        [
            "raw ingest (prices + alt)",
            n_ing,
            f"{ing['wall_s']:.1f}",
            f"{ing['cpu_s']:.1f}",
            "-",
            common.ms(statistics.mean(per_ing)),
            common.ms(statistics.median(per_ing)),
            f"prices {common.ms(statistics.mean(ing['prices_s']))} + alt {common.ms(statistics.mean(ing['alt_s']))}",
            ing["rows"],
        ]
    ]
    for fam in ("price", "alt"):
        f = lake[fam]
        per = [c + w for c, w in zip(f["compute_s"], f["write_s"], strict=True)]
        rows.append(
            [
                f"features/{fam}",
                len(per),
                f"{f['wall_s']:.1f}",
                f"{f['cpu_s']:.1f}",
                f"{f['load_s']:.2f} ({f['input_rows']} rows)",
                common.ms(statistics.mean(per)),
                common.ms(statistics.median(per)),
                f"compute {common.ms(statistics.mean(f['compute_s']))}"
                f" + write {common.ms(statistics.mean(f['write_s']))}",
                f["rows"],
            ]
        )
    total = ing["wall_s"] + lake["price"]["wall_s"] + lake["alt"]["wall_s"]
    total_cpu = ing["cpu_s"] + lake["price"]["cpu_s"] + lake["alt"]["cpu_s"]
    print(
        f"    raw ingest from {lake['ingest_first']} ({n_ing} sessions: {n_ing - lake['feature_sessions']} warm-up "
        f"sessions for the longest lookback + {lake['feature_sessions']} feature sessions)"
    )
    common.print_table(
        "step|sessions|wall s|cpu s|load_inputs s|mean ms/day|median ms/day|mean split ms (wall)|rows",
        rows,
    )
    print(
        f"    lake build total {total:.1f} s wall, {total_cpu:.1f} s cpu; "
        f"process peak RSS {lake['rss_peak_mb']:.0f} MB (after ingest {lake['rss_after_ingest_mb']:.0f} MB, "
        f"after imports {lake['rss_before_mb']:.0f} MB)"
    )
    print("    mean wall ms per session by calendar year (growth over the build would show here):")
    ing_y = _per_year(lake["ingest_days"], per_ing)
    px_c = _per_year(lake["days"], lake["price"]["compute_s"])
    px_w = _per_year(lake["days"], lake["price"]["write_s"])
    al_c = _per_year(lake["days"], lake["alt"]["compute_s"])
    al_w = _per_year(lake["days"], lake["alt"]["write_s"])
    common.print_table(
        ["year", "ingest", "price compute", "price write", "alt compute", "alt write"],
        [
            [y, common.ms(ing_y[y]), *(common.ms(s[y]) if y in s else "-" for s in (px_c, px_w, al_c, al_w))]
            for y in sorted(ing_y)
        ],
    )
    return lake


def bench_windows(root: Path, tmp: Path, windows: list[float], as_of: dt.date) -> dict[float, dict]:
    from quant_assets.core.features.library import ALL_FEATURES

    print(
        f"\n[2] snapshots and walk-forward training, as_of {as_of}, horizon {HORIZON}, "
        f"{len(ALL_FEATURES)} features, TrainConfig() defaults (4 folds, seeds 1,2,3, 150 rounds, 1 thread)"
    )
    results = {}
    for w in windows:
        start = _window_start(as_of, w)
        out = tmp / f"snap_{w:g}y"
        load_snap = common.load_text()
        snap = _run("snapshot", str(root), str(out), start.isoformat(), as_of.isoformat(), as_of.isoformat())
        load_train = common.load_text()
        train = _run("train", snap["path"], str(tmp / f"pred_{w:g}y.parquet"))
        results[w] = {"start": start, "snap": snap, "train": train}
        print(
            f"    {w:g}y window {start}..{as_of}: rows {snap['rows']} ({snap['dates']} dates x <= {snap['tickers']} "
            f"tickers, {snap['date_range'][0]}..{snap['date_range'][1]}), snapshot {snap['fingerprint'][:12]} "
            f"{snap['file_mb']:.1f} MB; {load_snap} before the snapshot, {load_train} before training"
        )
        print(
            "      folds (train_start..train_end | test_start..test_end): "
            + "; ".join(f"{a}..{b} | {c}..{d}" for a, b, c, d in train["folds"])
        )

    print("\n    snapshot (build + write), one fresh process per window; cpu = process CPU time (all threads)")
    rows = []
    for w, r in results.items():
        s = r["snap"]
        other = s["build_s"] - s["labels_s"] - s["pit_s"]
        rows.append(
            [
                f"{w:g}y",
                s["rows"],
                f"{s['labels_s']:.2f}",
                f"{s['pit_s']:.2f}",
                f"{other:.2f}",
                f"{s['build_s']:.2f}",
                f"{s['write_s']:.2f}",
                f"{s['build_s'] + s['write_s']:.2f}",
                f"{s['build_cpu'] + s['write_cpu']:.2f}",
                f"{1e6 * (s['build_s'] + s['write_s']) / s['rows']:.1f}",
                f"{1e6 * (s['build_cpu'] + s['write_cpu']) / s['rows']:.1f}",
                f"{s['rss_peak_mb']:.0f}",
                f"{s['rss_peak_mb'] - s['rss_before_mb']:.0f}",
            ]
        )
    common.print_table(
        (
            "window|rows|labels s|PIT query s|other s|build s|write s|build+write s|cpu s|us/row|cpu us/row|"
            "peak RSS MB|RSS added MB"
        ),
        rows,
    )

    print("\n    training (snapshots.read, then train_walk_forward), one fresh process per window; wall s unless cpu")
    rows = []
    for w, r in results.items():
        t = r["train"]
        other = t["train_s"] - t["lgb_train_s"] - t["metrics_s"]
        rows.append(
            [
                f"{w:g}y",
                t["rows"],
                t["rows_fitted"],
                t["oos_rows"],
                f"{t['read_s']:.2f}",
                f"{t['lgb_train_s']:.1f}",
                f"{t['metrics_s']:.1f}",
                f"{other:.1f}",
                f"{t['train_s']:.1f}",
                f"{t['train_cpu']:.1f}",
                f"{1e6 * t['train_s'] / t['rows']:.0f}",
                f"{1e6 * t['lgb_train_cpu'] / t['rows_fitted']:.1f}",
                f"{t['rss_peak_mb']:.0f}",
                f"{t['rss_peak_mb'] - t['rss_before_mb']:.0f}",
                f"{t['rank_ic']:.4f}",
                f"{t['rank_icir']:.3f}",
                t["oos_days"],
            ]
        )
    common.print_table(
        (
            "window|rows|rows fitted|OOS rows|read s|lgb.train s|metrics s|other s|train s|train cpu s|us/row|"
            "lgb cpu us/fitted row|peak RSS MB|RSS added MB|OOS rank IC|rank ICIR|OOS days"
        ),
        rows,
    )

    base_w = windows[0]
    b = results[base_w]
    print(f"\n    growth vs the {base_w:g}y window (ratio of each figure to the {base_w:g}y one)")
    rows = []
    for w, r in results.items():
        s, t, bs, bt = r["snap"], r["train"], b["snap"], b["train"]
        rr = s["rows"] / bs["rows"]
        snap_t, bsnap_t = s["build_s"] + s["write_s"], bs["build_s"] + bs["write_s"]
        snap_c, bsnap_c = s["build_cpu"] + s["write_cpu"], bs["build_cpu"] + bs["write_cpu"]
        rows.append(
            [
                f"{w:g}y",
                f"{rr:.2f}",
                common.ratio(t["rows_fitted"], bt["rows_fitted"]),
                common.ratio(t["oos_rows"], bt["oos_rows"]),
                common.ratio(snap_t, bsnap_t),
                common.ratio(snap_c, bsnap_c),
                common.ratio(snap_c / rr, bsnap_c),
                common.ratio(s["rss_peak_mb"], bs["rss_peak_mb"]),
                common.ratio(t["train_s"], bt["train_s"]),
                common.ratio(t["train_cpu"], bt["train_cpu"]),
                common.ratio(t["train_cpu"] / rr, bt["train_cpu"]),
                common.ratio(t["lgb_train_cpu"], bt["lgb_train_cpu"]),
                common.ratio(t["metrics_cpu"], bt["metrics_cpu"]),
                common.ratio(t["rss_peak_mb"], bt["rss_peak_mb"]),
            ]
        )
    common.print_table(
        (
            "window|rows|rows fitted|OOS rows|snapshot wall|snapshot cpu|snapshot cpu/row|snapshot peak RSS|"
            "train wall|train cpu|train cpu/row|lgb.train cpu|metrics cpu|train peak RSS"
        ),
        rows,
    )
    return results


def bench_repro(tmp: Path, results: dict[float, dict]) -> None:
    import numpy as np
    import pandas as pd

    w = max(results)
    first = results[w]["train"]
    print(f"\n[3] reproducibility: {w:g}y training re-run in a fresh process; {common.load_text()}")
    again = _run("train", first_path := results[w]["snap"]["path"], str(tmp / "pred_rerun.parquet"))
    a = pd.read_parquet(tmp / f"pred_{w:g}y.parquet")
    b = pd.read_parquet(tmp / "pred_rerun.parquet")
    same_keys = a[["date", "entity_key", "fold"]].equals(b[["date", "entity_key", "fold"]])
    va, vb = a["prediction"].to_numpy(np.float64), b["prediction"].to_numpy(np.float64)
    same_bits = va.shape == vb.shape and bool((va.view(np.uint64) == vb.view(np.uint64)).all())
    print(f"    snapshot {Path(first_path).name[:12]}, {len(a)} out-of-sample predictions")
    print(
        f"    run 1: train {first['train_s']:.1f} s ({first['train_cpu']:.1f} s cpu), "
        f"predictions sha256 {first['pred_sha'][:16]}, final ensemble sha256 {first['model_sha'][:16]}, "
        f"rank IC {first['rank_ic']:.6f}"
    )
    print(
        f"    run 2: train {again['train_s']:.1f} s ({again['train_cpu']:.1f} s cpu), "
        f"predictions sha256 {again['pred_sha'][:16]}, final ensemble sha256 {again['model_sha'][:16]}, "
        f"rank IC {again['rank_ic']:.6f}"
    )
    assert same_keys and same_bits, "re-run predictions differ"
    assert first["pred_sha"] == again["pred_sha"], "re-run prediction hashes differ"
    assert first["model_sha"] == again["model_sha"], "re-run final ensembles differ"
    print(
        "    predictions bit-identical (keys equal, float64 bits equal): yes; final ensemble bytes identical: yes;"
        f" run 2 / run 1: wall {again['train_s'] / first['train_s']:.3f},"
        f" cpu {again['train_cpu'] / first['train_cpu']:.3f}"
    )


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--tickers", type=int, default=200, help="synthetic market size (default 200)")
    parser.add_argument("--years", type=float, default=5.0, help="longest training window in years (default 5)")
    args = parser.parse_args()
    as_of = dt.date.fromisoformat(AS_OF)
    windows = sorted({1.0, args.years / 2, args.years})

    sources_start = _sources()

    def end_note() -> str:
        sources_end = _sources()
        changed = sorted(
            f for f in sources_start.keys() | sources_end.keys() if sources_start.get(f) != sources_end.get(f)
        )
        return f"code at end {_code_version(sources_end)}: " + (
            "quant_assets sources unchanged during the run"
            if not changed
            else f"WARNING: sources changed during the run ({', '.join(changed)}), figures may be mixed"
        )

    detail = f"{args.tickers} tickers, {args.years:g} years"
    with common.report("bench_training", code=_code_version(sources_start), detail=detail, end_note=end_note) as tmp:
        root = tmp / "lake"
        bench_lake(root, args.tickers, args.years, as_of)
        results = bench_windows(root, tmp, windows, as_of)
        bench_repro(tmp, results)


if __name__ == "__main__":
    if not common.child_main(CHILDREN):
        main()

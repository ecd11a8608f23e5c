"""Feature research without a backfill: one candidate evaluated over 200 names x 2 years of synthetic data.

Setup (not a result): a synthetic lake of 200 names, raw data and both stored feature families for every
session of 2022-10-03..2025-01-31 (`backfill`), or an existing lake given with --lake.

Measured, in a fresh child process per run (imports not counted): `feature_research.evaluate` of the example
candidate (examples/candidate_feature.py:INTRADAY_REVERSAL) over the decision sessions 2023-01-03..2024-12-31
(502; `--window` for another, e.g. the main job's lake from 2023-01-06), then `feature_research.write` (the tear
sheet and the JSON), with wall and CPU seconds per stage (CPU: the whole process's, threads included): load (the
candidate's raw inputs), compute (`compute_days` over the 502 days and their look-back), checks (the recompute
guards on 30 days, or on every day with --guard-days 0, and ingest_not_before_inputs on every row), market (the
wait for the labels' bars, the universe and the 36 stored features as known at each session, read on a thread
while the candidate is computed, matplotlib imported there too), ic (decision-time values, labels at 4 horizons,
IC, quantiles, persistence, coverage), correlations (against the stored features) and tear_sheet (rendering).

Run: .venv/bin/python benchmarks/bench_feature_research.py [--lake DIR] [--guard-days N] [--repeats N]
     [--window START END]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402

CANDIDATE = f"{REPO / 'examples' / 'candidate_feature.py'}:INTRADAY_REVERSAL"
WINDOW = ("2023-01-03", "2024-12-31")
STAGES = ("load", "compute", "checks", "market", "ic", "correlations", "tear_sheet")


def _build(root: str) -> dict:
    from quant_assets.core.features.backfill import backfill
    from quant_assets.core.ingest.sources import SyntheticMarket

    t0 = time.perf_counter()
    market = SyntheticMarket(seed=42, n_tickers=200)
    backfill(Path(root), market, market, "2022-10-03", "2025-01-31")
    return {"wall_s": time.perf_counter() - t0}


def _evaluate(root: str, out: str, guard_days: int, window: list[str]) -> dict:
    from quant_assets.core.research import feature_research

    t0, c0 = time.perf_counter(), common.cpu_s()
    report = feature_research.evaluate(root, CANDIDATE, *window, guard_days=guard_days)
    feature_research.write(report, Path(out))
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": common.cpu_s() - c0,
        "stages": report.seconds,
        "sessions": len(report.values),
        "names": int(report.values.shape[1]),
        "passed": report.lookahead_passed,
        "load1": common.load1(),
    }


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--lake", help="an existing lake (200 names, 2022-10..2025-01) instead of building one")
    parser.add_argument("--guard-days", type=int, default=30, help="days the recompute guards check (0: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--window", nargs=2, default=WINDOW, metavar=("START", "END"), help="decision sessions")
    args = parser.parse_args()
    with common.report("bench_feature_research") as tmp:
        root = args.lake
        if root is None:
            root = str(tmp / "lake")
            common.section("setup: backfill of 200 names, 2022-10-03..2025-01-31 (not a result)")
            print(f"built in {common.run(__file__, 'build', root)['wall_s']:.0f} s")
        common.section(f"evaluate + write, {args.window[0]}..{args.window[1]}, guard days {args.guard_days}")
        runs = [
            common.run(__file__, "evaluate", root, str(tmp / "out"), args.guard_days, list(args.window))
            for _ in range(args.repeats)
        ]
        first = runs[0]
        print(f"{first['names']} names x {first['sessions']} sessions; guards passed: {first['passed']}")
        rows = [[s, *[f"{r['stages'][s][0]:.2f} / {r['stages'][s][1]:.2f}" for r in runs]] for s in STAGES]
        rows.append(["total", *[f"{r['wall_s']:.2f} / {r['cpu_s']:.2f}" for r in runs]])
        common.print_table(
            ["stage (wall / CPU s)", *[f"run {i + 1}" for i in range(len(runs))]],
            rows,
            note="load average at each run's end: " + ", ".join(f"{r['load1']:.2f}" for r in runs),
        )


if __name__ == "__main__" and not common.child_main({"build": _build, "evaluate": _evaluate}):
    main()

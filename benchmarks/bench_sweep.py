"""The parameter sweep through ``sweep_job`` on the multiprocess executor (Dagster's default: one fresh process per
step, spawned), 50 configurations x 5 walk-forward folds on a synthetic snapshot: wall time, how much of it the
steps' process start-up takes, CPU seconds, and the sweep's result (DSR, PBO, best configuration, record id).

Run: .venv/bin/python benchmarks/bench_sweep.py [--code DIR] [--steps N] [--pg-url URL] [--save F] [--compare F]

Setup (not timed): a fresh database on the Postgres of ``--pg-url`` (Dagster's run storage and the registry, the
project's dagster.yaml in a temporary DAGSTER_HOME), the tests' synthetic snapshot (30 names x 167 sessions,
four features) materialised as ``training_snapshot``. Timed: one ``execute_job`` of ``sweep_job`` with
``max_concurrent: 2`` (this machine has 2 cores): 5 learning rates x 5 leaf counts x 2 rules = 50 configurations,
5 folds, 20 boosting rounds.

Start-up of a step: from the executor's STEP_WORKER_STARTING to the step's STEP_START (a new interpreter importing
the project and loading the definitions). Shares: of the steps' process time (STEP_WORKER_STARTING to
STEP_SUCCESS, summed), and of the run's wall time on its 2 process slots (sum / (2 x wall)).

``--code DIR`` measures another source tree with this same script (its quant_assets, first on PYTHONPATH, in
this process and in every step process), e.g. the branch point::

    git archive <commit> | tar -x -C /tmp/sweep-base && .venv/bin/python benchmarks/bench_sweep.py \\
        --code /tmp/sweep-base --save /tmp/before.json
    .venv/bin/python benchmarks/bench_sweep.py --compare /tmp/before.json

A tree whose SweepConfig has no ``steps`` runs one step per (configuration, fold). ``--compare`` checks that the
sweep's record (table, DSR, PBO) and record id equal the saved run's, value for value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, arguments, cpu_s, fresh_database, load_text, print_table

GRID = {
    "learning_rates": [0.02, 0.04, 0.06, 0.08, 0.1],
    "num_leaves": [3, 5, 7, 11, 15],
    "rules": ["long_short:0.2", "topk:8:2"],
    "n_folds": 5,
    "min_train_days": 60,
    "num_boost_round": 20,
}


def _database(server_url: str) -> tuple[str, str]:
    """A new database on the server, with the quant schema; (its psycopg2 URL, its name)."""
    from quant_assets.core import schema
    from quant_assets.core.storage import pg

    url, name = fresh_database(server_url, "bench_sweep")
    with pg.connect(url) as c:
        schema.migrate(c)
    return url, name


def _drop(server_url: str, name: str) -> None:
    import psycopg2

    from quant_assets.core.storage import pg

    conn = psycopg2.connect(pg.libpq(server_url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def _run_config(steps: int | None, start_method: str, grid: dict) -> dict:
    from quant_assets.defs.config import SweepConfig

    config = {**GRID, **grid}
    if steps is not None and "steps" in SweepConfig.model_fields:
        config["steps"] = steps
    method = {"spawn": {}} if start_method == "spawn" else {"forkserver": {}}
    return {
        "ops": {"backtest_sweep": {"ops": {"plan_sweep": {"config": config}, "aggregate_sweep": {"config": config}}}},
        "execution": {"config": {"multiprocess": {"max_concurrent": 2, "start_method": method}}},
    }


def _step_times(instance, run_id: str) -> list[tuple[str, float, float]]:
    """(step key, start-up s, process s) of every step that ran in its own process."""
    import dagster as dg

    marks: dict[str, dict] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.step_key:
            marks.setdefault(event.step_key, {}).setdefault(event.event_type, record.timestamp)
    kinds = dg.DagsterEventType
    out = []
    for key, m in marks.items():
        if kinds.STEP_WORKER_STARTING in m and kinds.STEP_SUCCESS in m:
            began = m[kinds.STEP_WORKER_STARTING]
            out.append((key, m[kinds.STEP_START] - began, m[kinds.STEP_SUCCESS] - began))
    return out


def _sweep_record(url: str) -> tuple[str, dict]:
    from quant_assets.core.storage import pg

    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT backtest_id, metrics FROM quant.backtests WHERE kind = 'sweep'")
        (bid, metrics), *_ = cur.fetchall()
    return bid, metrics if isinstance(metrics, dict) else json.loads(metrics)


def measure(args) -> dict:
    """Set up, run sweep_job once, read its events and record; the figures."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    import quant_assets
    from quant_assets_tests.conftest import seed_snapshot_asset, synthetic_snapshot

    code = Path(quant_assets.__file__).resolve().parents[1]
    url, name = _database(args.pg_url)
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        home, lake = Path(tmp) / "dagster_home", Path(tmp) / "lake"
        home.mkdir()
        (home / "dagster.yaml").symlink_to(code / "dagster.yaml")
        os.environ.update(DAGSTER_HOME=str(home), DAGSTER_PG_URL=url, QUANT_PG_URL=url, QUANT_DATA_ROOT=str(lake))
        try:
            with dg.DagsterInstance.get() as instance:
                seed_snapshot_asset(instance, lake, synthetic_snapshot(lake))
                repo = ReconstructableRepository.for_module("quant_assets.definitions", "defs")
                job = repo.get_reconstructable_job("sweep_job")
                run_config = _run_config(args.steps, args.start_method, json.loads(args.grid))
                t0, c0, k0 = time.perf_counter(), cpu_s(), _children_cpu()
                result = dg.execute_job(job, instance, run_config=run_config)
                wall, cpu, kids = time.perf_counter() - t0, cpu_s() - c0, _children_cpu() - k0
                if not result.success:
                    raise SystemExit(f"sweep_job failed (run {result.run_id})")
                steps = _step_times(instance, result.run_id)
            record_id, record = _sweep_record(url)
        finally:
            _drop(args.pg_url, name)
    return {"code": str(code), "wall": wall, "cpu": cpu, "children_cpu": kids, "steps": steps,
            "record_id": record_id, "record": record, "load": load_text()}  # fmt: skip


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def show(figures: dict) -> None:
    steps, wall = figures["steps"], figures["wall"]
    startup, busy = sum(s[1] for s in steps), sum(s[2] for s in steps)
    record = figures["record"]
    print(f"code: {figures['code']}; {figures['load']} at the end of the run")
    rows = [
        ["steps in their own process", len(steps)],
        ["wall time of the run, s", f"{wall:.1f}"],
        ["CPU s: run process / step processes", f"{figures['cpu']:.1f} / {figures['children_cpu']:.1f}"],
        ["step start-up, s: total / mean per step", f"{startup:.1f} / {startup / max(1, len(steps)):.2f}"],
        ["start-up share of the steps' process time", f"{startup / busy:.0%}" if busy else "-"],
        ["start-up share of wall time on 2 slots", f"{startup / (2 * wall):.0%}"],
        ["configurations / cells", f"{record['configs']} / {record['cells']}"],
        ["best; DSR; PBO", f"{record['best']}; {record['dsr']:.6f}; {record['pbo']:.6f}"],
        ["record id", figures["record_id"]],
    ]
    print_table(f"sweep_job, {record['configs']} configurations, {record['cells']} cells|", rows)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--code", help="source tree to measure (default: this checkout)")
    parser.add_argument("--steps", type=int, default=None, help="SweepConfig.steps (default: the config's default)")
    parser.add_argument("--start-method", choices=["spawn", "forkserver"], default="spawn")
    parser.add_argument(
        "--pg-url", default=os.environ.get("QUANT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--grid", default="{}", help="JSON overriding fields of the grid (a quick check: smaller)")
    parser.add_argument("--save", help="write the figures as JSON here")
    parser.add_argument("--compare", help="a saved run's JSON: print both and check the record is the same")
    parser.add_argument("--child", action="store_true", help=argparse_hidden())
    args = parser.parse_args()
    if not args.child:  # measure in a child whose PYTHONPATH starts with the tree measured (steps inherit it)
        code = str(Path(args.code or REPO).resolve())
        from quant_assets import settings

        path = os.pathsep.join([code, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env = settings.launch_env({**os.environ, "PYTHONPATH": path})  # every setting at its default unless set
        print(f"bench_sweep: {sys.version.split()[0]}, {os.cpu_count()} cpus; at start: {load_text()}")
        subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], env=env, check=True)
        return
    figures = measure(args)
    if args.save:
        Path(args.save).write_text(json.dumps(figures))
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        print("\n== before (saved)")
        show(before)
        same = before["record"] == figures["record"] and before["record_id"] == figures["record_id"]
        print(f"\nrecord and record id equal to the saved run's: {same}")
        print(f"wall time: {before['wall']:.1f} s -> {figures['wall']:.1f} s ({before['wall'] / figures['wall']:.1f}x)")
    print("\n== this run")
    show(figures)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()

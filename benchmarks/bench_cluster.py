"""The daily chain on two Celery workers over a bucket, against the same chain in one process (prints figures).

Setup (not timed): a synthetic lake (``--names`` names, 2024-01-02..2024-06-28) built with the core API and
copied three times: to a local directory, and to two prefixes of a bucket on moto's S3-compatible server
(127.0.0.1, started here). On each copy a champion is trained in process (retrain_job, two folds), each with
its own registry database on the Postgres of ``--pg-url``. Two dagster-celery workers are started as the README
says, each in its own empty directory with its own DAGSTER_HOME copy.

Timed, one run each, the daily chain (``daily_job``: ingest -> features -> predictions -> drift) for the five
sessions 2024-07-01..2024-07-08 as one range run:

    A  in process, lake on local disk                (the baseline)
    B  in process, lake in the bucket                (what the object store costs)
    C  two Celery workers, lake in the bucket        (what the cluster costs on top)

For each: wall time, CPU seconds of the launching process, the sum of the steps' own durations (STEP_START to
STEP_SUCCESS, from the run's events) and the run's overhead beyond them. The per-step overhead of Celery is
(C's wall - B's wall) / steps; the queue wait (the executor's ``celery_queue_wait`` markers) is shown apart.
The drift rows of A, B and C are checked equal.

Run: .venv/bin/python benchmarks/bench_cluster.py [--names 60] [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
Needs RabbitMQ at deploy/celery.yaml's broker and a Postgres (trust auth) at --pg-url.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402
import dagster as dg  # noqa: E402
import yaml  # noqa: E402
from dagster._core.definitions.reconstruct import ReconstructableRepository  # noqa: E402

from quant_assets import settings  # noqa: E402
from quant_assets.core.features.backfill import backfill  # noqa: E402
from quant_assets.core.ingest.sources import SyntheticMarket  # noqa: E402
from quant_assets.core.storage import fs, pg  # noqa: E402
from quant_assets_tests import celery_workers, object_store  # noqa: E402
from quant_assets_tests.run_configs import TRAINING_RUN_CONFIG  # noqa: E402

HISTORY = ("2024-01-02", "2024-06-28")
DAYS = ("2024-07-01", "2024-07-08")
RANGE = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[1]}
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
NO_FAIL = {"ops": {"drift_metrics": {"config": {"on_critical": "warn"}}}}


def _database(server_url: str) -> str:
    """A new database on the server; its psycopg2 URL."""
    return common.fresh_database(server_url, "bench_cluster")[0]


def _run(instance, job: str, run_config: dict, tags: dict, env: dict) -> tuple[dg.DagsterRun, float, float]:
    """One run of ``job`` launched from this process with ``env`` set; (run, wall s, this process's CPU s)."""
    os.environ.update(env)
    repo = ReconstructableRepository.for_module("quant_assets.definitions", "defs")
    t0, c0 = time.perf_counter(), common.cpu_s()
    result = dg.execute_job(repo.get_reconstructable_job(job), instance, run_config=run_config, tags=tags)
    wall, cpu = time.perf_counter() - t0, common.cpu_s() - c0
    if not result.success:
        raise SystemExit(f"{job} failed (run {result.run_id}) with {env.get('QUANT_DATA_ROOT')}")
    return result.dagster_run, wall, cpu


def _step_figures(instance, run_id: str) -> tuple[int, float, float]:
    """(steps, sum of their own durations, summed Celery queue wait) from the run's events."""
    starts, own, waits, marks = {}, 0.0, 0.0, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            own += record.timestamp - starts[event.step_key]
        elif event.event_type_value == "ENGINE_EVENT" and event.engine_event_data:
            data = event.engine_event_data
            if data.marker_start == "celery_queue_wait":
                marks[event.step_key] = record.timestamp
            elif data.marker_end == "celery_queue_wait" and event.step_key in marks:
                waits += record.timestamp - marks.pop(event.step_key)
    return len(starts), own, waits


def _drift_rows(url: str) -> list:
    with pg.connect(url) as conn, conn.cursor() as cur:
        # inputs: the fingerprint of the parts read, among them the features each run wrote with its own run_id
        cur.execute(
            "SELECT to_jsonb(d) - 'run_id' - 'seq' - 'computed_at' - 'inputs' FROM quant.drift_metrics d "
            "ORDER BY 1::text"
        )
        return [row[0] for row in cur.fetchall()]


def _start_workers(tmp: Path, config_file: Path, queue: str, env: dict) -> list:
    """Two workers, each in its own empty directory with its own DAGSTER_HOME copy."""
    workers = []
    for i in range(2):
        wdir = tmp / f"worker{i}"
        (wdir / "home").mkdir(parents=True)
        (wdir / "cwd").mkdir()
        shutil.copy(REPO / "dagster.yaml", wdir / "home" / "dagster.yaml")
        worker_env = settings.launch_env({**os.environ, **env, "DAGSTER_HOME": str(wdir / "home")})
        workers.append(
            celery_workers.start(
                config_file, queue, f"bench{i}{uuid.uuid4().hex[:4]}", wdir / "cwd", worker_env, wdir / "worker.log"
            )  # fmt: skip
        )
    return workers


def _setup(tmp: Path, server, names: int, pg_url: str) -> dict[str, dict]:
    """The three lakes (A local, B and C in the bucket) with a champion each; per mode its environment."""
    history = tmp / "history"
    market = SyntheticMarket(seed=21, n_tickers=names)
    backfill(history, market, market, *HISTORY, {"producer": "bench"})
    fs.register("s3", server.options)
    bucket = server.new_bucket()
    common_env = {**server.env, "QUANT_SEED": "21", "QUANT_N_TICKERS": str(names)}
    modes = {}
    for mode in "ABC":
        root = str(tmp / "lake_a") if mode == "A" else f"s3://{bucket}/lake_{mode.lower()}"
        if mode == "A":
            shutil.copytree(history, root)
        else:
            location = fs.location(root)
            location.fs.put(f"{history}/", f"{location.path}/", recursive=True)
        modes[mode] = {**common_env, "QUANT_DATA_ROOT": root, "QUANT_PG_URL": _database(pg_url)}
    return modes


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--names", type=int, default=60, help="synthetic market size (default 60)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    broker = celery_workers.celery_settings()["broker"]
    with common.report("bench_cluster", detail=f"{args.names} names") as tmp:
        server = object_store.start(tmp / "moto.log")
        instance_db = _database(args.pg_url)
        home = tmp / "home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        os.environ.update(settings.launch_env({**os.environ, "DAGSTER_PG_URL": instance_db}))
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        config_file = tmp / "celery.yaml"
        config_file.write_text(yaml.safe_dump(celery_workers.run_config(queue)))
        workers = []
        try:
            modes = _setup(tmp, server, args.names, args.pg_url)
            workers = _start_workers(tmp, config_file, queue, {**modes["C"], "DAGSTER_PG_URL": instance_db})
            _measure(home, modes, celery_workers.run_config(queue))
        finally:
            for w in workers:
                celery_workers.stop(w)
            celery_workers.delete_queue(broker, queue)
            server.process.kill()


def _measure(home: Path, modes: dict[str, dict], celery: dict) -> None:
    """Train a champion per mode (not timed), then time the daily chain in each mode and print the table."""
    rows, figures = [], {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for env in modes.values():
            _run(instance, "retrain_job", {**TRAINING_RUN_CONFIG, **IN_PROCESS}, {}, env)
        common.section(f"daily_job for {DAYS[0]}..{DAYS[1]}, one range run per mode")
        for mode, env in modes.items():
            execution = celery if mode == "C" else IN_PROCESS
            run, wall, cpu = _run(instance, "daily_job", {**NO_FAIL, **execution}, RANGE, env)
            steps, own, waits = _step_figures(instance, run.run_id)
            figures[mode] = (wall, steps)
            rows.append([mode, f"{wall:.1f}", f"{cpu:.1f}", steps, f"{own:.1f}", f"{wall - own:.1f}", f"{waits:.1f}"])
    common.print_table(
        ["mode", "wall s", "launcher cpu s", "steps", "steps' own s", "overhead s", "queue wait s"], rows
    )
    (a, steps), (b, _), (c, _) = figures["A"], figures["B"], figures["C"]
    print(
        f"bucket / local disk (in process): {common.ratio(b, a)}; two workers / in process (bucket): "
        f"{common.ratio(c, b)}; Celery overhead per step: {(c - b) / steps:.2f} s; {common.load_text()}"
    )
    drift = [_drift_rows(env["QUANT_PG_URL"]) for env in modes.values()]
    assert drift[0] and drift[0] == drift[1] == drift[2], "the three modes' drift rows differ"
    print(f"drift rows equal in A, B and C ({len(drift[0])} rows)")


if __name__ == "__main__":
    main()

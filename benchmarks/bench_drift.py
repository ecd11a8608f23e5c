"""Drift metrics: one day's computation, and a 500-session backfill of drift_metrics through the Dagster CLI.

Setup (not timed as a result): a 200-name synthetic lake from 2020-10-01, a model trained on
2021-01..06 and registered in a private Postgres, its predictions for the 500 sessions from 2021-07-01.

Measured:
- one day's drift row, computed alone (window load + metrics), for an early and a late day: the cost
  must not grow with the length of history before the day (ratio late / early);
- ``dagster asset materialize --select drift_metrics --partition-range`` over all 500 sessions:
  wall time, runs created (single-run backfill policy: one), rows upserted, and the cost per day
  against the one-day figure measured in the same run.

Run: .venv/bin/python benchmarks/bench_drift.py [--keep]   (work dir: data/benchmarks/drift)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402

from quant_assets import settings  # noqa: E402
from quant_assets.core import schema, sessions  # noqa: E402
from quant_assets.core.features.backfill import backfill  # noqa: E402
from quant_assets.core.features.library import ALL_FEATURES  # noqa: E402
from quant_assets.core.features.store import FeatureStore  # noqa: E402
from quant_assets.core.ingest.sources import SyntheticMarket  # noqa: E402
from quant_assets.core.monitoring.window import DriftRange, ModelProfile  # noqa: E402
from quant_assets.core.registry import artifacts, models, promotion  # noqa: E402
from quant_assets.core.research import scoring, snapshots  # noqa: E402
from quant_assets.core.research.training import Ensemble, TrainConfig  # noqa: E402
from quant_assets.core.storage import pg  # noqa: E402
from quant_assets.localpg import psycopg2_url  # noqa: E402

N_DAYS = 500
FIRST_SCORED = "2021-07-01"


def _setup(root: Path, url: str) -> tuple[list, ModelProfile, FeatureStore]:
    scored = sessions.sessions_between(FIRST_SCORED, "2024-01-01")[:N_DAYS]
    t0 = time.perf_counter()
    market = SyntheticMarket(seed=42, n_tickers=200)
    backfill(root, market, market, "2020-10-01", scored[-1])
    store = FeatureStore(root, ALL_FEATURES)
    data, manifest = snapshots.build(root, store, "2021-01-04", "2021-06-30", "2021-06-30", list(ALL_FEATURES))
    path, _ = snapshots.write(root, data, manifest)
    snap = snapshots.read(path)
    model = Ensemble.fit(snap.data, snap.features, TrainConfig(num_boost_round=60, seeds=(1,)))
    oos = snap.data[["date", "entity_key"]].assign(prediction=model.predict(snap.data))
    files = artifacts.save_model_files(root, "equity_lgbm", model.to_bytes(), oos)
    metrics_rows = {"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.1]}
    import pandas as pd

    with pg.connect(url) as conn:
        schema.migrate(conn)  # a fresh database: the schema a resource's setup would create
        ref = models.register_model(
            conn,
            "equity_lgbm",
            snap.fingerprint,
            snap.manifest["features"],
            {},
            "bench",
            ("2021-01-04", "2021-06-30"),
            files,
            pd.DataFrame(metrics_rows),
        )
        promotion.decide_promotion(conn, ref)
    for day in scored:
        scoring.write_day(root, day, scoring.score_day(store, model, ref.node, day, snap.manifest["universe"]))
    print(
        f"setup: lake 2020-10-01..{scored[-1]}, model {ref.node}, {len(scored)} days scored "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    return scored, ModelProfile.of(ref.node, snap, model), store


def _one_day(root: Path, store: FeatureStore, profile: ModelProfile, day, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        DriftRange(root, store, profile, [day]).row(day)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cli_backfill(root: Path, url: str, first, last) -> tuple[float, int, int]:
    home = Path(tempfile.mkdtemp(prefix="bench-drift-home-"))
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = settings.launch_env(
        dict(
            os.environ,
            DAGSTER_HOME=str(home),
            DAGSTER_PG_URL=url,
            QUANT_PG_URL=url,
            QUANT_DATA_ROOT=str(root),
            PYTHONWARNINGS="ignore",
        )
    )
    cmd = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "quant_assets.definitions",
        "--select",
        "drift_metrics",
        "--partition-range",
        f"{first}...{last}",
        "--config-json",
        '{"ops": {"drift_metrics": {"config": {"on_critical": "warn"}}}}',
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"backfill failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs")
        runs = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM quant.drift_metrics")
        rows = cur.fetchone()[0]
    shutil.rmtree(home, ignore_errors=True)
    return wall, runs, rows


def main() -> None:
    parser = common.arguments(__doc__)
    parser.add_argument("--keep", action="store_true", help="keep data/benchmarks/drift afterwards")
    args = parser.parse_args()
    work = REPO / "data" / "benchmarks" / "drift"
    shutil.rmtree(work, ignore_errors=True)
    root = work / "lake"
    root.mkdir(parents=True)
    import pgserver

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="bench-drift-pg-")) / "pgdata", cleanup_mode="delete")
    url = psycopg2_url(server.get_uri())
    try:
        scored, profile, store = _setup(root, url)
        early, late = scored[40], scored[-1]
        _one_day(root, store, profile, scored[20], repeats=1)  # warm-up: imports, calendar, first scans
        print(f"code {common.git_version()}; before timing: {common.load_text()}")
        t_early = _one_day(root, store, profile, early)
        t_late = _one_day(root, store, profile, late)
        print(
            f"one day's drift row (window load + metrics, median of 3): {early} {t_early * 1e3:.0f} ms, "
            f"{late} {t_late * 1e3:.0f} ms; late/early = {t_late / t_early:.2f} "
            f"({sessions.session_index(late) - sessions.session_index(early)} more sessions of history)"
        )
        wall, runs, rows = _cli_backfill(root, url, scored[0], scored[-1])
        per_day = wall / len(scored)
        print(
            f"CLI backfill of drift_metrics over {len(scored)} sessions ({scored[0]}..{scored[-1]}): "
            f"{wall:.1f} s wall, {runs} run(s) created, {rows} rows upserted; "
            f"{per_day * 1e3:.0f} ms per day = {per_day / t_late:.2f}x one day alone; {common.load_text()}"
        )
    finally:
        server.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The CLI paths the README documents: a single-run range backfill (`quant-assets materialize A,B K1...K2`), the
summary, and a backfill with a run config (`quant-assets backfill JOB START END -c FILE`), run as a person runs
them (a subprocess; `python -m quant_assets` is the console script's group)."""

import os
import subprocess
import sys

from quant_assets.paths import PROJECT_ROOT

ASSETS = "raw_prices,alt_data,price_features,alt_features"


def test_partition_range_through_the_dagster_cli_then_summary(pg_db, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        DAGSTER_PG_URL=pg_db,
        QUANT_PG_URL=pg_db,
        QUANT_DATA_ROOT=str(tmp_path / "lake"),
        QUANT_N_TICKERS="7",
        PYTHONWARNINGS="ignore",
    )
    # A shell without the object store's settings (they have no default in the resources): the run fails at
    # its step process's start-up, and the run's line names the missing variable.
    bare = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    failed = subprocess.run(
        [sys.executable, "-m", "quant_assets", "materialize", "feature_catalog"],
        env=bare, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert 'run FAILED: PostProcessingError: You have attempted to fetch the environment variable "AWS_' in (
        failed.stderr
    )
    run = subprocess.run(
        [sys.executable, "-m", "quant_assets", "materialize", ASSETS, "2024-07-01...2024-07-12"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # Progress: one line per finished step, the run's UI address, and the run's own result.
    assert "raw_prices done in" in run.stderr and "alt_data done in" in run.stderr, run.stderr
    assert "http://127.0.0.1:3000/runs/" in run.stderr
    assert run.stderr.rstrip().endswith("run succeeded"), run.stderr
    # The run wrote feature partitions of a complete month: the store it leaves is compacted, a record per
    # family version and month, by a compaction_job run after it (no daemon needed).
    assert "compaction_job: the 1 complete month(s) written, 2024-07...2024-07" in run.stderr
    records = sorted(
        p.relative_to(tmp_path / "lake" / "features").parts[0]
        for p in (tmp_path / "lake").glob("features/*/fv=*/_compacted/2024-07-*.json")
    )
    assert records == ["alt", "price"], run.stderr
    summary = subprocess.run(
        [sys.executable, "-m", "quant_assets", "summary"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert summary.returncode == 0, summary.stderr
    lines = {line.split()[0]: line.split() for line in summary.stdout.splitlines()[1:] if line.strip()}
    # 2024-07-01..12 holds 9 sessions (07-04 is a holiday); alt days: 06-29..07-12 = 14 calendar days.
    assert lines["raw_prices"][1:4] == ["9", "63", "7"]
    assert lines["alt_data"][1:4] == ["9", "98", "7"]


def test_summary_of_an_empty_lake_says_so(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "quant_assets", "summary", "--data-root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "The lake is empty" in out.stderr


def test_backfill_queues_one_run_per_session_with_the_run_config(pg_db, tmp_path, monkeypatch):
    """`quant-assets backfill JOB START END -c FILE`: one queued run per session, each with the file's run config
    (here the in_process engine; deploy/celery.yaml's block puts them on workers), grouped as one backfill."""
    import dagster as dg
    import yaml

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    config = {"execution": {"config": {"in_process": {}}}}
    (tmp_path / "engine.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, DAGSTER_HOME=str(home), DAGSTER_PG_URL=pg_db, QUANT_DATA_ROOT=str(tmp_path / "lake"))
    run = subprocess.run(
        [sys.executable, "-m", "quant_assets", "backfill", "ingest_job", "2024-07-01", "2024-07-05",
         "-c", str(tmp_path / "engine.yaml")],
        env={**env, "PYTHONWARNINGS": "ignore"}, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    monkeypatch.setenv("DAGSTER_PG_URL", pg_db)  # the instance's dagster.yaml reads it
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (backfill,) = instance.get_backfills()
        runs = instance.get_runs()
    assert f"backfill {backfill.backfill_id}: 4 runs of ingest_job queued" in run.stderr
    assert backfill.run_config == config and backfill.status.value == "COMPLETED"
    # 2024-07-01..05: four sessions (07-04 is a holiday), one run each, queued for the daemon.
    assert sorted(r.tags["dagster/partition"] for r in runs) == ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]
    assert {(r.job_name, r.status, r.tags["dagster/backfill"]) for r in runs} == {
        ("ingest_job", dg.DagsterRunStatus.QUEUED, backfill.backfill_id)
    }
    assert all(r.run_config == config for r in runs)

"""Command line: ``python -m quant_assets <command>``.

summary   print what the lake holds (rows, tickers, date span, quarantine), the registry and drift
sensor-once  run the Dagster daemon until the retraining sensor ticked and its runs finished
compact   write compacted feature files (one per month) beside the originals; queries read them
verify    check every stored file against its name, record or registered hash; exit 1 naming the bad ones
pg-url    start the project-local Postgres if needed and print its URL
pg-stop   stop the project-local Postgres
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from quant_assets.paths import default_data_root


def _data_root(args: argparse.Namespace) -> Path:
    return Path(args.data_root or os.environ.get("QUANT_DATA_ROOT", default_data_root())).resolve()


def _summary(args: argparse.Namespace) -> int:
    from quant_assets.core.summary import summarize

    root = _data_root(args)
    table = summarize(root)
    print(f"Data root: {root}")
    print(table.to_string(index=False))
    if table["rows"].sum() == 0:
        print("The lake is empty: run the main job first (see README).", file=sys.stderr)
        return 1
    url = os.environ.get("QUANT_PG_URL")
    if url:
        from quant_assets.core.storage import pg
        from quant_assets.core.summary import registry_summary

        with pg.connect(url) as conn:
            print()
            print(registry_summary(conn, root).to_string(index=False))
            _drift_summary(conn)
    return 0


def _drift_summary(conn) -> None:
    import pandas as pd

    from quant_assets.core.monitoring import history

    daily, monthly = history.summary(conn)
    if daily.empty:
        return
    print("\nDrift after going live (first sessions; IC of the predictions that matured that day):")
    print(daily.round(3).to_string(index=False))
    print("\nDrift by month (mean IC, mean PSI, last 20-day Sharpe, critical days):")
    print(monthly.round(3).to_string(index=False))
    print("\nPromotion decisions:")
    with pd.option_context("display.max_colwidth", 200, "display.width", 250):
        print(history.promotions(conn).to_string(index=False))


def _sensor_once(args: argparse.Namespace) -> int:
    from quant_assets.defs import daemon_once
    from quant_assets.paths import PROJECT_ROOT

    log = Path(args.log or PROJECT_ROOT / ".state" / "logs" / "daemon.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    runs = daemon_once.run(PROJECT_ROOT / "workspace.yaml", log, args.timeout)
    if not runs:
        print("retrain_on_drift ticked and requested no run (no new breach out of cool-down)")
    for r in runs:
        why = {k.removeprefix("quant/"): v for k, v in r.tags.items() if k.startswith("quant/")}
        print(f"retrain_on_drift requested {r.job_name} run {r.run_id[:8]} ({r.status.value}): {why}")
    return 0 if all(r.status.value == "SUCCESS" for r in runs) else 1


def _lineage(args: argparse.Namespace) -> int:
    from quant_assets.core.registry import lineage, models
    from quant_assets.core.registry.lineage_view import render_upstream
    from quant_assets.core.storage import pg

    url = os.environ.get("QUANT_PG_URL") or os.environ.get("DAGSTER_PG_URL")
    if not url:
        print("QUANT_PG_URL is not set (run through ./qa lineage ...)", file=sys.stderr)
        return 2
    with pg.connect(url) as conn:
        if args.downstream:
            if not lineage.node_exists(conn, args.downstream):
                print(
                    f"unknown lineage node {args.downstream!r}: use full ids as `lineage` prints them "
                    "(e.g. feature:ret_5@<12-char version>, code:<40-char sha>)",
                    file=sys.stderr,
                )
                return 1
            affected = lineage.blast_radius(conn, args.downstream)
            print(f"Models and backtests downstream of {args.downstream}: {len(affected)}")
            for node in affected:
                print(f"  {node}")
            return 0
        try:
            ref = models.model(conn, args.model)
        except LookupError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(render_upstream(ref.node, lineage.upstream(conn, ref.node)))
    return 0


def _compact(args: argparse.Namespace) -> int:
    from quant_assets.core.features.compaction import compact

    root = _data_root(args)
    done = compact(root, family=args.family, period=args.period, min_files=args.min_files)
    for c in done:
        note = "" if c.created else " (already there)"
        print(f"{c.record.relative_to(root)}: {c.files} files, {c.rows} rows{note}")
    print(f"{len(done)} compacted period(s) under {root / 'features'}" if done else "nothing to compact")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from quant_assets.core.audit import verify_lake

    root = _data_root(args)
    report = verify_lake(root, sample=args.sample, seed=args.seed)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.checked.items())) or "nothing"
    print(f"Data root: {root}\nchecked {counts}")
    for p in report.problems:
        print(f"BAD {p.kind}: {p.error}")
    for path in report.leftovers:
        print(f"temporary file of an interrupted writer (never read; safe to delete): {path}")
    for path in report.incomplete:
        print(f"incomplete snapshot (its writer was interrupted; building it again completes it): {path}")
    bad = len(report.problems)
    url = os.environ.get("QUANT_PG_URL")
    if url:
        from quant_assets.core.registry import artifacts
        from quant_assets.core.storage import pg

        with pg.connect(url) as conn:
            checked = artifacts.verify_models(conn)
        print(f"checked {len(checked)} registered model file(s) at the paths the registry ({url.split('@')[-1]}) holds")
        for node, _path, error in checked:
            if error:
                print(f"BAD {node}: {error}")
                bad += 1
    print("all verified" if not bad else f"{bad} bad file(s)")
    return 0 if not bad else 1


def _pg_url(args: argparse.Namespace) -> int:
    from quant_assets.localpg import ensure_local_postgres

    print(ensure_local_postgres())
    return 0


def _pg_stop(args: argparse.Namespace) -> int:
    from quant_assets.localpg import stop_local_postgres

    print("stopped" if stop_local_postgres() else "not running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m quant_assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="print what the lake holds")
    p.add_argument("--data-root", help="defaults to QUANT_DATA_ROOT or data/lake")
    p.set_defaults(func=_summary)
    p = sub.add_parser("lineage", help="upstream tree of a model, or what a node affects downstream")
    p.add_argument("model", nargs="?", default="equity_lgbm", help="name (latest version) or name:vN")
    p.add_argument(
        "--downstream", metavar="NODE", help="e.g. feature:ret_5@<version>, code:<git sha>, snapshot:<fingerprint>"
    )
    p.set_defaults(func=_lineage)
    p = sub.add_parser("sensor-once", help="run the daemon until the retraining sensor ticked and its runs finished")
    p.add_argument("--timeout", type=float, default=1200.0)
    p.add_argument("--log", help="daemon log file (default .state/logs/daemon.log)")
    p.set_defaults(func=_sensor_once)
    p = sub.add_parser("compact", help="compact feature files per month beside the originals (nothing rewritten)")
    p.add_argument("--data-root", help="defaults to QUANT_DATA_ROOT or data/lake")
    p.add_argument("--family", help="one feature family (default: all)")
    p.add_argument("--period", choices=["month", "year"], default="month")
    p.add_argument("--min-files", type=int, default=8, help="(re)compact a period once this many files are uncovered")
    p.set_defaults(func=_compact)
    p = sub.add_parser("verify", help="check every stored file against its name, record or registered hash")
    p.add_argument("--data-root", help="defaults to QUANT_DATA_ROOT or data/lake")
    p.add_argument("--sample", type=int, help="check a random sample of this many lake files (default: all)")
    p.add_argument("--seed", type=int, default=0, help="the sample's seed")
    p.set_defaults(func=_verify)
    sub.add_parser("pg-url", help="start the local Postgres and print its URL").set_defaults(func=_pg_url)
    sub.add_parser("pg-stop", help="stop the local Postgres").set_defaults(func=_pg_stop)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `... | head` closed the pipe: stop quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m quant_assets <command>``.

summary   print what the lake holds (rows, tickers, date span, quarantine)
pg-url    start the project-local Postgres if needed and print its URL
pg-stop   stop the project-local Postgres
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from quant_assets.paths import default_data_root


def _summary(args: argparse.Namespace) -> int:
    from quant_assets.core.catalog import summarize

    root = Path(args.data_root or os.environ.get("QUANT_DATA_ROOT", default_data_root())).resolve()
    table = summarize(root)
    print(f"Data root: {root}")
    print(table.to_string(index=False))
    if table["rows"].sum() == 0:
        print("The lake is empty: run the main job first (see README).", file=sys.stderr)
        return 1
    return 0


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
    sub.add_parser("pg-url", help="start the local Postgres and print its URL").set_defaults(func=_pg_url)
    sub.add_parser("pg-stop", help="stop the local Postgres").set_defaults(func=_pg_stop)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

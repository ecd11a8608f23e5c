"""Long-running services (web UI, daemon) and the project-local Postgres."""

from __future__ import annotations

import os

import click

from quant_assets.cli.stage import tool
from quant_assets.paths import PROJECT_ROOT

WORKSPACE = PROJECT_ROOT / "workspace.yaml"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, envvar="PORT", default=3000, show_default=True, help="Also read from PORT.")
def ui(host: str, port: int) -> None:
    """Open the Dagster web UI (and its daemon: schedules, sensors, backfills) on http://HOST:PORT."""
    os.execv(tool("dagster"), ["dagster", "dev", "-h", host, "-p", str(port), "-w", str(WORKSPACE)])


@click.command()
def daemon() -> None:
    """Run the Dagster daemon alone (schedules, sensors, queued runs, backfills) until interrupted."""
    os.execv(tool("dagster-daemon"), ["dagster-daemon", "run", "-w", str(WORKSPACE)])


@click.group()
def pg() -> None:
    """The project-local Postgres (pgserver, data in .state/pg), used when DAGSTER_PG_URL is not set."""


@pg.command()
@click.argument("url", required=False)
def url(url: str | None) -> None:
    """Print URL with the psycopg2 driver forced; without URL, start the local Postgres if needed and print its."""
    from quant_assets.localpg import ensure_local_postgres, psycopg2_url

    click.echo(psycopg2_url(url) if url else ensure_local_postgres())


@pg.command()
def stop() -> None:
    """Stop the project-local Postgres."""
    from quant_assets.localpg import stop_local_postgres

    click.echo("stopped" if stop_local_postgres() else "not running")

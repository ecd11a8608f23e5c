"""Long-running services (web UI, daemon, Celery workers) and the project-local Postgres."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import click

from quant_assets.cli.stage import tool
from quant_assets.paths import PROJECT_ROOT

WORKSPACE = PROJECT_ROOT / "workspace.yaml"
CELERY_YAML = PROJECT_ROOT / "deploy" / "celery.yaml"


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


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=CELERY_YAML,
    show_default="deploy/celery.yaml",
    help="The run config whose `execution: {config: {celery: ...}}` the runs are launched with.",
)
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
def celery(config_file: Path, args: tuple[str, ...]) -> None:
    """Start, list or stop Celery workers for the runs launched with a run config file: `dagster-celery ARGS`
    with the file's celery block, e.g. `celery worker start -A dagster_celery.app` or `celery worker list`.

    dagster-celery reads its settings one level up (`execution: {config: {...}}`) from where a run config holds
    them (`execution: {config: {celery: {...}}}`, the executor's choice of engine); that form is written under
    $DAGSTER_HOME/dagster_celery and passed as -y, so runs and workers read one file.
    """
    import yaml

    from quant_assets.defs.executor import engine_config

    settings = engine_config(yaml.safe_load(config_file.read_text()) or {}, "celery")
    if settings is None:
        raise click.ClickException(f"{config_file} does not select celery: `execution: {{config: {{celery: ...}}}}`")
    if not os.environ.get("DAGSTER_HOME"):
        raise click.ClickException("DAGSTER_HOME is not set: run through ./qa, or export it (see `./qa env`)")
    text = yaml.safe_dump({"execution": {"config": settings}}, sort_keys=True)
    worker_yaml = Path(
        os.environ["DAGSTER_HOME"], "dagster_celery", f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    )
    worker_yaml.parent.mkdir(parents=True, exist_ok=True)
    worker_yaml.write_text(text)
    asks_help = len(args) < 2 or "--help" in args  # `worker` alone, or help: a group takes no -y
    os.execv(tool("dagster-celery"), ["dagster-celery", *args, *([] if asks_help else ["-y", str(worker_yaml)])])


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

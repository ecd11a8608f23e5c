"""Options several commands share, each also read from the environment variable ``./qa`` and the assets use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from quant_assets.paths import default_data_root

data_root = click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="QUANT_DATA_ROOT",
    default=default_data_root,
    show_default="QUANT_DATA_ROOT, else data/lake",
    help="The lake's root directory.",
)

pg_url = click.option(
    "--pg-url",
    envvar="QUANT_PG_URL",
    show_envvar=True,
    help="Postgres of the quant schema (registry, catalog, drift); ./qa sets it to the Dagster Postgres.",
)


def require_pg_url(url: str | None) -> str:
    """The registry URL, or one line saying how to give it."""
    if not url:
        raise click.ClickException("no Postgres URL: pass --pg-url, set QUANT_PG_URL, or run through ./qa")
    return url


@contextmanager
def registry(url: str | None) -> Iterator:
    """A connection to the registry with the quant schema brought up to date first, as a run's resource setup
    does: a command run before any asset (lineage, verify on a new database) finds the tables."""
    from quant_assets.core import schema
    from quant_assets.core.storage import pg

    with pg.connect(require_pg_url(url)) as conn:
        schema.migrate(conn)
        yield conn

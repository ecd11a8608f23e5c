"""Options several commands share, each also read from the environment variable ``./qa`` and the assets use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click

from quant_assets.paths import default_data_root


def _lake_location(ctx, param, value):
    """The lake's root as a location; an s3:// root opens with the standard AWS_* variables (as the resources do)."""
    from quant_assets.core.storage import fs

    env = os.environ.get
    fs.register(
        "s3", fs.s3_options(env("AWS_ENDPOINT_URL", ""), env("AWS_ACCESS_KEY_ID", ""),
                            env("AWS_SECRET_ACCESS_KEY", ""), env("AWS_REGION", ""))
    )  # fmt: skip
    try:
        return fs.location(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


data_root = click.option(
    "--data-root",
    envvar="QUANT_DATA_ROOT",
    default=lambda: str(default_data_root()),
    callback=_lake_location,
    show_default="QUANT_DATA_ROOT, else data/lake",
    help="The lake's root: a directory or s3://bucket/prefix (endpoint and credentials: the AWS_* variables).",
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

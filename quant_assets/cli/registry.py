"""Commands on the Postgres registry: lineage and the quant schema."""

from __future__ import annotations

import click

from quant_assets import settings
from quant_assets.cli.options import pg_url, registry, require_pg_url


@click.command()
@click.argument("model", required=False, envvar="QUANT_MODEL_NAME", default=settings.default("QUANT_MODEL_NAME"))
@click.option("--downstream", metavar="NODE", help="e.g. feature:ret_5@<version>, code:<git sha>, snapshot:<fp>.")
@pg_url
def lineage(model: str, downstream: str | None, pg_url: str | None) -> None:
    """Upstream lineage tree of MODEL (name: latest version, or name:vN; default QUANT_MODEL_NAME), or with
    --downstream NODE the models and backtests that NODE affects."""
    from quant_assets.core.registry import lineage, models
    from quant_assets.core.registry.lineage_view import render_upstream

    with registry(pg_url) as conn:
        if downstream:
            if not lineage.node_exists(conn, downstream):
                raise click.ClickException(
                    f"unknown lineage node {downstream!r}: use full ids as `lineage` prints them "
                    "(e.g. feature:ret_5@<12-char version>, code:<40-char sha>)"
                )
            affected = lineage.blast_radius(conn, downstream)
            click.echo(f"Models and backtests downstream of {downstream}: {len(affected)}")
            for node in affected:
                click.echo(f"  {node}")
            return
        try:
            ref = models.model(conn, model)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(render_upstream(ref.node, lineage.upstream(conn, ref.node)))


@click.command()
@pg_url
def migrate(pg_url: str | None) -> None:
    """Create or bring up to date the quant schema (catalog, registry, drift, failures) in Postgres."""
    from quant_assets.core import schema
    from quant_assets.core.storage import pg

    with pg.connect(require_pg_url(pg_url)) as conn:
        applied = schema.migrate(conn)
    for step in applied:
        click.echo(f"applied: {step}")
    click.echo(f"quant schema up to date ({len(applied)} step(s) applied)")

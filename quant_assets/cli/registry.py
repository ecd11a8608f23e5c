"""Commands on the Postgres registry: lineage and the quant schema."""

from __future__ import annotations

import re

import click

from quant_assets import settings
from quant_assets.cli.inputs import InputError
from quant_assets.cli.options import pg_url, registry, require_pg_url


@click.command()
@click.argument("model", required=False, envvar="QUANT_MODEL_NAME", default=settings.default("QUANT_MODEL_NAME"))
@click.option(
    "--downstream",
    metavar="NODE",
    help="e.g. code:<git sha>, feature:ret_5@<version>, source:raw_prices:<date>, snapshot:<fp>.",
)
@pg_url
def lineage(model: str, downstream: str | None, pg_url: str | None) -> None:
    """Upstream lineage tree of MODEL (name: its champion, else its latest version; or name:vN; default
    QUANT_MODEL_NAME) or of any node id (e.g. prediction:<name>:vN:<date>, book:<date>); or with --downstream
    NODE every model, prediction day, book session, backtest and drift row that NODE affects."""
    from quant_assets.core.registry import lineage, models
    from quant_assets.core.registry.lineage_view import render_affected, render_upstream

    with registry(pg_url) as conn:
        if downstream:
            _known(conn, downstream)
            click.echo(render_affected(downstream, lineage.affected(conn, downstream)))
            return
        kind, colon, _ = model.partition(":")
        if colon and kind in lineage.NODE_KINDS and not re.fullmatch(r"[^:]+:v\d+", model):  # a node id, not a model
            _known(conn, model)
            click.echo(render_upstream(model, lineage.upstream(conn, model)))
            return
        try:
            ref = models.model(conn, model)
        except (LookupError, ValueError) as exc:
            raise InputError(str(exc)) from None
        click.echo(render_upstream(ref.node, lineage.upstream(conn, ref.node)))
        click.echo(_state_lines(conn, ref))


def _known(conn, node: str) -> None:
    """A user error naming what was meant, unless ``node`` is in the lineage graph."""
    from quant_assets.core.registry import lineage

    if lineage.node_exists(conn, node):
        return
    kind = node.partition(":")[0]
    if kind not in lineage.NODE_KINDS:
        raise InputError(
            f"unknown lineage node {node!r}: a node id starts with one of {', '.join(lineage.NODE_KINDS)} "
            "(e.g. source:raw_prices:2025-01-29, prediction:<name>:v1:2025-01-29, code:<40-char sha>)"
        )
    prefix, count, first, last = lineage.similar(conn, node)
    hint = f"; {count} stored id(s) start with {prefix!r}: {first} .. {last}" if count else f"; no {kind} node stored"
    raise InputError(
        f"unknown lineage node {node!r}: use full ids as `lineage` prints them "
        f"(e.g. feature:ret_5@<12-char version>, code:<40-char sha>){hint}"
    )


def _state_lines(conn, ref) -> str:
    """The model's state now and its changes, under its lineage tree (``models`` shows every version's)."""
    from quant_assets.core.registry import states

    now = states.current(conn, ref)
    changes = states.transitions(conn, ref.name)
    mine = changes[changes["model"] == f"{ref.name}:v{ref.version}"]
    since = f" from {now.effective}" if now.effective else " (as registered)"
    lines = [f"state: {now.state}{since}"]
    lines += [
        f"  {c.effective}: {c.from_state} -> {c.to_state} by {c.actor} ({c.rule}: {c.reason})"
        for c in mine.itertuples()
    ]
    return "\n".join(lines)


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


@click.command(name="models")
@click.argument("name", required=False, envvar="QUANT_MODEL_NAME", default=settings.default("QUANT_MODEL_NAME"))
@pg_url
def models_command(name: str, pg_url: str | None) -> None:
    """The versions of model NAME (default QUANT_MODEL_NAME) with their states, and every change of state:
    from, to, the session it applies from, the rule and values that fired, who acted and why."""
    import pandas as pd

    from quant_assets.core.registry import states

    with registry(pg_url) as conn:
        versions, changes = states.overview(conn, name), states.transitions(conn, name)
    if versions.empty:
        raise click.ClickException(f"no model named {name!r} in the registry")
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.max_rows", 500):
        click.echo(f"Versions of {name}:\n{versions.to_string(index=False)}\n")
        shown = changes.drop(columns=["decided_at"]).rename(columns={"trigger_values": "values"})
        click.echo(f"State changes ({len(changes)}):\n{shown.to_string(index=False) if len(shown) else '  none'}")


@click.command()
@click.argument("model")
@click.option("--by", "approver", required=True, help="The approver's name (recorded as user:<name>).")
@click.option("--reason", required=True, help="Why trading may resume (recorded with the change).")
@click.option(
    "--as-of", "as_of", help="The session whose information the review saw (default: the model's last drift row)."
)
@pg_url
def approve(model: str, approver: str, reason: str, as_of: str | None, pg_url: str | None) -> None:
    """Resume MODEL (name:vN, or a name: its champion), paused or de-risked, to live from the session
    after --as-of: a recorded manual approval."""
    from quant_assets.core import sessions
    from quant_assets.core.monitoring import actions
    from quant_assets.core.registry import models, states

    with registry(pg_url) as conn:
        try:
            ref = models.model(conn, model)
            day = actions.review_day(conn, ref, as_of)
            change = states.approve(conn, ref, approver, reason, day)
        except (LookupError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    effective = sessions.next_session(day)
    click.echo(f"{ref.node}: {change.from_state} -> live from {effective}, approved by {approver.strip()}")

"""Commands on the lake: what it holds, compaction, integrity."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from quant_assets.cli.options import data_root, pg_url, registry


@click.command()
@data_root
@pg_url
def summary(data_root: Path, pg_url: str | None) -> None:
    """Print what the lake holds (rows, tickers, date span, quarantine), the registry and the drift table."""
    print_summary(data_root, pg_url)


def print_summary(data_root: Path, pg_url: str | None) -> None:
    """The lake's table; with a Postgres URL also the registry, the drift after going live and the promotions."""
    from quant_assets.core.summary import summarize

    root = data_root
    table = summarize(root)
    click.echo(f"Data root: {root}")
    click.echo(table.to_string(index=False))
    if table["rows"].sum() == 0:
        click.echo("The lake is empty: run the main job first (see README).", err=True)
        sys.exit(1)
    if pg_url:
        from quant_assets.core.summary import registry_summary

        with registry(pg_url) as conn:
            click.echo()
            click.echo(registry_summary(conn, root).to_string(index=False))
            _drift_summary(conn, root)


def _drift_summary(conn, root) -> None:
    import pandas as pd

    from quant_assets.core.monitoring import history

    daily, monthly = history.summary(conn)
    if daily.empty:
        return
    click.echo("\nDrift after going live (first sessions; IC of the predictions that matured that day):")
    click.echo(daily.round(3).to_string(index=False))
    click.echo("\nDrift by month (mean IC, mean PSI, last 20-day Sharpe, critical days):")
    click.echo(monthly.round(3).to_string(index=False))
    with pd.option_context("display.max_colwidth", 400, "display.width", 250):
        click.echo("\nPromotion decisions (net-of-cost backtests of both models on the same sessions):")
        click.echo(history.promotions(conn).to_string(index=False))
    _states_and_book(conn, root)


def _states_and_book(conn, root) -> None:
    """Every model's changes of state with their dates, and the live book as traded against the same book with
    no state acting on it (the default portfolio rule and costs, as the main job trades)."""
    import pandas as pd

    from quant_assets.core.registry import states
    from quant_assets.core.research import backtest
    from quant_assets.core.trading import live

    changes = states.transitions(conn)
    if len(changes):
        click.echo("\nModel states (each change applies from the session `effective`):")
        shown = changes[["model", "from_state", "to_state", "as_of", "effective", "rule", "actor", "reason"]]
        with pd.option_context("display.max_colwidth", 90, "display.width", 250):
            click.echo(shown.to_string(index=False))
    book = live.managed_vs_unmanaged(conn, root, backtest.PortfolioRule(), backtest.Costs())
    if len(book):
        click.echo("\nThe live book over its realised sessions, with the states' actions and without them:")
        click.echo(book.round(4).to_string())


@click.command()
@data_root
@click.option("--family", help="One feature family (default: all).")
@click.option("--period", type=click.Choice(["month", "year"]), default="month", show_default=True)
@click.option("--min-files", type=int, default=8, show_default=True, help="(Re)compact once this many are uncovered.")
def compact(data_root: Path, family: str | None, period: str, min_files: int) -> None:
    """Compact feature files per period beside the originals (nothing rewritten); queries read them."""
    from quant_assets.core.features import compaction
    from quant_assets.core.storage import fs

    root = data_root
    done = compaction.compact(root, family=family, period=period, min_files=min_files)
    for c in done:
        note = "" if c.created else " (already there)"
        click.echo(f"{fs.relative(c.record, root)}: {c.files} files, {c.rows} rows{note}")
    click.echo(f"{len(done)} compacted period(s) under {root / 'features'}" if done else "nothing to compact")


@click.command()
@data_root
@pg_url
@click.option("--sample", type=int, help="Check a random sample of this many lake files (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="The sample's seed.")
def verify(data_root: Path, pg_url: str | None, sample: int | None, seed: int) -> None:
    """Check every stored file against its name, record or registered hash; exit 1 naming the bad ones."""
    from quant_assets.core.audit import verify_lake

    root = data_root
    report = verify_lake(root, sample=sample, seed=seed)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.checked.items())) or "nothing"
    click.echo(f"Data root: {root}\nchecked {counts}")
    for p in report.problems:
        click.echo(f"BAD {p.kind}: {p.error}")
    for path in report.leftovers:
        click.echo(f"temporary file of an interrupted writer (never read; safe to delete): {path}")
    for path in report.incomplete:
        click.echo(f"incomplete snapshot (its writer was interrupted; building it again completes it): {path}")
    bad = len(report.problems) + (_verify_models(pg_url) if pg_url else 0)
    click.echo("all verified" if not bad else f"{bad} bad file(s)")
    sys.exit(1 if bad else 0)


def _verify_models(url: str) -> int:
    from quant_assets.core.registry import artifacts

    with registry(url) as conn:
        checked = artifacts.verify_models(conn)
    click.echo(
        f"checked {len(checked)} registered model file(s) at the paths the registry ({url.split('@')[-1]}) holds"
    )
    bad = [(node, error) for node, _path, error in checked if error]
    for node, error in bad:
        click.echo(f"BAD {node}: {error}")
    return len(bad)

"""``quant-assets research feature``: a candidate feature's figures and tear sheet, from the raw lake, no backfill."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from quant_assets.cli import inputs
from quant_assets.cli.options import data_root


@click.group()
def research() -> None:
    """Research without a backfill: evaluate a candidate before it enters the library."""


@research.command("feature")
@click.argument("candidate")
@click.option("--start", required=True, help="First decision session of the window (YYYY-MM-DD).")
@click.option("--end", required=True, help="Last decision session of the window (YYYY-MM-DD).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the tear sheet (PNG) and the figures (JSON).  [default: <data root>/research]",
)
@click.option(
    "--guard-days",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Sessions whose rows the lookahead guards recompute, spread over the window (0: every session).",
)
@data_root
def feature(candidate: str, start: str, end: str, out: Path | None, guard_days: int, data_root) -> None:
    """Evaluate CANDIDATE (path/to/file.py:NAME or package.module:NAME, NAME a FeatureDef) point in time over the
    decision sessions START..END: IC and rank IC at horizons 1, 5, 10, 20 (IC decay), quantile returns, rank
    autocorrelation and turnover, coverage, correlation with every stored feature, and the lookahead guards.
    Prints the figures, writes the tear sheet and a JSON of the figures, and exits 1 if a lookahead guard fails.

    \b
    Example:
      quant-assets research feature examples/candidate_feature.py:INTRADAY_REVERSAL \\
        --start 2024-01-02 --end 2024-06-28
    """
    from quant_assets.core.research import feature_research
    from quant_assets.core.research.candidate import CandidateError

    first, last = inputs.session_range(start, end, ("--start", "--end"), separator="..")
    try:
        report = feature_research.evaluate(data_root, candidate, first, last, guard_days=guard_days)
    except CandidateError as exc:
        raise inputs.InputError(str(exc)) from None
    png, figures = feature_research.write(report, out if out is not None else data_root / "research")
    click.echo(feature_research.text(report))
    click.echo(f"\nTear sheet: {png}\nFigures:    {figures}")
    if not report.lookahead_passed:
        click.echo(
            "Error: a lookahead guard failed (above): the candidate's values depend on more than the inputs known "
            "at their time, so its figures are not evidence. Fix the function before registering it.",
            err=True,
        )
        sys.exit(1)

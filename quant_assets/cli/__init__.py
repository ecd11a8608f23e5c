"""The ``quant-assets`` command line (click): every project command, each with ``--help``.

Commands import what they need when they run, so ``quant-assets --help`` and ``quant-assets pg url`` stay fast.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from quant_assets.cli.demo import main as demo
from quant_assets.cli.explain import explain
from quant_assets.cli.lake import compact, summary, verify
from quant_assets.cli.registry import approve, lineage, migrate, models_command
from quant_assets.cli.replay import replay
from quant_assets.cli.research import research
from quant_assets.cli.runs import backfill, daemon_once, materialize
from quant_assets.cli.services import celery, daemon, pg, ui


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
def cli() -> None:
    """quant-assets: point-in-time research-to-production pipeline on Dagster.

    Run it through ./qa (it sets up the virtualenv, DAGSTER_HOME and the local Postgres), or with those set.
    """


PIPELINE = (
    demo,
    summary,
    lineage,
    explain,
    models_command,
    approve,
    compact,
    verify,
    migrate,
    materialize,
    backfill,
    daemon_once,
    research,
    replay,
)
SERVICES = (ui, daemon, celery, pg)
for command in (*PIPELINE, *SERVICES):
    cli.add_command(command)
for command in (celery, pg):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point; ``... | head`` closing the pipe ends quietly, as a shell tool does."""
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    try:
        cli(prog_name="quant-assets")
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)

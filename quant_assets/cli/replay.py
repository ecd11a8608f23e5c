"""``quant-assets replay``: rebuild a registered model (or one of its backtests) in a scratch data root and say,
artifact by artifact, whether it is what was recorded (core/registry/replay.py)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from quant_assets.cli.inputs import InputError
from quant_assets.cli.options import data_root, pg_url, registry


@click.command()
@click.argument("target")
@click.option(
    "--scratch",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to rebuild in (kept afterwards; must be empty or new).  [default: a temporary directory, removed]",
)
@data_root
@pg_url
def replay(target: str, scratch: Path | None, data_root, pg_url: str | None) -> None:
    """Replay TARGET (model:<name>:vN, or backtest:<id>: its model, then that backtest) from the lake as known at
    the model's as-of: rebuild its snapshot from the raw data with today's feature code, retrain it with its
    recorded configuration, rescore its stored prediction days, rerun its backtests; then print, for the snapshot
    fingerprint, the artifact's SHA-256, the predictions and each backtest's metrics, `identical` or `differs`
    (recorded and replayed values, and why), and the environment's differences from the recorded one. Nothing is
    written to the lake or the registry. Exits 1 on any difference.

    \b
    Example:
      quant-assets replay model:equity_lgbm:v1
    """
    from quant_assets.core.registry import artifacts
    from quant_assets.core.registry import replay as core
    from quant_assets.core.research.snapshots import SnapshotError
    from quant_assets.provenance import code_version

    if scratch is not None and scratch.exists() and any(scratch.iterdir()):
        raise InputError(f"--scratch {scratch} is not empty: give a new or empty directory")
    where = scratch or Path(tempfile.mkdtemp(prefix="quant-replay-"))
    try:
        with registry(pg_url) as conn:
            report = core.replay(conn, data_root, where, target, code_version=code_version())
    except core.ReplayError as exc:
        raise InputError(str(exc)) from None
    except (SnapshotError, artifacts.ArtifactTampered) as exc:  # the recorded inputs themselves cannot be read
        raise click.ClickException(str(exc)) from None
    finally:
        if scratch is None:
            shutil.rmtree(where, ignore_errors=True)
    click.echo(report.text())
    if not report.identical:
        sys.exit(1)

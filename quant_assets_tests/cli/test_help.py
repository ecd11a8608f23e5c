"""Every command and group answers --help (exit 0, its usage line and a description)."""

import click
import pytest
from click.testing import CliRunner

from quant_assets.cli import cli

COMMANDS = {
    "main",
    "summary",
    "lineage",
    "explain",
    "models",
    "approve",
    "compact",
    "verify",
    "migrate",
    "materialize",
    "backfill",
    "daemon-once",
    "research",
    "replay",
    "ui",
    "daemon",
    "celery",
    "pg",
}


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_paths(command, (*prefix, name)))
    return paths


def test_the_top_level_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"], prog_name="quant-assets")
    assert result.exit_code == 0
    assert result.output.startswith("Usage: quant-assets [OPTIONS] COMMAND [ARGS]...")
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == COMMANDS


@pytest.mark.parametrize("path", _paths(cli), ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="quant-assets")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: quant-assets {' '.join(path)} ")
    description = result.output.split("\n\n")[1].strip()
    assert len(description) > 20, result.output


def test_the_console_script_is_the_click_group():
    import tomllib

    from quant_assets.paths import PROJECT_ROOT

    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"quant-assets": "quant_assets.cli:main"}


def test_celery_passes_help_through_to_dagster_celery_without_its_config_option(tmp_path):
    """`celery worker --help` is dagster-celery's own help: a group takes no -y, which a command is given."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from quant_assets.paths import PROJECT_ROOT

    script = Path(sys.executable).with_name("quant-assets")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    for args, usage in (
        (["worker", "--help"], "worker [OPTIONS] COMMAND"),
        (["worker", "start", "--help"], "worker start"),
    ):
        out = subprocess.run(
            [str(script), "celery", *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0 and f"Usage: dagster-celery {usage}" in out.stdout, out.stdout + out.stderr

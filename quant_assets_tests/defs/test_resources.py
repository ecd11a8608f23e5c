"""The registry resource reads the model name when a run launches: a bad one fails the run, saying so."""

import os
import subprocess
import sys
from pathlib import Path

from quant_assets import settings
from quant_assets.paths import PROJECT_ROOT


def test_a_launch_with_a_bad_model_name_from_the_environment_fails_saying_so(pg_db, tmp_path):
    """QUANT_MODEL_NAME is read when a run launches (dg.EnvVar), not at import: the definitions load, and the
    first run that uses the registry fails at its resource's setup with the rule's message."""
    home = tmp_path / "home"
    home.mkdir()
    env = settings.launch_env(
        {**os.environ, "QUANT_MODEL_NAME": "../../X", "QUANT_PG_URL": pg_db, "DAGSTER_HOME": str(home)}
    )
    loads = subprocess.run([sys.executable, "-c", "import quant_assets.definitions"], env=env, cwd=PROJECT_ROOT)
    assert loads.returncode == 0
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "quant_assets.definitions",
         "--select", "feature_catalog"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode != 0 and "invalid model name '../../X'" in out.stdout + out.stderr

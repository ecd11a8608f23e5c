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


def test_the_read_cache_setting_reaches_the_feature_store(monkeypatch, tmp_path):
    """QUANT_READ_CACHE (read at launch) is the directory the lake's feature store caches object-store files in;
    empty (the default): no cache."""
    import dagster as dg

    from quant_assets.defs.resources import default_resources

    monkeypatch.setenv("QUANT_DATA_ROOT", str(tmp_path / "lake"))
    for value, expected in (("", None), (str(tmp_path / "cache"), tmp_path / "cache")):
        monkeypatch.setenv("QUANT_READ_CACHE", value)
        with dg.build_resources({"lake": default_resources()["lake"]}) as resources:
            assert resources.lake.feature_store().read_cache == expected


def test_a_lake_in_a_bucket_that_does_not_exist_fails_at_setup_naming_it(monkeypatch, s3_server):
    """QUANT_DATA_ROOT=s3://<missing bucket>/...: the resource's setup (at launch, before any step writes) fails
    with the bucket's name, not every partition later with the store's own error."""
    import dagster as dg
    import pytest

    from quant_assets.defs.resources import default_resources

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("QUANT_DATA_ROOT", "s3://no-such-bucket-here/lake")
    with pytest.raises(dg.DagsterResourceFunctionError) as failed:
        with dg.build_resources({"lake": default_resources()["lake"]}):
            pass
    assert "bucket 'no-such-bucket-here' does not exist at http://127.0.0.1" in str(failed.value.__cause__)
    monkeypatch.setenv("QUANT_DATA_ROOT", f"s3://{s3_server.new_bucket()}/lake")
    with dg.build_resources({"lake": default_resources()["lake"]}) as resources:
        assert str(resources.lake.path).endswith("/lake")

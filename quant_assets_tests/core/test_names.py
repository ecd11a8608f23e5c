"""Every place a name becomes a path refuses a name that would leave its directory, where the name enters."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from quant_assets import settings
from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import write_day
from quant_assets.core.registry import artifacts, models
from quant_assets.core.research import snapshots
from quant_assets.core.storage import lake, pg
from quant_assets.paths import PROJECT_ROOT

ESCAPES = ["../../X", "a/../../b", "..", "/abs", "a/b"]
OOS = pd.DataFrame({"date": [dt.date(2024, 1, 2)], "entity_key": ["A"], "prediction": [0.1]})


@pytest.mark.parametrize("name", [*ESCAPES, "a:v2", "", "x" * 65, "1abc", "a b"])
def test_a_model_name_that_is_no_plain_name_is_refused_before_anything_is_written(tmp_path, name):
    root = tmp_path / "deep" / "lake"
    with pytest.raises(ValueError, match="invalid model name"):
        artifacts.save_model_files(root, name, b"{}", OOS)
    assert not any(tmp_path.rglob("*.json")) and not any(tmp_path.rglob("*.parquet"))


def test_good_model_names_are_accepted_and_stay_under_models(tmp_path):
    for name in ("equity_lgbm", "stocknet_lgbm", "A.b-c_2"):
        files = artifacts.save_model_files(tmp_path, name, b"{}", OOS)
        assert files.artifact.path.parent == tmp_path / "models" / name


def test_registry_lookups_refuse_bad_specs(pg_db):
    with pg.connect(pg_db) as conn:
        for spec in ("../x", "m:vX", "m:v"):
            with pytest.raises(ValueError, match="invalid model"):
                models.model(conn, spec)
        with pytest.raises(LookupError):
            models.model(conn, "m:v3")


@pytest.mark.parametrize("fingerprint", ["../../etc", "abc", "G" * 64, "a" * 63 + "/"])
def test_a_snapshot_path_is_made_only_from_a_fingerprint(tmp_path, fingerprint):
    with pytest.raises(snapshots.SnapshotError, match="not a snapshot fingerprint"):
        snapshots.locate(tmp_path, fingerprint)
    assert snapshots.locate(tmp_path, "a" * 64) == tmp_path / "snapshots" / ("a" * 64)


@pytest.mark.parametrize("dataset", ["../../X", "a/../../b", "..", "/abs", "a//b", "a/."])
def test_a_dataset_name_cannot_leave_the_lake(tmp_path, dataset):
    with pytest.raises(ValueError, match="invalid name"):
        lake.partition_dir(tmp_path, dataset, dt.date(2024, 1, 2))
    assert lake.partition_dir(tmp_path, "quarantine/raw_prices", dt.date(2024, 1, 2)) == (
        tmp_path / "quarantine" / "raw_prices" / "date=2024-01-02"
    )


def test_a_feature_family_name_cannot_leave_the_store(tmp_path):
    feature = FeatureDef(
        "x", "../evil", lambda panel: panel["close"].iloc[-1], "x", ("raw_prices",), 1, pd.Timedelta(0)
    )
    family = FeatureFamily("../evil", "raw_prices", ("close",), (feature,), "a family with a bad name")
    t = pd.Timestamp("2024-01-02 21:00", tz="UTC")
    rows = pd.DataFrame({"entity_key": ["A"], "event_time": [t], "ingest_time": [t], "x": [1.0]})
    with pytest.raises(ValueError, match="invalid name"):
        write_day(tmp_path / "lake", family, dt.date(2024, 1, 2), rows, {})
    assert not any(tmp_path.rglob("*.parquet"))


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

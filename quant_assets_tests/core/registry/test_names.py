"""A model name becomes a path and a registry key: one that would leave its directory is refused where it enters."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from quant_assets.core.registry import artifacts, models
from quant_assets.core.storage import pg

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

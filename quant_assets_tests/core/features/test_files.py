"""A feature family's name becomes a path in the store: one that would leave it is refused before anything is
written."""

import datetime as dt

import pandas as pd
import pytest

from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import write_day


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

"""A feature family's name becomes a path in the store: one that would leave it is refused before anything is
written. A listing's window (``within``) and a range's months (``months_between``) are the plain filters'."""

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import months_between, partition_day, within, write_day


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


DAYS = st.dates(dt.date(2023, 11, 1), dt.date(2024, 3, 31))


@given(st.lists(st.tuples(DAYS, st.sampled_from("abc")), max_size=30), st.one_of(st.none(), DAYS), DAYS)
def test_within_is_the_partitions_from_first_to_last(parts, first, last):
    names = sorted(f"date={d.isoformat()}/part-{x}.parquet" for d, x in parts)
    expected = [
        n
        for n in names
        if (first is None or first.isoformat() <= partition_day(n)) and partition_day(n) <= last.isoformat()
    ]
    assert within(names, first, last) == expected


@given(DAYS, DAYS)
def test_months_between_are_the_calendar_months_the_range_touches(first, last):
    days = pd.date_range(first, last, freq="D")
    assert months_between(first, last) == sorted({d.strftime("%Y-%m") for d in days})

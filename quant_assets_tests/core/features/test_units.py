"""Storage units of a feature family: a rerun with nothing new computes nothing, a restated bar recomputes exactly
the days whose windows read it, and a feature added to a family is computed and stored alone while queries that
mix it with the old features answer as before."""

import shutil

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.features import compute, units
from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import family_dir, read_manifest
from quant_assets.core.features.library import ALL_FEATURES, PRICE_FAMILY
from quant_assets.core.features.materialize import materialize
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import PRICE_SCHEMA, PRICE_VALUES
from quant_assets.core.ingest.sources.base import PRICE_LAG
from quant_assets.core.storage import lake
from quant_assets_tests.conftest import FEATURE_LAKE_SESSIONS

PROV = {"producer": "test", "producer_version": "sha", "run_id": "r"}
DAYS = sessions.sessions_between("2024-06-17", "2024-06-28")  # the feature lake's last two weeks


def gap_to_high(panel) -> pd.Series:
    """close / high of the day - 1: how far below its high a name closed."""
    return panel["close"].iloc[-1] / panel["high"].iloc[-1] - 1


NEW = FeatureDef("gap_to_high", "price", gap_to_high, "close / high - 1", ("raw_prices",), 1, PRICE_LAG)


@pytest.fixture
def lake_copy(feature_lake, tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    return root


def _files(base) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_a_rerun_with_nothing_new_computes_and_writes_nothing(lake_copy):
    before = _files(lake_copy / "features")
    run = materialize(lake_copy, PRICE_FAMILY, DAYS, PROV)
    assert run.skipped == len(DAYS) and run.computed == [] and run.written == 0 and run.emitted.empty
    assert _files(lake_copy / "features") == before


def test_a_restated_bar_recomputes_the_days_whose_windows_read_it_and_no_other(lake_copy):
    fixed = DAYS[4]
    rows = lake.read_partition(lake_copy, "raw_prices", fixed)
    rows.loc[rows["ticker"] == "SYN003", ["close", "adj_close"]] *= 1.1
    correction = sessions.session_close(DAYS[-1]) + pd.Timedelta(hours=3)
    lake.append_new_versions(
        lake_copy, "raw_prices", fixed, rows.drop(columns=["date"], errors="ignore"), ["ticker", "event_time"],
        PRICE_VALUES, correction, PRICE_SCHEMA,
    )  # fmt: skip
    plan = units.plan(lake_copy, PRICE_FAMILY, [PRICE_FAMILY], DAYS)
    assert plan.pending == {PRICE_FAMILY.version: DAYS[4:]} and plan.done == 4  # every later window holds it
    run = materialize(lake_copy, PRICE_FAMILY, DAYS, PROV)
    assert run.skipped == 4 and run.written > 0
    emitted = run.emitted
    assert set(emitted.loc[emitted["ingest_time"] == correction, "entity_key"]) >= {"SYN003"}
    assert materialize(lake_copy, PRICE_FAMILY, DAYS, PROV).skipped == len(DAYS)  # and then nothing is new


def test_a_feature_added_to_a_family_is_stored_alone_and_mixed_queries_answer_as_before(lake_copy):
    old_dir = family_dir(lake_copy, PRICE_FAMILY)
    before = _files(old_dir)
    extended = FeatureFamily(
        "price", PRICE_FAMILY.source, PRICE_FAMILY.fields, (*PRICE_FAMILY.features, NEW), PRICE_FAMILY.description
    )
    assert [sorted(f.name for f in u.features) for u in units.units(lake_copy, extended)] == [
        sorted(f.name for f in PRICE_FAMILY.features),
        ["gap_to_high"],
    ]
    days = sessions.sessions_between(*FEATURE_LAKE_SESSIONS)
    run = materialize(lake_copy, extended, days, PROV)
    ((unit, _),) = run.computed
    assert [f.name for f in unit.features] == ["gap_to_high"] and run.skipped == len(days)
    assert _files(old_dir) == before  # the old features keep their version, directory and files
    new_dir = family_dir(lake_copy, unit)
    assert read_manifest(new_dir)["features"] == {"gap_to_high": NEW.version}
    assert set(run.emitted.columns) == {*compute.META, "gap_to_high"}

    old_store = FeatureStore(lake_copy, ALL_FEATURES)
    new_store = FeatureStore(lake_copy, {**ALL_FEATURES, "gap_to_high": NEW})
    names = [f"SYN{i:03d}" for i in range(40)]
    for day in (days[70], days[-1]):
        at = sessions.decision_time(sessions.next_session(day))
        old = old_store.get_latest(names, ["ret_5", "vol_20"], at)
        mixed = new_store.get_latest(names, ["ret_5", "gap_to_high", "vol_20"], at)
        cols = ["entity_key", "ret_5", "vol_20"]
        pd.testing.assert_frame_equal(mixed[cols].reset_index(drop=True), old[cols].reset_index(drop=True))
        px = lake.latest_versions(lake.read_partition(lake_copy, "raw_prices", day), ["ticker"]).set_index("ticker")
        expected = (px["close"] / px["high"] - 1).reindex(mixed["entity_key"]).to_numpy()
        np.testing.assert_array_equal(mixed["gap_to_high"].to_numpy(), expected)
    assert materialize(lake_copy, extended, days[-3:], PROV).skipped == 2 * 3  # both units done

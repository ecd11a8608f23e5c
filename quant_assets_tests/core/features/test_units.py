"""Storage units of a feature family: a rerun with nothing new computes nothing, a restated bar recomputes exactly
the days whose windows read it, and a feature added to a family, or a new version of one, is computed and stored
alone while queries that mix it with the old features answer as before and the old version stays queryable."""

import dataclasses
import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from quant_assets.core import sessions
from quant_assets.core.features import compute, files, integrity, units
from quant_assets.core.features.compaction import compact
from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import FeatureStoreError, family_dir, read_manifest, retirements
from quant_assets.core.features.library import ALL_FEATURES, PRICE_FAMILY
from quant_assets.core.features.materialize import materialize
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import PRICE_SCHEMA, PRICE_VALUES, ingest_prices
from quant_assets.core.ingest.sources import SyntheticMarket
from quant_assets.core.ingest.sources.base import PRICE_LAG
from quant_assets.core.storage import lake, verify
from quant_assets_tests.conftest import FEATURE_LAKE_SESSIONS

PROV = {"producer": "test", "producer_version": "sha", "run_id": "r"}
DAYS = sessions.sessions_between("2024-06-17", "2024-06-28")  # the feature lake's last two weeks


def gap_to_high(panel) -> pd.Series:
    """close / high of the day - 1: how far below its high a name closed."""
    return panel["close"].iloc[-1] / panel["high"].iloc[-1] - 1


NEW = FeatureDef("gap_to_high", "price", gap_to_high, "close / high - 1", ("raw_prices",), 1, PRICE_LAG)


def hl_range_v2(panel, window: int) -> pd.Series:
    """The library's hl_range rewritten (new code, so a new version of hl_range_1): mean (high - low) / close."""
    return ((panel["high"] - panel["low"]) / panel["close"]).iloc[-window:].mean()


OLD_HL = ALL_FEATURES["hl_range_1"]
NEW_HL = dataclasses.replace(OLD_HL, fn=hl_range_v2)
NAMES = [f"SYN{i:03d}" for i in range(40)]
OTHERS = [f.name for f in PRICE_FAMILY.features if f.name != "hl_range_1"]  # the price features it leaves alone
HISTORY = sessions.sessions_between(*FEATURE_LAKE_SESSIONS)
LATER = sessions.sessions_between("2024-07-01", "2024-07-05")  # sessions after the feature lake's


def _bumped(family: FeatureFamily, *new: FeatureDef) -> FeatureFamily:
    """``family`` with the features named like ``new`` replaced by them (their new versions)."""
    by_name = {f.name: f for f in new}
    return dataclasses.replace(family, features=tuple(by_name.get(f.name, f) for f in family.features))


BUMPED = _bumped(PRICE_FAMILY, NEW_HL)


@pytest.fixture
def lake_copy(feature_lake, tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=shutil.ignore_patterns("snapshots", "models"))
    return root


def _files(base) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def _sha256(base) -> dict[str, str]:
    """Every file under ``base`` but the retirement records, by its SHA-256."""
    return {k: hashlib.sha256(v).hexdigest() for k, v in _files(base).items() if not k.startswith("_retired-")}


def _hl_range(root, day) -> np.ndarray:
    """(high - low) / close of ``day``'s latest bar per name in NAMES, from the raw partition."""
    px = lake.latest_versions(lake.read_partition(root, "raw_prices", day), ["ticker"]).set_index("ticker")
    return ((px["high"] - px["low"]) / px["close"]).reindex(NAMES).to_numpy()


def _at(day) -> pd.Timestamp:
    """The decision time that reads ``day``'s values (the next session's)."""
    return sessions.decision_time(sessions.next_session(day))


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
    plan = units.plan(lake_copy, PRICE_FAMILY, units.units(lake_copy, PRICE_FAMILY), DAYS)
    assert plan.pending == {f"fv={PRICE_FAMILY.version}": DAYS[4:]} and plan.done == 4  # every later window holds it
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
    assert [sorted(f.name for f in u.family.features) for u in units.units(lake_copy, extended)] == [
        sorted(f.name for f in PRICE_FAMILY.features),
        ["gap_to_high"],
    ]
    days = sessions.sessions_between(*FEATURE_LAKE_SESSIONS)
    run = materialize(lake_copy, extended, days, PROV)
    ((unit, _),) = run.computed
    assert [f.name for f in unit.family.features] == ["gap_to_high"] and run.skipped == len(days)
    assert _files(old_dir) == before  # the old features keep their version, directory and files
    new_dir = unit.directory
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


def test_a_new_version_of_a_feature_is_stored_alone_and_its_old_version_stays_queryable(lake_copy):
    old_dir = family_dir(lake_copy, PRICE_FAMILY)
    before = _sha256(old_dir)
    old_answers = {
        day: FeatureStore(lake_copy, ALL_FEATURES).get_latest(NAMES, [*OTHERS, "hl_range_1"], _at(day))
        for day in (HISTORY[70], HISTORY[-1])
    }
    assert NEW_HL.version != OLD_HL.version
    run = materialize(lake_copy, BUMPED, HISTORY, PROV)
    ((unit, _),) = run.computed  # the new version's unit alone; the old directory's days are all done
    assert [f.name for f in unit.family.features] == ["hl_range_1"] and run.skipped == len(HISTORY)
    assert read_manifest(unit.directory)["features"] == {"hl_range_1": NEW_HL.version}
    assert _sha256(old_dir) == before  # the old directory's files, byte for byte (a retirement record beside them)
    (retired,) = retirements(old_dir).values()
    assert list(retirements(old_dir)) == [OLD_HL.key] and retired.through == HISTORY[-1]
    assert retired.covers == {k for k in before if k.startswith("date=") and k.endswith(".parquet")}

    store = FeatureStore(lake_copy, {**ALL_FEATURES, "hl_range_1": NEW_HL})
    assert store.versions("hl_range_1") == sorted([OLD_HL.version, NEW_HL.version])
    for day, old in old_answers.items():
        mixed = store.get_latest(NAMES, ["hl_range_1", *OTHERS, OLD_HL.key], _at(day))
        pd.testing.assert_frame_equal(mixed[OTHERS], old[OTHERS])
        np.testing.assert_array_equal(mixed["hl_range_1"].to_numpy(), _hl_range(lake_copy, day))
        np.testing.assert_array_equal(mixed[OLD_HL.key].to_numpy(), old["hl_range_1"].to_numpy())
    again = materialize(lake_copy, BUMPED, HISTORY, PROV)
    assert again.computed == [] and again.skipped == 2 * len(HISTORY) and again.written == 0


def test_the_old_directory_keeps_its_other_features_for_new_sessions_and_refuses_the_retired_version_after(
    lake_copy, tmp_path
):
    market = SyntheticMarket(seed=21, n_tickers=40)
    for day in LATER:
        ingest_prices(market, day, lake_copy)
    never_bumped = tmp_path / "never_bumped"
    shutil.copytree(lake_copy, never_bumped)
    materialize(never_bumped, PRICE_FAMILY, LATER, PROV)
    old_dir = family_dir(lake_copy, PRICE_FAMILY)
    before = _sha256(old_dir)
    run = materialize(lake_copy, BUMPED, [*HISTORY[-5:], *LATER], PROV)
    assert run.skipped == 5 and sorted(len(u.family.features) for u, _ in run.computed) == [1, 28]
    assert {u.directory for u, _ in run.computed} == {old_dir, family_dir(lake_copy, BUMPED.only(["hl_range_1"]))}
    assert {k: v for k, v in _sha256(old_dir).items() if k in before} == before  # its stored files unchanged
    for day in LATER:  # its new files hold the still-current features, without the retired version's column
        (part,) = lake.partition_files(old_dir / f"date={day.isoformat()}")
        assert "hl_range_1" not in lake.read_part(part).column_names and "ret_5" in lake.read_part(part).column_names

    store = FeatureStore(lake_copy, {**ALL_FEATURES, "hl_range_1": NEW_HL})
    for day in LATER[:-1]:
        mixed = store.get_latest(NAMES, [*OTHERS, "hl_range_1"], _at(day))
        unbumped = FeatureStore(never_bumped, ALL_FEATURES).get_latest(NAMES, OTHERS, _at(day))
        pd.testing.assert_frame_equal(mixed[OTHERS], unbumped[OTHERS])
        np.testing.assert_array_equal(mixed["hl_range_1"].to_numpy(), _hl_range(lake_copy, day))
    last = store.get_latest(NAMES, [OLD_HL.key], _at(HISTORY[-1]))  # the retired version, as stored
    old = FeatureStore(never_bumped, ALL_FEATURES).get_latest(NAMES, ["hl_range_1"], _at(HISTORY[-1]))
    np.testing.assert_array_equal(last[OLD_HL.key].to_numpy(), old["hl_range_1"].to_numpy())
    with pytest.raises(FeatureStoreError, match=r"retired from .*\(stored through session 2024-06-28"):
        store.get_latest(NAMES, ["ret_5", OLD_HL.key], _at(LATER[0]))
    events = store.feature_events("price")
    old_rows = events[(events["feature_name"] == "hl_range_1") & (events["feature_version"] == OLD_HL.version)]
    assert old_rows["event_time"].max() == sessions.session_close(HISTORY[-1])
    problems = verify.verify(list(integrity.family_files(old_dir)), integrity.check, integrity.ERRORS).problems
    assert problems == [] and materialize(lake_copy, BUMPED, LATER, PROV).computed == []


def test_a_restatement_after_a_new_version_recomputes_each_units_affected_sessions_and_not_the_retired_one(
    lake_copy,
):
    materialize(lake_copy, BUMPED, DAYS, PROV)
    store = FeatureStore(lake_copy, {**ALL_FEATURES, "hl_range_1": NEW_HL})
    correction = sessions.session_close(DAYS[-1]) + pd.Timedelta(hours=3)
    when = correction + pd.Timedelta(minutes=1)
    before = store.get_latest(NAMES, [OLD_HL.key, "ma_gap_5"], when)
    fixed = DAYS[4]
    rows = lake.read_partition(lake_copy, "raw_prices", fixed)
    rows.loc[rows["ticker"] == "SYN003", ["close", "adj_close"]] *= 1.1
    lake.append_new_versions(
        lake_copy, "raw_prices", fixed, rows.drop(columns=["date"], errors="ignore"), ["ticker", "event_time"],
        PRICE_VALUES, correction, PRICE_SCHEMA,
    )  # fmt: skip
    parts = units.units(lake_copy, BUMPED)
    plan = units.plan(lake_copy, BUMPED, parts, DAYS)
    assert [len(u.family.features) for u in parts] == [28, 1] and parts[0].window == PRICE_FAMILY.lookback
    assert list(plan.pending.values()) == [DAYS[4:], [fixed]]  # the new version's window is that day alone
    run = materialize(lake_copy, BUMPED, DAYS, PROV)
    assert run.skipped == 4 + len(DAYS) - 1 and run.written > 0
    after = store.get_latest(NAMES, [OLD_HL.key, "ma_gap_5"], when)
    assert compact(lake_copy, "price", min_files=1, months=["2024-06"])  # a month of files with and without it
    compacted = store.get_latest(NAMES, [OLD_HL.key, "ma_gap_5"], when)
    pd.testing.assert_frame_equal(compacted, after)
    np.testing.assert_array_equal(after[OLD_HL.key].to_numpy(), before[OLD_HL.key].to_numpy())  # as stored
    changed = after["ma_gap_5"].to_numpy() != before["ma_gap_5"].to_numpy()
    assert list(np.array(NAMES)[changed]) == ["SYN003"]  # the current features see the correction
    assert materialize(lake_copy, BUMPED, DAYS, PROV).computed == []


def test_a_directory_keeps_its_window_when_the_version_with_the_longest_lookback_is_retired(lake_copy):
    """ret_60 and vol_60 alone look back 61 sessions: without them the old directory's features need 60, but its
    markers hash 61-session windows, recovered from them, so its stored days stay done."""
    bumped = _bumped(
        PRICE_FAMILY, *(dataclasses.replace(ALL_FEATURES[n], params={"window": 59}) for n in ("ret_60", "vol_60"))
    )
    parts = units.units(lake_copy, bumped)
    assert [u.family.lookback for u in parts] == [60, 61] and [u.window for u in parts] == [61, 61]
    run = materialize(lake_copy, bumped, DAYS, PROV)
    ((unit, _),) = run.computed
    assert sorted(f.name for f in unit.family.features) == ["ret_60", "vol_60"] and run.skipped == len(DAYS)
    assert units.units(lake_copy, bumped)[0].window == 61  # kept in the retirement record


def toy_value(panel, v: int) -> pd.Series:
    """A toy feature's definition (its rows are written by the test, never computed)."""
    return panel["close"].iloc[-1] * 0 + v


TOY = ("a", "b", "c", "d")


def _toy(versions: dict[str, int]) -> FeatureFamily:
    """Four toy features of lookbacks 1-4 at the given versions (a changed ``v`` is a new version)."""
    features = tuple(
        FeatureDef(n, "toy", toy_value, n, ("raw_prices",), 1 + i, PRICE_LAG, params={"v": versions[n]})
        for i, n in enumerate(TOY)
    )
    return FeatureFamily("toy", "raw_prices", ("close",), features, "toy features")


ALL_AT = st.integers(0, 1).map(lambda v: dict.fromkeys(TOY, v))  # the whole family at one version: reverts


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(ALL_AT, st.fixed_dictionaries({n: st.integers(0, 2) for n in TOY})), min_size=1, max_size=4))
@example([dict.fromkeys(TOY, 0), dict.fromkeys(TOY, 1), dict.fromkeys(TOY, 0)])  # a whole directory back in use
@example([dict.fromkeys(TOY, 0), {"a": 1, "b": 0, "c": 0, "d": 0}, dict.fromkeys(TOY, 0), dict.fromkeys(TOY, 1)])
def test_any_sequence_of_versions_stores_each_current_feature_once_and_keeps_every_version_queryable(tmp_path, steps):
    """Over any sequence of versions (bumps, several at once, reverts), each session: the units hold every current
    feature exactly once, every version ever stored answers with its own value as of its last session, and one
    no longer current is refused after that."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))  # a lake of its own for each example
    stored: dict[str, tuple[float, object]] = {}  # name@version -> (its value, the last session it was written)
    for day, versions in zip(DAYS, steps, strict=False):
        family = _toy(versions)
        parts = units.units(root, family)
        assert sorted(f.name for u in parts for f in u.family.features) == sorted(TOY)
        units.retire(root, family, parts)
        close = sessions.session_close(day)
        for unit in parts:
            row = {"entity_key": ["E"], "event_time": [close], "ingest_time": [close + PRICE_LAG]}
            row |= {f.name: [float(int(f.version[:6], 16))] for f in unit.family.features}
            files.write_day(root, unit.family, day, pd.DataFrame(row), PROV, unit.directory)
        stored |= {f.key: (float(int(f.version[:6], 16)), day) for f in family.features}
        store = FeatureStore(root, {f.name: f for f in family.features})
        for key, (value, last) in stored.items():
            assert store.get_latest(["E"], [key], _at(last))[key].tolist() == [value]
            if key not in {f.key for f in family.features}:
                with pytest.raises(FeatureStoreError, match="retired from"):
                    store.get_latest(["E"], [key], sessions.decision_time(sessions.session_offset(last, 2)))

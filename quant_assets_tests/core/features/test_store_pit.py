"""Point-in-time semantics of the feature store: hand-made bitemporal cases and a property test."""

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import FeatureStoreError, write_day
from quant_assets.core.features.store import FeatureStore

T0 = pd.Timestamp("2024-01-01", tz="UTC")
PROV = {"producer": "test", "producer_version": "sha", "run_id": "r1"}


def toy_value(panel, scale):
    return panel["close"].iloc[-1] * scale


def _family(scale=1.0) -> FeatureFamily:
    x = FeatureDef("x", "toy", toy_value, "toy", ("raw_prices",), 1, pd.Timedelta(0), params={"scale": scale})
    return FeatureFamily("toy", "raw_prices", ("close",), (x,), "toy family")


def _h(hours) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=hours)


def _write(root, family, rows, day=dt.date(2024, 1, 1)):
    frame = pd.DataFrame(rows, columns=["entity_key", "event", "ingest", "x"])
    frame = pd.DataFrame(
        {
            "entity_key": frame["entity_key"],
            "event_time": frame["event"].map(_h),
            "ingest_time": frame["ingest"].map(_h),
            "x": frame["x"].astype(float),
        }
    )
    return write_day(root, family, day, frame, PROV)


def _ask(store, pairs, features=("x",)):
    q = pd.DataFrame({"entity_key": [e for e, _ in pairs], "as_of": [_h(t) for _, t in pairs]})
    return store.get_point_in_time(q, list(features))


@pytest.fixture
def store(tmp_path):
    return tmp_path, FeatureStore(tmp_path, {"x": _family().features[0]})


def test_restatement_old_value_before_the_correction_new_after(store):
    root, fs = store
    _write(root, _family(), [("A", 10, 11, 1.0), ("A", 10, 30, 1.5)])
    got = _ask(fs, [("A", 9), ("A", 11), ("A", 29), ("A", 30), ("A", 99)])
    assert got["x"].tolist()[1:] == [1.0, 1.0, 1.5, 1.5] and np.isnan(got["x"].iloc[0])


def test_late_arrival_of_an_older_event_does_not_hide_a_newer_one(store):
    root, fs = store
    # event 10 arrives late (t=40) after event 20 (t=21); event 5 never restated.
    _write(root, _family(), [("A", 5, 6, 0.5), ("A", 20, 21, 2.0), ("A", 10, 40, 1.0)])
    got = _ask(fs, [("A", 8), ("A", 20), ("A", 25), ("A", 45)])
    assert got["x"].tolist() == [0.5, 0.5, 2.0, 2.0]
    assert got["event_time_toy"].tolist()[:3] == [_h(5), _h(5), _h(20)]


def test_a_restatement_of_the_latest_event_and_a_gap(store):
    root, fs = store
    _write(root, _family(), [("A", 20, 21, 2.0), ("A", 20, 50, 2.2), ("B", 30, 31, 7.0)])
    got = _ask(fs, [("A", 49), ("A", 50), ("B", 30), ("B", 31), ("C", 99)])
    assert got["x"].iloc[:2].tolist() == [2.0, 2.2]
    assert np.isnan(got["x"].iloc[2]) and got["x"].iloc[3] == 7.0 and np.isnan(got["x"].iloc[4])


def test_event_known_before_it_happened_is_refused(tmp_path):
    with pytest.raises(FeatureStoreError, match="ingest_time before event_time"):
        _write(tmp_path, _family(), [("A", 10, 9, 1.0)])


def test_same_key_with_other_values_is_refused_and_same_values_add_nothing(tmp_path):
    assert _write(tmp_path, _family(), [("A", 10, 11, 1.0)]).rows_written == 1
    assert _write(tmp_path, _family(), [("A", 10, 11, 1.0)]).rows_written == 0
    with pytest.raises(FeatureStoreError, match="differ from stored ones under the same version"):
        _write(tmp_path, _family(), [("A", 10, 11, 9.0)])


def test_a_version_bump_keeps_old_values_queryable(tmp_path):
    old, new = _family(1.0), _family(2.0)
    assert old.features[0].version != new.features[0].version
    _write(tmp_path, old, [("A", 10, 11, 1.0)])
    _write(tmp_path, new, [("A", 10, 11, 2.0)])
    fs = FeatureStore(tmp_path, {"x": new.features[0]})
    assert fs.versions("x") == sorted([old.features[0].version, new.features[0].version])
    got = _ask(fs, [("A", 12)], features=["x", f"x@{old.features[0].version}"])
    assert got["x"].tolist() == [2.0] and got[f"x@{old.features[0].version}"].tolist() == [1.0]
    with pytest.raises(FeatureStoreError, match="no stored values for x@nope"):
        _ask(fs, [("A", 12)], features=["x@nope"])


def test_get_latest_and_the_long_contract_view(store):
    root, fs = store
    _write(root, _family(), [("A", 10, 11, 1.0), ("B", 10, 12, 3.0), ("A", 10, 30, 1.5)])
    latest = fs.get_latest(["A", "B"], ["x"], _h(20))
    assert latest["x"].tolist() == [1.0, 3.0]
    events = fs.feature_events()
    assert list(events.columns) == [
        "entity_key",
        "feature_name",
        "feature_version",
        "event_time",
        "value",
        "ingest_time",
        "producer",
        "producer_version",
        "run_id",
    ]
    assert len(events) == 3 and set(events["feature_version"]) == {_family().features[0].version}
    assert not events.duplicated(["entity_key", "feature_name", "feature_version", "event_time", "ingest_time"]).any()


def reference_pit(rows: pd.DataFrame, entity: str, t: int) -> float:
    """Obviously correct: filter by both times, latest event, then latest ingest."""
    known = rows[(rows["entity_key"] == entity) & (rows["event"] <= t) & (rows["ingest"] <= t)]
    if known.empty:
        return np.nan
    best = known.sort_values(["event", "ingest"]).iloc[-1]
    return best["x"]


bitemporal_rows = st.lists(
    st.tuples(st.sampled_from("ABC"), st.integers(0, 40), st.integers(0, 25), st.integers(-1000, 1000)),
    min_size=1,
    max_size=60,
)


def _random_store(root, rows) -> tuple[pd.DataFrame, FeatureStore]:
    """Hypothesis' rows (entity, event, ingest delay, value) as a frame and stored, split across two partitions to
    exercise multi-file reads."""
    frame = pd.DataFrame(
        [(e, ev, ev + delay, float(v)) for e, ev, delay, v in rows], columns=["entity_key", "event", "ingest", "x"]
    ).drop_duplicates(["entity_key", "event", "ingest"])
    half = len(frame) // 2
    _write(root, _family(), frame.iloc[:half].values.tolist(), dt.date(2024, 1, 1))
    _write(root, _family(), frame.iloc[half:].values.tolist(), dt.date(2024, 1, 2))
    return frame, FeatureStore(root, {"x": _family().features[0]})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=bitemporal_rows,
    queries=st.lists(st.tuples(st.sampled_from("ABCD"), st.integers(0, 80)), min_size=1, max_size=40),
)
def test_matches_a_slow_reference_on_random_bitemporal_data(tmp_path_factory, rows, queries):
    frame, fs = _random_store(tmp_path_factory.mktemp("pit"), rows)
    got = _ask(fs, queries)
    expected = [reference_pit(frame, e, t) for e, t in queries]
    np.testing.assert_array_equal(got["x"].to_numpy(), np.array(expected, dtype=float))


def reference_known(rows: pd.DataFrame, entity: str, t: int, known: int) -> float:
    """Obviously correct, with two cut-offs: events by ``t`` as known at ``known``."""
    seen = rows[(rows["entity_key"] == entity) & (rows["event"] <= t) & (rows["ingest"] <= known)]
    return seen.sort_values(["event", "ingest"]).iloc[-1]["x"] if len(seen) else np.nan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=bitemporal_rows,
    queries=st.lists(
        st.tuples(st.sampled_from("ABCD"), st.integers(0, 80), st.integers(0, 40)), min_size=1, max_size=40
    ),
)
def test_a_later_knowledge_cut_off_changes_only_answers_restated_since(tmp_path_factory, rows, queries):
    """``known_at == as_of`` answers exactly as the plain query (values, event and ingest times); a later one
    answers as the two-cut-off reference, and differs from the plain answer only where a row with an event by
    as_of was ingested after as_of and by known_at."""
    frame, fs = _random_store(tmp_path_factory.mktemp("known"), rows)
    asked = pd.DataFrame({"entity_key": [e for e, _, _ in queries], "as_of": [_h(t) for _, t, _ in queries]})
    plain = fs.get_point_in_time(asked, ["x"], ingest_times=True)
    same = fs.get_point_in_time(asked.assign(known_at=asked["as_of"]), ["x"], ingest_times=True)
    pd.testing.assert_frame_equal(same.drop(columns="known_at"), plain, check_exact=True)
    later = fs.get_point_in_time(asked.assign(known_at=[_h(t + k) for _, t, k in queries]), ["x"])
    expected = [reference_known(frame, e, t, t + k) for e, t, k in queries]
    np.testing.assert_array_equal(later["x"].to_numpy(), np.array(expected, dtype=float))
    kept = [
        i
        for i, (e, t, k) in enumerate(queries)
        if frame[(frame["entity_key"] == e) & (frame["event"] <= t) & frame["ingest"].between(t + 1, t + k)].empty
    ]
    answer = ["x", "event_time_toy"]
    pd.testing.assert_frame_equal(
        later.loc[kept, answer].reset_index(drop=True), plain.loc[kept, answer].reset_index(drop=True), check_exact=True
    )


def test_since_reads_only_recent_partitions(tmp_path):
    _write(tmp_path, _family(), [("A", 10, 11, 1.0)], dt.date(2024, 1, 1))
    _write(tmp_path, _family(), [("A", 40, 41, 4.0)], dt.date(2024, 1, 3))
    fs = FeatureStore(tmp_path, {"x": _family().features[0]})
    q = pd.DataFrame({"entity_key": ["A", "A"], "as_of": [_h(20), _h(50)]})
    full = fs.get_point_in_time(q, ["x"])["x"].tolist()
    recent = fs.get_point_in_time(q, ["x"], since=dt.date(2024, 1, 2))["x"].tolist()
    assert full == [1.0, 4.0] and np.isnan(recent[0]) and recent[1] == 4.0
    # Nothing stored since then (an outage): nothing is known, which is an answer, not an error (issue 10.12).
    empty = fs.get_point_in_time(q, ["x"], since=dt.date(2024, 1, 4))
    assert empty["x"].isna().all() and empty["event_time_toy"].isna().all()


def test_a_bucket_answers_as_the_local_disk(tmp_path, s3_root):
    """The same writes to a local root and to a bucket (a compacted month plus a restatement after it) give the
    same answers, bit for bit: the object store's read path (all objects fetched, then decoded file by file on
    several threads) returns the local scan's rows."""
    from quant_assets.core.features.compaction import compact

    days = [dt.date(2024, 1, d) for d in (1, 2, 3)]
    rows = {
        d: [(e, 24 * k + 10 + i, 24 * k + 11 + i, 10.0 * k + i) for i, e in enumerate("ABC")]
        for k, d in enumerate(days)
    }
    late = [("B", 35, 60, -1.0)]  # a restatement of day 2, written after the compaction: an original it does not cover
    answers = []
    for root in (tmp_path / "lake", s3_root):
        for day in days:
            _write(root, _family(), rows[day], day)
        assert [c.files for c in compact(root, min_files=1)] == [3]
        _write(root, _family(), late, days[1])
        answers.append(
            _ask(FeatureStore(root, {"x": _family().features[0]}), [(e, t) for e in "ABCD" for t in range(0, 80, 3)])
        )
    pd.testing.assert_frame_equal(answers[0], answers[1], check_exact=True)
    frame = pd.DataFrame([r for d in days for r in rows[d]] + late, columns=["entity_key", "event", "ingest", "x"])
    expected = [reference_pit(frame, e, t) for e in "ABCD" for t in range(0, 80, 3)]
    np.testing.assert_array_equal(answers[1]["x"].to_numpy(), np.array(expected, dtype=float))


def test_a_read_cache_holds_what_a_query_read_by_content_hash_and_refuses_other_bytes(tmp_path, s3_root):
    """With a read cache, a bucket query reads local copies named by their SHA-256 (the record, the compacted part
    and the original no record covers; not the covered originals) and answers as without it; a copy is used
    again without a fetch; an object whose bytes no longer hash to its name is refused, naming it."""
    from quant_assets.core.features.compaction import compact
    from quant_assets.core.storage import lake

    days = [dt.date(2024, 1, d) for d in (1, 2, 3)]
    for k, day in enumerate(days):
        rows = [(e, 24 * k + 10 + i, 24 * k + 11 + i, 10.0 * k + i) for i, e in enumerate("AB")]
        _write(s3_root, _family(), rows, day)
    compact(s3_root, min_files=1)
    late = _write(s3_root, _family(), [("B", 35, 60, -1.0)], days[1]).path
    pairs = [(e, t) for e in "ABC" for t in range(0, 80, 3)]
    plain = _ask(FeatureStore(s3_root, {"x": _family().features[0]}), pairs)
    cache = tmp_path / "cache"
    cached = FeatureStore(s3_root, {"x": _family().features[0]}, read_cache=cache)
    pd.testing.assert_frame_equal(_ask(cached, pairs), plain, check_exact=True)
    copies = sorted(p.name for p in cache.iterdir())
    assert len(copies) == 3 and sum(n.endswith(".json") for n in copies) == 1
    assert late.name[len("part-") : -len(".parquet")] + ".parquet" in copies
    for copy in cache.iterdir():
        assert hashlib.sha256(copy.read_bytes()).hexdigest().startswith(copy.name.split(".")[0])
    before = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    pd.testing.assert_frame_equal(_ask(cached, pairs), plain, check_exact=True)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == before
    late.fs.pipe_file(late.path, lake.parquet_bytes(lake.read_parquet(late).slice(0, 0)))  # other bytes, same name
    fresh = FeatureStore(s3_root, {"x": _family().features[0]}, read_cache=tmp_path / "other")
    with pytest.raises(lake.CorruptFile, match=late.name):
        _ask(fresh, pairs)

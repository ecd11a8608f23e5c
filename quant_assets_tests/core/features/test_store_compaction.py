"""Compaction of the feature store: same answers, bit for bit, and nothing written over an existing file."""

import datetime as dt
import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest

from quant_assets.core.features.compaction import (
    COMPACTED,
    compact,
    compact_family,
    complete_months,
    due,
    read_plan,
)
from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import FeatureStoreError, family_dir, write_day
from quant_assets.core.features.store import FeatureStore

ENTITIES = ["A", "B", "C", "D", "E"]
PROV = {"producer": "test", "producer_version": "sha", "run_id": "r1"}
DAYS = [d.date() for d in pd.bdate_range("2024-01-25", "2024-03-08")]  # three months of partitions


def scaled(panel, scale):
    return panel["close"].iloc[-1] * scale


def _family(scale: float) -> FeatureFamily:
    features = tuple(
        FeatureDef(n, "toy", scaled, "toy", ("raw_prices",), 1, pd.Timedelta(0), params={"scale": scale, "n": n})
        for n in ("x", "y")
    )
    return FeatureFamily("toy", "raw_prices", ("close",), features, "toy family")


OLD, NEW = _family(1.0), _family(2.0)  # a version bump: same names, other versions


def _close(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize("UTC") + pd.Timedelta(hours=21)


def _deliver(root, family, day, rng, entities=ENTITIES, late=None):
    rows = pd.DataFrame(
        {
            "entity_key": entities,
            "event_time": _close(day),
            "ingest_time": _close(day) + (pd.Timedelta(minutes=15) if late is None else late),
            "x": rng.standard_normal(len(entities)),
            "y": rng.standard_normal(len(entities)),
        }
    )
    rows.loc[rng.random(len(rows)) < 0.1, "y"] = np.nan
    return write_day(root, family, day, rows, PROV)


def _history(root, seed=7):
    """Both versions over three months; a first delivery a day plus restatements (some days later)."""
    rng = np.random.default_rng(seed)
    for family in (OLD, NEW):
        for k, day in enumerate(DAYS):
            if family is NEW and k < 10:
                continue  # the new version starts later
            _deliver(root, family, day, rng, entities=[e for e in ENTITIES if not (e == "E" and k % 7 == 3)])
            if k % 3 == 0:  # a restatement of two entities, 1 to 6 days later
                late = pd.Timedelta(hours=int(rng.integers(24, 6 * 24)), seconds=int(rng.integers(0, 3600)))
                _deliver(root, family, day, rng, entities=["A", "C"], late=late)


def _more(root, seed=8):
    """After a compaction: restatements of old days (new files in compacted partitions) and a new day."""
    rng = np.random.default_rng(seed)
    for family in (OLD, NEW):
        for day in (DAYS[12], DAYS[20]):
            _deliver(root, family, day, rng, entities=["B", "D"], late=pd.Timedelta(days=30, seconds=5))
        _deliver(root, family, dt.date(2024, 3, 11), rng)


def _queries(seed=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = _close(DAYS[0]) - pd.Timedelta(days=2)
    span = (_close(dt.date(2024, 4, 30)) - start).total_seconds()
    n = 4000
    as_of = start + pd.to_timedelta(np.sort(rng.uniform(0, span, n)).round(), unit="s")
    # exact event and ingest times too, where ties decide
    exact = [_close(d) + pd.Timedelta(minutes=m) for d in DAYS[::4] for m in (0, 15)]
    keys = list(rng.choice(ENTITIES + ["Z"], n)) + ["A"] * len(exact)
    return pd.DataFrame({"entity_key": keys, "as_of": list(as_of) + exact})


FEATURES = ["x", "y", f"x@{OLD.features[0].version}", f"y@{OLD.features[1].version}"]


def _answers(root, since=None) -> dict[str, pd.DataFrame]:
    store = FeatureStore(root, {f.name: f for f in NEW.features})
    latest_at = _close(DAYS[-1]) + pd.Timedelta(days=40)
    return {
        "pit": store.get_point_in_time(_queries(), FEATURES, since=since),
        "latest": store.get_latest(ENTITIES + ["Z"], FEATURES, latest_at, since=since),
        "latest_early": store.get_latest(ENTITIES, FEATURES, _close(DAYS[15]) + pd.Timedelta(hours=2), since=since),
    }


def _assert_identical(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        pd.testing.assert_frame_equal(x, y, check_exact=True)
        assert list(x.dtypes) == list(y.dtypes)
        for column in x.columns:
            u, v = (_raw(s[column]) for s in (x, y))
            if u.dtype.kind in "fM":  # the bits, NaN payloads and all; event times as int64 microseconds
                assert u.dtype == v.dtype and u.tobytes() == v.tobytes(), (name, column)
            else:
                assert u.tolist() == v.tolist(), (name, column)
        assert any(c.startswith("event_time_") for c in x.columns)


def _raw(s: pd.Series) -> np.ndarray:
    return s.dt.tz_convert(None).to_numpy() if isinstance(s.dtype, pd.DatetimeTZDtype) else s.to_numpy()


def _tree(root) -> dict[str, tuple]:
    """Every file under ``root``: (inode, size, mtime_ns, SHA-256)."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            st = os.stat(p)
            with open(p, "rb") as fh:
                out[p] = (st.st_ino, st.st_size, st.st_mtime_ns, hashlib.sha256(fh.read()).hexdigest())
    return out


@pytest.fixture
def twin_stores(tmp_path):
    """Two stores with the same files; the second is compacted."""
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    for root in (plain, packed):
        _history(root)
    return plain, packed


def test_a_compacted_store_answers_bit_for_bit_as_the_uncompacted_one(twin_stores):
    plain, packed = twin_stores
    before = _answers(plain)
    assert before["pit"][FEATURES].notna().any().all() and before["pit"]["x"].isna().any()
    done = compact(packed, min_files=1)
    assert {c.period for c in done} == {"2024-01", "2024-02", "2024-03"} and all(c.created for c in done)
    assert len(done) == 5  # the old version over three months, the new one (from February) over two
    for base in (family_dir(packed, OLD), family_dir(packed, NEW)):
        plan = read_plan(base)
        assert plan and all(p.parent.name == COMPACTED for p in plan)  # the originals are all covered
    _assert_identical(_answers(packed), before)
    _assert_identical(_answers(packed), _answers(plain))
    since = DAYS[22]  # inside February: February's compaction is not used, March's is
    assert any(p.parent.name == COMPACTED for p in read_plan(family_dir(packed, NEW), since))
    _assert_identical(_answers(packed, since), _answers(plain, since))
    # the long contract view reads the originals, the same either way
    pd.testing.assert_frame_equal(FeatureStore(packed, {}).feature_events(), FeatureStore(plain, {}).feature_events())


def test_files_written_after_a_compaction_are_read_and_a_recompaction_supersedes(twin_stores):
    plain, packed = twin_stores
    compact(packed, min_files=1)
    for root in (plain, packed):
        _more(root)
    base = family_dir(packed, NEW)
    plan = read_plan(base)
    newer = [p for p in plan if p.parent.name != COMPACTED]
    assert len(newer) == 3 and all(p.parent.name.startswith("date=") for p in newer)
    _assert_identical(_answers(packed), _answers(plain))

    again = compact(packed, min_files=1)  # February (2 new files) and March (1) again, January untouched
    assert sorted(c.period for c in again) == ["2024-02", "2024-02", "2024-03", "2024-03"]
    plan = read_plan(base)
    assert all(p.parent.name == COMPACTED for p in plan)
    records = [json.loads(p.read_text()) for p in (base / COMPACTED).glob("*.json")]
    assert len(records) == 4  # the new version's superseded February and March records stay, no longer read
    used = {p.name for p in plan}
    assert len(used) == 2 and sum(r["parts"][0] in used for r in records) == 2
    _assert_identical(_answers(packed), _answers(plain))
    _assert_identical(_answers(packed, DAYS[22]), _answers(plain, DAYS[22]))
    assert compact(packed, min_files=1) == []  # nothing new: nothing written


def test_compaction_writes_nothing_over_an_existing_file(twin_stores):
    _, packed = twin_stores
    before = _tree(packed)
    done = compact(packed, min_files=1)
    after = _tree(packed)
    assert {p: after[p] for p in before} == before  # every earlier file: same inode, size, mtime, bytes
    added = sorted(set(after) - set(before))
    assert added and all(f"/{COMPACTED}/" in p for p in added)
    assert len(added) == 2 * len(done)  # one part and one record each, no temp files left behind
    assert compact(packed, min_files=1) == [] and _tree(packed) == after

    # A file squatting on the name a new part would take is left alone, and the compaction refuses.
    _more(packed)
    base = family_dir(packed, NEW)
    squat = base / COMPACTED / _march_part_name(base)
    squat.write_bytes(b"junk")
    squatted = _tree(packed)
    with pytest.raises(FeatureStoreError, match="does not read back"):
        compact_family(base, min_files=1)
    assert squat.read_bytes() == b"junk"
    assert {p: _tree(packed)[p] for p in squatted} == squatted


def _march_part_name(base) -> str:
    """The name of the part March's re-compaction writes: the digest of the original files it holds."""
    files = sorted(p.relative_to(base).as_posix() for p in base.glob("date=2024-03-*/part-*.parquet"))
    return f"part-{hashlib.sha256(chr(10).join(files).encode()).hexdigest()[:32]}.parquet"


def test_an_incomplete_compaction_is_ignored(twin_stores):
    plain, packed = twin_stores
    done = compact(packed, min_files=1)
    record = json.loads(done[0].record.read_text())
    (done[0].record.parent / record["parts"][0]).unlink()  # as if the part had been lost
    plan = read_plan(done[0].record.parent.parent)
    assert any(p.parent.name.startswith("date=") for p in plan)
    _assert_identical(_answers(packed), _answers(plain))


def test_a_record_whose_original_is_missing_is_not_used(twin_stores):
    """The compacted parts are read before the originals' listing is in; when it shows a covered original missing
    (a damaged or half-copied lake) the plan is chosen again: that month is read from its originals."""
    _, packed = twin_stores
    compact(packed, min_files=1)
    base = family_dir(packed, OLD)
    assert all(p.parent.name == COMPACTED for p in read_plan(base))
    lost = sorted(base.glob("date=2024-02-*/part-*.parquet"))[3]
    lost.unlink()
    plan = read_plan(base)
    february = sorted(p for p in base.glob("date=2024-02-*/part-*.parquet"))
    assert [p for p in plan if p.parent.name != COMPACTED] == february and lost not in plan
    assert sum(p.parent.name == COMPACTED for p in plan) == 2  # January's and March's parts


def test_min_files_and_unknown_periods(twin_stores):
    _, packed = twin_stores
    assert compact(packed, min_files=10_000) == []
    with pytest.raises(FeatureStoreError, match="unknown compaction period"):
        compact(packed, period="week")
    yearly = compact(packed, period="year", min_files=1)
    assert [c.period for c in yearly] == ["2024", "2024"]


def test_compacting_named_months_reads_those_months_only(twin_stores):
    plain, packed = twin_stores
    assert due(packed, ["2023-12", "2024-02", "2024-03"], min_files=1) == ["2024-02", "2024-03"]
    assert due(packed, ["2024-03"], min_files=10_000) == []
    done = compact(packed, min_files=1, months=["2024-02"])
    assert sorted(c.period for c in done) == ["2024-02", "2024-02"]  # both versions
    whole = compact(plain, min_files=1)  # content-addressed: the same records a whole-store pass writes
    assert {c.record.name for c in done} == {c.record.name for c in whole if c.period == "2024-02"}
    assert due(packed, ["2024-02"], min_files=1) == []
    _assert_identical(_answers(packed), _answers(plain))

    # A damaged January record: a whole-store pass reads it and refuses; a pass over March never reads it.
    (family_dir(packed, OLD) / COMPACTED / "2024-01-damaged.json").write_text("{}")
    with pytest.raises(FeatureStoreError, match="2024-01-damaged.json"):
        compact(packed, min_files=1)
    assert [c.period for c in compact(packed, min_files=1, months=["2024-03"])] == ["2024-03", "2024-03"]


def test_complete_months_are_those_ended_before_today():
    days = [dt.date(2024, 1, 31), "2024-02-29", dt.date(2024, 3, 1), "2023-12"]
    assert complete_months(days, dt.date(2024, 3, 1)) == ["2023-12", "2024-01", "2024-02"]
    assert complete_months(days, dt.date(2024, 2, 29)) == ["2023-12", "2024-01"]
    assert complete_months([], dt.date(2024, 2, 29)) == []

"""Receipts of scored days: scoring days whose inputs have not changed again reads, predicts and writes nothing and
gives the first run's figures; a late feature file rescores exactly the days whose window holds it, a lost part the
day it held; another model or universe scores again; receipts are no predictions to any reader, and work the same
on an object store.

On real Parquet: a copy of ``scored_lake``'s features (conftest), scored with its model through ``score_days``.
"""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from quant_assets.core import audit, sessions
from quant_assets.core.features import staleness
from quant_assets.core.features.files import KEY
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.research import scoring
from quant_assets.core.storage import fs, lake, receipt, verify

NODE = "model:equity_lgbm:v1"
DAYS = sessions.sessions_between("2024-06-03", "2024-06-12")  # 8 sessions


@pytest.fixture
def scored(scored_lake, tmp_path):
    """A lake of scored_lake's features alone (nothing scored yet), its model and universe."""
    source, snap, model = scored_lake
    root = tmp_path / "lake"
    shutil.copytree(source / "features", root / "features")
    return root, model, snap.manifest["universe"]


def _score(root, model, universe, days=DAYS, node=NODE) -> list[scoring.DayScores]:
    return scoring.score_days(root, FeatureStore(root, ALL_FEATURES), model, node, days, universe)


def _files(base) -> dict[str, bytes]:
    return {fs.relative(p, base): p.read_bytes() for p in fs.all_files(base)}


def _outcome(scores: list[scoring.DayScores]) -> list[tuple]:
    """What a day's scoring gave, the run's own writes aside."""
    return [(s.day, s.rows, s.gaps, s.head.astype(str).to_dict("split")) for s in scores]


def test_unchanged_inputs_are_taken_from_their_receipts_without_reading_a_feature(scored):
    root, model, universe = scored
    first = _score(root, model, universe)
    stored = _files(root / "predictions")
    assert [s.unchanged for s in first] == [False] * len(DAYS) and all(s.written == s.rows == 40 for s in first)
    assert sum(n.split("/")[1].startswith(receipt.PREFIX) for n in stored) == len(DAYS)
    for part in fs.listing(root / "features", "*/*/date=*/part-*.parquet"):
        part.write_bytes(b"spoilt")  # any read of a feature file now fails; their names, the inputs, are the same

    again = _score(root, model, universe)

    assert [s.unchanged for s in again] == [True] * len(DAYS) and [s.written for s in again] == [0] * len(DAYS)
    assert _outcome(again) == _outcome(first)
    assert _files(root / "predictions") == stored  # nothing written, not even a receipt
    with pytest.raises(duckdb.Error):  # scoring a day for real would have read them
        _score(root, model, universe, DAYS[:1], "model:equity_lgbm:v2")


def test_a_late_feature_file_rescores_exactly_the_days_whose_window_holds_it(scored):
    root, model, universe = scored
    first = _score(root, model, universe)
    late = DAYS[3]
    base = next(d for d in FeatureStore(root, ALL_FEATURES).directories(model.features) if d.parent.name == "price")
    (part,) = lake.partition_files(base / f"date={late}")
    table = lake.read_part(part)
    restated = table.slice(0, 1).to_pandas()  # one name's features restated a microsecond after they were stored
    restated["ingest_time"] += pd.Timedelta(microseconds=1)
    values = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    restated[values] = -restated[values]
    lake.write_part(part.parent, lake.canonical_table(restated, KEY, table.schema))

    again = _score(root, model, universe)

    holding = [d for d in DAYS if staleness.earliest_partition(d) <= late <= d]
    assert holding == DAYS[3:]  # the window reaches five sessions back
    assert [s.day for s in again if not s.unchanged] == holding
    # prices are read from the session before: only the next day's score of that name changes, as a restatement
    assert {s.day: s.written for s in again if s.written} == {sessions.next_session(late): 1}
    assert [s.rows for s in again] == [s.rows for s in first]
    assert all(s.unchanged for s in _score(root, model, universe))


def test_a_lost_part_is_scored_and_written_again_and_another_models_part_costs_one_scoring(scored):
    root, model, universe = scored
    days = DAYS[:3]
    first = _score(root, model, universe, days)
    (lost,) = lake.partition_files(lake.partition_dir(root, scoring.DATASET, days[1]))
    lost.unlink()
    _score(root, model, universe, days[2:], "model:equity_lgbm:v2")  # another model's part beside the third day's

    again = _score(root, model, universe, days)

    assert [(s.unchanged, s.written) for s in again] == [(True, 0), (False, 40), (False, 0)]
    assert [s.rows for s in again] == [s.rows for s in first] and lost.exists()  # the same rows, the same part
    assert all(s.unchanged for s in _score(root, model, universe, days))


def test_another_model_or_universe_scores_again(scored):
    root, model, universe = scored
    days = DAYS[:3]
    _score(root, model, universe, days)

    other = _score(root, model, universe, days, "model:equity_lgbm:v2")
    fewer = _score(root, model, universe[:-1], days)

    assert not any(s.unchanged for s in other) and all(s.written == s.rows == 40 for s in other)
    assert not any(s.unchanged for s in fewer) and [(s.rows, s.written) for s in fewer] == [(39, 0)] * len(days)
    assert all(s.unchanged for s in _score(root, model, universe, days, "model:equity_lgbm:v2"))


def test_receipts_are_no_predictions_to_any_reader(scored):
    root, model, universe = scored
    scores = _score(root, model, universe)

    assert all(f.name.startswith(lake.PART_PREFIX) for f in lake.dataset_files(root, scoring.DATASET))
    assert scoring.scored_days(root, dt.date(2024, 5, 31)) == DAYS
    assert {d: len(f) for d, f in scoring.stored(root, NODE, DAYS).items()} == {s.day: s.rows for s in scores}
    assert scoring.models_scored(root, DAYS[0], DAYS[-1], "equity_lgbm") == [NODE]
    frames = lake.read_partitions(root, scoring.DATASET, DAYS)
    assert {d: (len(f), set(f["model"])) for d, f in frames.items()} == {d: (40, {NODE}) for d in DAYS}
    kinds = [(k, p) for k, p in audit.stored_files(root) if fs.relative(p, root).startswith("predictions/")]
    report = verify.verify(kinds, audit.check, audit.ERRORS)
    assert not report.problems and dict(report.checked) == {"part": len(DAYS), "predictions_receipt": len(DAYS)}

    (kept,) = fs.listing(root / "predictions", f"date={DAYS[2]}/{receipt.PREFIX}*.json")
    kept.write_bytes(b"{not json")
    with pytest.raises(lake.CorruptFile, match=kept.name):
        _score(root, model, universe)


def test_receipts_on_an_object_store(scored, s3_root, tmp_path):
    root, model, universe = scored
    days = DAYS[:2]
    months = ("date=2024-05", "date=2024-06")  # the windows' partitions and, beside them, the manifests
    local = tmp_path / "staged"
    keep = lambda d, names: [n for n in names if n.startswith("date=") and not n.startswith(months)]  # noqa: E731
    shutil.copytree(root / "features", local, ignore=keep)
    s3_root.fs.put(f"{local}/", f"{s3_root.path}/features/", recursive=True)

    first = _score(s3_root, model, universe, days)
    again = _score(s3_root, model, universe, days)

    assert [s.written for s in first] == [40, 40] and not any(s.unchanged for s in first)
    assert all(s.unchanged for s in again) and _outcome(again) == _outcome(first)
    found = fs.names(s3_root / "predictions", f"date=*/{receipt.PREFIX}*.json")
    assert [n.split("/")[0] for n in found] == [f"date={d}" for d in days]


def test_predictions_carry_the_run_that_scored_them_another_run_adds_none_and_older_parts_still_read(scored):
    root, model, universe = scored
    days, run = DAYS[:3], {"producer": "predictions", "producer_version": "sha-one", "run_id": "run-1"}
    store = FeatureStore(root, ALL_FEATURES)
    first = scoring.score_days(root, store, model, NODE, days, universe, run)
    stored = _files(root / "predictions")
    frames = lake.read_partitions(root, scoring.DATASET, days)
    assert {tuple(r) for f in frames.values() for r in f[lake.PROVENANCE].itertuples(index=False)} == {
        tuple(run.values())
    }
    for kept in fs.listing(root / "predictions", f"date=*/{receipt.PREFIX}*.json"):
        kept.unlink()  # no receipt: every day is scored again, by another run under another code version

    other = {**run, "run_id": "run-2", "producer_version": "sha-two"}
    again = scoring.score_days(root, store, model, NODE, days, universe, other)

    assert [s.written for s in again] == [0] * 3 and _outcome(again) == _outcome(first)
    assert _files(root / "predictions") == stored  # the receipts too: they name no run
    old = lake.partition_dir(root, scoring.DATASET, days[0])  # the first day as stored before rows had a producer
    (part,) = lake.partition_files(old)
    lake.write_part(old, lake.read_part(part).drop_columns(lake.PROVENANCE))
    part.unlink()
    for reader in (scoring.stored(root, NODE, days), scoring.stored(root, NODE, days[:1])):
        assert {d: len(f) for d, f in reader.items()} == {s.day: s.rows for s in first if s.day in reader}
    assert scoring.models_scored(root, days[0], days[-1], "equity_lgbm") == [NODE]
    kinds = [(k, p) for k, p in audit.stored_files(root) if fs.relative(p, root).startswith("predictions/")]
    assert not verify.verify(kinds, audit.check, audit.ERRORS).problems

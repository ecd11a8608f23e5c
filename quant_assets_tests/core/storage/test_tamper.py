"""Every kind of stored file, damaged or edited: the read that uses it, or ``verify``, refuses it by name.

A small synthetic lake (raw data, quarantine, both feature families, a compacted month, predictions, a
snapshot and a model's files) is copied per test and one file is changed: a flipped bit (bit rot), or a
valid file with other values under the old name (an edit). Reads that verify (raw, quarantine and
prediction partitions, manifests, compaction records, snapshots, a model's files) raise an error naming
the file; files only DuckDB reads (feature parts, compacted parts) are caught by ``verify``.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quant_assets.core import sessions
from quant_assets.core.audit import verify_lake
from quant_assets.core.features.backfill import backfill
from quant_assets.core.features.compaction import compact
from quant_assets.core.features.files import FeatureStoreError
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import ingest_prices
from quant_assets.core.ingest.sources import SyntheticMarket, YahooCsvPrices
from quant_assets.core.registry import artifacts, models
from quant_assets.core.research import scoring, snapshots
from quant_assets.core.research.training import Ensemble, TrainConfig
from quant_assets.core.storage import fs, lake

FIRST, LAST = "2024-02-01", "2024-03-28"
DAY = dt.date(2024, 3, 5)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, artifacts.ModelFiles]:
    root = tmp_path_factory.mktemp("tamper") / "lake"
    market = SyntheticMarket(seed=9, n_tickers=6)
    backfill(root, market, market, FIRST, LAST)
    csv = root.parent / "csv"
    csv.mkdir()
    (csv / "ZZZ.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2024-03-05,1,2,3\n")
    ingest_prices(YahooCsvPrices(csv), DAY, root)  # one quarantined line
    compact(root, min_files=1)
    store = FeatureStore(root, ALL_FEATURES)
    data, manifest = snapshots.build(root, store, "2024-03-01", "2024-03-20", "2024-03-21", ["ret_1", "sentiment_1"])
    snapshots.write(root, data, manifest)
    model = Ensemble.fit(data, ["ret_1", "sentiment_1"], TrainConfig(num_boost_round=3, seeds=(1,)))
    oos = data[["date", "entity_key", "label"]].assign(prediction=model.predict(data))
    files = artifacts.save_model_files(root, "m", model.to_bytes(), oos)
    scoring.write_day(root, DAY, scoring.score_day(store, model, "model:m:v1", DAY, manifest["universe"]))
    assert verify_lake(root).ok
    return root, files


@pytest.fixture
def lake_copy(pristine, tmp_path) -> Path:
    root = tmp_path / "lake"
    shutil.copytree(pristine[0], root)
    return root


def flip(path: Path, at: float = 0.4) -> None:
    blob = bytearray(path.read_bytes())
    blob[int(len(blob) * at)] ^= 0x04
    path.write_bytes(bytes(blob))


def rewrite(path: Path, change) -> None:
    """A valid Parquet file with changed values, under the old name (an edit, not bit rot)."""
    frame = change(pq.read_table(path).to_pandas())
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def one(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    assert found, pattern
    return found[0]


PARTITIONS = {
    "raw_prices": f"raw_prices/date={DAY}/part-*.parquet",
    "quarantine/raw_prices": f"quarantine/raw_prices/date={DAY}/part-*.parquet",
    "predictions": f"predictions/date={DAY}/part-*.parquet",
}


@pytest.mark.parametrize("dataset", PARTITIONS)
@pytest.mark.parametrize("damage", ["bit_flip", "edited_values"])
def test_a_damaged_partition_file_is_refused_by_name_on_read(lake_copy, dataset, damage):
    victim = one(lake_copy, PARTITIONS[dataset])
    if damage == "bit_flip":
        flip(victim)
    else:
        column = {"raw_prices": "close", "quarantine/raw_prices": "reason", "predictions": "prediction"}[dataset]
        rewrite(victim, lambda f: f.assign(**{column: f[column] * 2 if column != "reason" else "edited"}))
    with pytest.raises(lake.CorruptFile, match=str(victim)):
        lake.read_partition(lake_copy, dataset, DAY)
    assert [p.path for p in verify_lake(lake_copy).problems] == [victim]


def test_every_single_byte_flip_in_a_compacted_part_is_found_by_verify(lake_copy):
    part = one(lake_copy, "features/price/fv=*/_compacted/part-*.parquet")
    pristine = part.read_bytes()
    for k in range(40):
        flip(part, at=(k + 0.5) / 40)
        problems = verify_lake(lake_copy).problems
        assert [p.path for p in problems] == [part], k
        part.write_bytes(pristine)
    assert verify_lake(lake_copy).ok


def test_a_damaged_feature_part_is_found_by_verify(lake_copy):
    victim = one(lake_copy, "features/alt/fv=*/date=2024-03-2*/part-*.parquet")  # not compacted (< a month)
    rewrite(victim, lambda f: f.assign(sentiment_1=-f["sentiment_1"]))
    assert [(p.kind, p.path) for p in verify_lake(lake_copy).problems] == [("part", victim)]


@pytest.mark.parametrize("damage", ["not_json", "other_versions"])
def test_a_damaged_feature_manifest_fails_every_query_naming_it(lake_copy, damage):
    manifest = one(lake_copy, "features/price/fv=*/_manifest.json")
    if damage == "not_json":
        manifest.write_text(manifest.read_text()[:-5])
    else:
        manifest.write_text(manifest.read_text().replace('"ret_1": "', '"ret_1": "0'))
    store = FeatureStore(lake_copy, ALL_FEATURES)
    with pytest.raises(FeatureStoreError, match=str(manifest)):
        store.get_latest(["SYN000"], ["ret_5"], sessions.decision_time("2024-03-06"))
    assert [p.path for p in verify_lake(lake_copy).problems] == [manifest]


def test_an_edited_compaction_record_fails_queries_naming_it(lake_copy):
    record = one(lake_copy, "features/price/fv=*/_compacted/*.json")
    record.write_text(record.read_text().replace('"rows": ', '"rows": 1'))
    with pytest.raises(FeatureStoreError, match=str(record)):
        FeatureStore(lake_copy, ALL_FEATURES).get_latest(["SYN000"], ["ret_5"], sessions.decision_time("2024-03-06"))
    assert str(record) in verify_lake(lake_copy).problems[0].error


def test_a_damaged_snapshot_is_refused(lake_copy):
    data = one(lake_copy, "snapshots/*/data.parquet")
    flip(data)
    with pytest.raises(snapshots.SnapshotTampered, match=str(data.parent)):
        snapshots.read(data.parent)
    assert [p.kind for p in verify_lake(lake_copy).problems] == ["snapshot"]


def test_a_models_out_of_sample_predictions_are_covered_by_its_recorded_hash(pg_db, pristine, lake_copy):
    files = pristine[1]
    moved = artifacts.ModelFiles(
        *(
            artifacts.StoredFile(lake_copy / f.path.relative_to(pristine[0]), f.sha256, f.size)
            for f in files.__dict__.values()
        )
    )
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.1]})
    from quant_assets.core.storage import pg

    with pg.connect(pg_db) as conn:
        ref = models.register_model(conn, "m", "S", {}, {}, "c", ("2024-03-01", "2024-03-20"), moved, metrics)
        assert (
            artifacts.load_oos(conn, ref)["prediction"].tolist()
            == pd.read_parquet(moved.oos.path)["prediction"].tolist()
        )
        rewrite(moved.oos.path, lambda f: f.assign(prediction=-f["prediction"]))  # signs flipped, a valid file
        with pytest.raises(artifacts.ArtifactTampered, match=str(moved.oos.path)):
            artifacts.load_oos(conn, ref)
        bad = [(node, path) for node, path, error in artifacts.verify_models(conn) if error]
    assert bad == [(ref.node, moved.oos.path)]
    assert [p.path for p in verify_lake(lake_copy).problems] == [moved.oos.path]


def test_a_model_artifact_is_checked_against_its_name(lake_copy, pristine):
    artifact = lake_copy / pristine[1].artifact.path.relative_to(pristine[0])
    artifact.write_bytes(artifact.read_bytes().replace(b'"ret_1"', b'"ret_5"', 1))
    assert [(p.kind, p.path) for p in verify_lake(lake_copy).problems] == [("model_artifact", artifact)]


# ----------------------------------------------------------------------------- the same on an object store


@pytest.fixture
def s3_copy(pristine, s3_root):
    """The pristine lake uploaded to a new bucket of the S3 server."""
    s3_root.fs.put(f"{pristine[0]}/", f"{s3_root.path}/", recursive=True)
    return s3_root


def _s3_flip(path, at: float = 0.4) -> None:
    blob = bytearray(path.read_bytes())
    blob[int(len(blob) * at)] ^= 0x04
    path.fs.pipe_file(path.path, bytes(blob))  # an overwrite: what a damaged or edited object looks like


S3_VICTIMS = {
    "snapshot": "snapshots/*/data.parquet",
    "model_artifact": "models/m/*.json",
    "compacted_part": "features/price/fv=*/_compacted/part-*.parquet",
}


@pytest.mark.parametrize("kind", S3_VICTIMS)
def test_a_tampered_object_on_the_object_store_is_refused_by_name(s3_copy, kind):
    """A snapshot, a model artifact or a compacted part changed in the bucket: verify names it (and the snapshot's
    own read refuses it), exactly as on a local disk."""
    assert verify_lake(s3_copy).ok
    victims = fs.listing(s3_copy, S3_VICTIMS[kind])[:1]
    assert victims
    _s3_flip(victims[0])
    problems = verify_lake(s3_copy).problems
    assert [(p.kind, str(p.path)) for p in problems] == [(kind, str(victims[0]))]
    if kind == "snapshot":
        with pytest.raises(snapshots.SnapshotTampered, match=str(victims[0].parent)):
            snapshots.read(victims[0].parent)

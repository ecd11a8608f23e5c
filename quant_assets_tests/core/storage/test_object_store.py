"""The storage primitives on both kinds of root: a local directory and a real S3-compatible server.

``put_once`` creates an object once (the same bytes again: nothing; other bytes: refused), ``put_record``
refuses a record naming a missing object, ``listing`` lists in name order, and the lake's own writers and
readers (parts, partitions) behave the same on either root.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from quant_assets.core.storage import fs, lake


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return fs.location(tmp_path / "lake")
    return request.getfixturevalue("s3_root")


def test_put_once_creates_once_and_refuses_other_bytes(root):
    path = root / "a" / "object.bin"
    assert fs.put_once(path, b"first") is True
    assert fs.put_once(path, b"first") is False  # the same bytes again: harmless, nothing written
    with pytest.raises(fs.ConflictingWrite, match="object.bin: exists with other content"):
        fs.put_once(path, b"second")
    assert path.read_bytes() == b"first"


def test_a_record_naming_a_missing_object_is_not_written(root):
    part = root / "d" / "part.bin"
    record = root / "d" / "record.json"
    with pytest.raises(fs.MissingParts, match="names 1 missing object"):
        fs.put_record(record, b"{}", [part])
    assert not record.exists()
    fs.put_once(part, b"x")
    assert fs.put_record(record, b"{}", [part]) is True
    assert record.read_bytes() == b"{}"


def test_listing_is_in_name_order_and_matches_the_glob(root):
    for name in ["date=2024-01-03/part-b.parquet", "date=2024-01-02/part-c.parquet", "date=2024-01-02/x.json"]:
        fs.put_once(root / "ds" / name, name.encode())
    found = [fs.relative(p, root / "ds") for p in fs.listing(root / "ds", "date=*/part-*.parquet")]
    assert found == ["date=2024-01-02/part-c.parquet", "date=2024-01-03/part-b.parquet"]
    month = [fs.relative(p, root / "ds") for p in fs.listing(root / "ds", "date=2024-01-02*/part-*.parquet")]
    assert month == ["date=2024-01-02/part-c.parquet"]  # a literal head lists only the keys starting so
    assert fs.listing(root / "nothing", "*") == []


def test_parts_round_trip_and_a_tampered_part_is_refused(root):
    table = pa.table({"ticker": ["A", "B"], "value": [1.0, 2.0]})
    path = lake.write_part(lake.partition_dir(root, "ds", dt.date(2024, 1, 2)), table)
    assert lake.write_part(path.parent, table) == path  # content-addressed: the same rows, the same object
    assert lake.read_part(path).equals(table)
    frame = lake.read_partition(root, "ds", dt.date(2024, 1, 2))
    pd.testing.assert_frame_equal(frame, table.to_pandas())
    other = lake.parquet_bytes(pa.table({"ticker": ["A"], "value": [9.0]}))
    path.fs.pipe_file(path.path, other) if not fs.is_local(path) else path.write_bytes(other)
    with pytest.raises(lake.CorruptFile, match="does not hash to its name"):
        lake.read_part(path)


def test_an_unknown_scheme_is_refused_naming_it():
    with pytest.raises(ValueError, match="no filesystem for 'nosuch://'"):
        fs.location("nosuch://bucket/lake")


def test_a_snapshot_missing_from_the_lake_is_named_not_found(root):
    from quant_assets.core.research import snapshots

    with pytest.raises(snapshots.SnapshotError, match="not found: this lake does not hold it"):
        snapshots.read(root / "snapshots" / ("0" * 64))


def test_a_whole_directory_of_a_bucket_is_listed_by_pyarrows_client_with_the_same_answer(s3_root):
    """Listing a whole directory goes through pyarrow's S3 client (a tenth of botocore's CPU per key); it must
    find exactly what s3fs's listing finds, through the same endpoint and credentials, and nothing for an
    absent directory."""
    names = ["date=2024-01-02/part-c.parquet", "date=2024-01-03/part-b.parquet", "_compacted/2024-01-x.json"]
    for name in names:
        fs.put_once(s3_root / "ds" / name, b"x")
    base = s3_root / "ds"
    by_arrow = fs._arrow_find(base.fs, base.path)
    by_s3fs = sorted(base.fs.find(base.path))
    assert by_arrow == by_s3fs == sorted(f"{base.path}/{n}" for n in names)
    assert fs.names(base, "date=*/part-*.parquet") == sorted(names[:2])
    assert fs._arrow_find(base.fs, f"{s3_root.path}/absent") == []


def test_a_root_in_a_bucket_that_does_not_exist_is_refused_naming_it(s3_root, tmp_path):
    fs.require_bucket(s3_root)  # the fixture's bucket exists
    fs.require_bucket(fs.location(tmp_path / "new"))  # a local root needs nothing
    missing = fs.location("s3://no-such-bucket-here/lake")
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket-here' does not exist at http://127.0.0.1"):
        fs.require_bucket(missing)

"""Compaction of a family version's many small daily files, and the plan of which files a query reads.

Each daily partition holds a file per delivery, so a long history is thousands of small files, and a
scan pays a fixed CPU cost per file whatever its size (benchmarks/RESULTS.md). ``compact`` (an explicit operation)
writes, beside the originals, one content-addressed file per calendar month holding exactly the rows of
that month's original files, then a record naming the originals it covers (a new file, written last;
nothing is rewritten or deleted):

    <family version dir>/_compacted/part-<sha>.parquet        same schema as the originals
    <family version dir>/_compacted/<YYYY-MM>-<sha>.json      {"period", "covers": [original paths], "parts", "rows"}

A reader (``read_plan``) takes the records whose covered originals and parts all exist, the largest
first, skipping any that overlaps one already taken (a later compaction of a month covers a superset of
an earlier one and so supersedes it), and reads their parts plus every original file no taken record
covers (files written after the compaction, such as restatements of old days). The rows read are the
same set either way, and the answer depends only on that set (keys are unique), so compacted and
uncompacted stores answer identically. ``feature_events`` and the other audit readers keep reading the
originals, which stay the source of truth.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa

from quant_assets.core.features.files import FeatureStoreError, day_files, family_dirs
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.equality import same_rows
from quant_assets.core.storage.fs import Location

COMPACTED = "_compacted"
PERIODS = {"month": 7, "year": 4}  # a period is this long a prefix of the partition date


@dataclass(frozen=True)
class Compaction:
    """One written (or already present) compaction record."""

    record: Location
    period: str
    files: int
    rows: int
    created: bool


def read_record(path: Location) -> dict:
    """A compaction record, refused unless its text hashes to its name (``<period>-<sha>.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
        record = json.loads(text)
        covers, parts = list(record["covers"]), list(record["parts"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FeatureStoreError(f"{path}: unreadable compaction record ({type(exc).__name__}: {exc})") from exc
    if not path.stem.endswith(f"-{_digest([text])[:32]}"):
        raise FeatureStoreError(f"{path}: compaction record does not match its name (edited or damaged)")
    return {**record, "covers": covers, "parts": parts, "name": path.name}


def record_paths(base: Location) -> list[Location]:
    """The compaction records of a family version directory (not the temporary files of a killed writer)."""
    return fs.listing(base / COMPACTED, "[!.]*.json")


def _compactions(base: Location, present: set[str]) -> list[dict]:
    """The usable compaction records, chosen without overlap: largest first (a superset supersedes).

    A record is usable when every original it covers is among ``present`` (relative paths) and every part
    it names exists (a compaction killed before its record was written left a part and no record). A
    record that does not match its name is refused with an error naming it.
    """
    records = []
    for path in record_paths(base):
        record = read_record(path)
        covers, parts = record["covers"], record["parts"]
        if covers and set(covers) <= present and all((base / COMPACTED / p).is_file() for p in parts):
            records.append(record)
    chosen, taken = [], set()
    for record in sorted(records, key=lambda r: (-len(r["covers"]), r["name"])):
        if taken.isdisjoint(record["covers"]):
            chosen.append(record)
            taken.update(record["covers"])
    return sorted(chosen, key=lambda r: (r["period"], r["name"]))


def read_plan(base: Location, since: dt.date | None = None, until: dt.date | None = None) -> list[Location]:
    """The files a query of one family version reads: compacted parts plus the originals they do not cover.

    With ``since`` / ``until``, only partitions in that window count; a compaction is used only when every
    file it covers is in the window (it holds whole months, and older rows must not come back into the answer).
    """
    originals = [
        p
        for p in day_files(base)
        if (since is None or p.parent.name[5:] >= since.isoformat())
        and (until is None or p.parent.name[5:] <= until.isoformat())
    ]
    relative = {fs.relative(p, base): p for p in originals}
    records = _compactions(base, set(relative))
    covered = {c for r in records for c in r["covers"]}
    parts = [base / COMPACTED / p for r in records for p in r["parts"]]
    return parts + [p for rel, p in relative.items() if rel not in covered]


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _write_compacted(table: pa.Table, path: Location) -> bool:
    """Uncompressed, dictionary encoding for the strings only: the compacted set exists to be read fast.

    Uncompressed reads cost less CPU than zstd (the originals' codec) for about 14% more disk (figures in
    benchmarks/RESULTS.md); float features do not repeat, so dictionary pages for them only cost time.
    """
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    return lake.write_parquet(table, path, compression="none", use_dictionary=strings)


def compact_family(base: Location, period: str = "month", min_files: int = 8) -> list[Compaction]:
    """Compact one family version directory: per period, one file of all its original rows plus a record.

    A period is (re)compacted when at least ``min_files`` of its original files are not covered by the
    records a reader would use; the new record covers all of the period's originals, so it supersedes the
    earlier one. Originals, earlier parts and records stay as they are (superseded ones are simply no
    longer read). The part is content-addressed and checked as it reads back (row count and digest)
    before the record is written; re-running on unchanged files writes nothing.
    """
    if period not in PERIODS:
        raise FeatureStoreError(f"unknown compaction period {period!r}; one of {sorted(PERIODS)}")
    relative = [fs.relative(p, base) for p in day_files(base)]
    covered = {c for r in _compactions(base, set(relative)) for c in r["covers"]}
    by_period: dict[str, list[str]] = defaultdict(list)
    for rel in relative:
        by_period[rel[5 : 5 + PERIODS[period]]].append(rel)
    out = []
    for key, files in sorted(by_period.items()):
        if sum(f not in covered for f in files) >= max(1, min_files):
            out.append(_compact_period(base, key, files))
    return out


def _compact_period(base: Location, key: str, files: list[str]) -> Compaction:
    """One period's part (checked as it reads back) and then its record, which names the part's SHA-256."""
    table = pa.concat_tables(lake.read_parts([base / f for f in files]), promote_options="default")
    # named by the originals it holds, themselves content-addressed: the same files, the same name
    part = f"{lake.PART_PREFIX}{_digest(files)[:32]}.parquet"
    part_path = base / COMPACTED / part
    try:
        _write_compacted(table, part_path)
        same = same_rows(lake.read_parquet(part_path), table)
    except (lake.CorruptFile, fs.ConflictingWrite):  # another file holds the name: refused, left alone
        same = False
    if not same:
        raise FeatureStoreError(
            f"compacted {part_path} does not read back as the rows of {key}: delete it and compact again"
        )
    body = {"period": key, "covers": files, "parts": [part], "rows": table.num_rows}
    body["sha256"] = {part: lake.file_sha256(part_path)}
    text = json.dumps(body, indent=2, sort_keys=True)
    record = base / COMPACTED / f"{key}-{_digest([text])[:32]}.json"
    created = fs.put_record(record, text.encode(), [part_path, *(base / f for f in files)])
    return Compaction(record, key, len(files), table.num_rows, created)


def compact(root: Location, family: str | None = None, period: str = "month", min_files: int = 8) -> list[Compaction]:
    """``compact_family`` over every stored family version (or those of one family) under ``root``."""
    return [c for base in family_dirs(root, family) for c in compact_family(base, period, min_files)]

"""Compaction of a family version's many small daily files, and the plan of which files a query reads.

Each daily partition holds a file per delivery, so a long history is thousands of small files, and a
scan pays a fixed CPU cost per file whatever its size (benchmarks/RESULTS.md). ``compact`` writes, beside
the originals, one content-addressed file per calendar month holding exactly the rows of that month's
original files, then a record naming the originals it covers (a new file, written last; nothing is
rewritten or deleted):

    <family version dir>/_compacted/part-<sha>.parquet        same schema as the originals
    <family version dir>/_compacted/<YYYY-MM>-<sha>.json      {"period", "covers": [original paths], "parts", "rows"}

A reader (``read_plan``) takes the records whose covered originals and parts all exist, the largest
first, skipping any that overlaps one already taken (a later compaction of a month covers a superset of
an earlier one and so supersedes it), and reads their parts plus every original file no taken record
covers (files written after the compaction, such as restatements of old days). The rows read are the
same set either way, and the answer depends only on that set (keys are unique), so compacted and
uncompacted stores answer identically. ``feature_events`` and the other audit readers keep reading the
originals, which stay the source of truth.

Compaction runs without an operator (defs/automation.py, cli/runs.py): after a run or backfill that wrote
feature partitions, for the complete months it wrote (``complete_months``), and each morning for the month
that has just ended. Both look only at the months in question (``months=``, ``due``), never the whole
history. A month still receiving files could be compacted as well (later files are read beside the record's
part, and a re-compaction once ``min_files`` more arrived supersedes it), but each re-compaction is a
larger copy of the month; waiting for the month's end writes each month once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from quant_assets.core.features.files import FeatureStoreError, day_names, family_dirs, partition_day
from quant_assets.core.storage import cache, fs, lake
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


def read_record(path: Location, blob: bytes | None = None) -> dict:
    """A compaction record (its bytes already read: ``blob``), refused unless its text hashes to its name
    (``<period>-<sha>.json``)."""
    try:
        text = (path.read_bytes() if blob is None else blob).decode("utf-8")
        record = json.loads(text)
        covers, parts = list(record["covers"]), list(record["parts"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise FeatureStoreError(f"{path}: unreadable compaction record ({type(exc).__name__}: {exc})") from exc
    if not path.stem.endswith(f"-{_digest([text])[:32]}"):
        raise FeatureStoreError(f"{path}: compaction record does not match its name (edited or damaged)")
    return {**record, "covers": covers, "parts": parts, "name": path.name}


def record_paths(base: Location, periods: Collection[str] | None = None) -> list[Location]:
    """The compaction records of a family version directory (not the temporary files of a killed writer);
    with ``periods``, those of these periods only (a record's name starts with its period)."""
    return _listed(base, periods)[0]


def _listed(base: Location, periods: Collection[str] | None) -> tuple[list[Location], set[str]]:
    """The records (of ``periods``, or all) and the names of the stored parts: one listing of ``_compacted``."""
    folder = base / COMPACTED
    names = fs.names(folder, "[!.]*")
    wanted = None if periods is None else tuple(f"{key}-" for key in set(periods))
    records = [folder / n for n in names if n.endswith(".json") and (wanted is None or n.startswith(wanted))]
    return records, {n for n in names if n.startswith(lake.PART_PREFIX) and n.endswith(".parquet")}


def _stored_records(
    base: Location, periods: Collection[str] | None = None, cache_dir: Path | None = None
) -> list[dict]:
    """The compaction records (of ``periods``, or all) whose parts all exist (a compaction killed before its
    record was written left a part and no record), each checked against its name (an error names one that
    does not match). The records are fetched at once (through the read cache, as their names hash their text)
    and the parts' existence taken from the same listing (on an object store, a request per record or part
    would be a round trip each)."""
    paths, stored = _listed(base, periods)
    blobs = cache.read_many(cache_dir, paths, [p.stem.rsplit("-", 1)[-1] for p in paths])
    records = [read_record(path, blob) for path, blob in zip(paths, blobs, strict=True)]
    return [r for r in records if set(r["parts"]) <= stored]


def _choose(records: list[dict], present: set[str] | None) -> list[dict]:
    """The usable records, chosen without overlap: largest first (a superset supersedes). A record is usable
    when every original it covers is among ``present`` (relative paths; None: taken as present)."""
    usable = [r for r in records if r["covers"] and (present is None or set(r["covers"]) <= present)]
    chosen, taken = [], set()
    for record in sorted(usable, key=lambda r: (-len(r["covers"]), r["name"])):
        if taken.isdisjoint(record["covers"]):
            chosen.append(record)
            taken.update(record["covers"])
    return sorted(chosen, key=lambda r: (r["period"], r["name"]))


def _within(names: Iterable[str], since: dt.date | None, until: dt.date | None) -> list[str]:
    """The originals (relative paths) whose partition lies in the window."""
    low, high = since.isoformat() if since else "", until.isoformat() if until else "9999"
    return [n for n in names if low <= partition_day(n) <= high]


def read_plan(base: Location, since: dt.date | None = None, until: dt.date | None = None) -> list[Location]:
    """The files a query of one family version reads: compacted parts plus the originals they do not cover.

    With ``since`` / ``until``, only partitions in that window count; a compaction is used only when every
    file it covers is in the window (it holds whole months, and older rows must not come back into the answer).
    """
    return read_planned(base, since, until, list)


def read_planned(
    base: Location,
    since: dt.date | None,
    until: dt.date | None,
    read: Callable[[list[Location]], list],
    cache_dir: Path | None = None,
    only: frozenset[str] | None = None,
) -> list:
    """``read(read_plan(base, since, until))`` for a ``read`` that maps a list of files to a list of results
    (in any order): the compacted parts are read while the originals are listed, and with ``cache_dir`` every
    file of an object store through its local copy (``cache.read_through``). ``only``: the originals (relative
    paths) that may be read, and the compactions of those alone (a retired feature version's files:
    ``files.Retirement``; a month compacted after its retirement mixes in files without it).

    On an object store the listing of the originals is the plan's long chain of round trips (a page per
    1,000 files) and is needed only for the few originals no record covers and to confirm that the covered
    ones exist. So the parts of the records chosen as if they all did are read first; should a covered
    original be missing (a damaged or half-copied lake), the plan is chosen again from the listing and read
    as it says.
    """

    def through(parts: list[dict], originals: list[str]) -> list:
        files = [base / COMPACTED / p for r in parts for p in r["parts"]] + [base / n for n in originals]
        digests = [r.get("sha256", {}).get(p, "") for r in parts for p in r["parts"]] + [
            _name_digest(n) for n in originals
        ]
        return cache.read_through(cache_dir, files, digests, read)

    with ThreadPoolExecutor(1) as pool:
        listed = pool.submit(day_names, base)
        records = [
            r
            for r in _stored_records(base, None, cache_dir)
            if len(_within(r["covers"], since, until)) == len(r["covers"])
            and (only is None or set(r["covers"]) <= only)
        ]
        guess = _choose(records, None)
        first = through(guess, [])
        names = [n for n in _within(listed.result(), since, until) if only is None or n in only]
    chosen = _choose(records, set(names))
    covered = {c for r in chosen for c in r["covers"]}
    rest = [n for n in names if n not in covered]
    return through(chosen, rest) if chosen != guess else first + through([], rest)


def _name_digest(name: str) -> str:
    """The SHA-256 prefix an original's name carries (``part-<sha>.parquet``; empty if it does not)."""
    found = re.fullmatch(rf"{lake.PART_PREFIX}([0-9a-f]{{32}})\.parquet", name.rsplit("/", 1)[-1])
    return found.group(1) if found else ""


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _write_compacted(table: pa.Table, path: Location) -> bool:
    """Uncompressed, dictionary encoding for the strings only: the compacted set exists to be read fast.

    Uncompressed reads cost less CPU than zstd (the originals' codec) for about 14% more disk (figures in
    benchmarks/RESULTS.md); float features do not repeat, so dictionary pages for them only cost time.
    """
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    return lake.write_parquet(table, path, compression="none", use_dictionary=strings)


def _keys(period: str, months: Iterable[str] | None) -> set[str] | None:
    """The periods holding ``months`` (``YYYY-MM``; None: every period)."""
    if period not in PERIODS:
        raise FeatureStoreError(f"unknown compaction period {period!r}; one of {sorted(PERIODS)}")
    return None if months is None else {m[: PERIODS[period]] for m in months}


def _periods(base: Location, period: str, keys: set[str] | None) -> dict[str, tuple[list[str], int]]:
    """Per period (of ``keys``, or all): its original files (relative paths) and how many no usable record
    covers. Only the partitions and records of those periods are listed and read."""
    relative = day_names(base, keys)
    covered = {c for r in _choose(_stored_records(base, keys), set(relative)) for c in r["covers"]}
    by_period: dict[str, list[str]] = defaultdict(list)
    for rel in relative:
        by_period[rel[5 : 5 + PERIODS[period]]].append(rel)
    return {key: (files, sum(f not in covered for f in files)) for key, files in sorted(by_period.items())}


def compact_family(
    base: Location, period: str = "month", min_files: int = 8, months: Iterable[str] | None = None
) -> list[Compaction]:
    """Compact one family version directory: per period, one file of all its original rows plus a record.

    A period is (re)compacted when at least ``min_files`` of its original files are not covered by the
    records a reader would use; the new record covers all of the period's originals, so it supersedes the
    earlier one. Originals, earlier parts and records stay as they are (superseded ones are simply no
    longer read). The part is content-addressed and checked as it reads back (row count and digest)
    before the record is written; re-running on unchanged files writes nothing. With ``months``, only the
    periods holding them are looked at (the automatic compaction after a run: its cost is that of the
    months the run wrote, not of the history).
    """
    out = []
    for key, (files, uncovered) in _periods(base, period, _keys(period, months)).items():
        if uncovered >= max(1, min_files):
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


def compact(
    root: Location,
    family: str | None = None,
    period: str = "month",
    min_files: int = 8,
    months: Iterable[str] | None = None,
) -> list[Compaction]:
    """``compact_family`` over every stored family version (or those of one family) under ``root``."""
    return [c for base in family_dirs(root, family) for c in compact_family(base, period, min_files, months)]


def due(root: Location, months: Iterable[str], min_files: int = 8) -> list[str]:
    """Which of ``months`` a monthly ``compact`` would write: those where some family version has at least
    ``min_files`` originals no record covers. Lists only those months' partitions and records, so a sensor
    can ask after every run without a compaction run that would do nothing."""
    keys, out = set(months), set()
    for base in family_dirs(root):
        out.update(k for k, (_, n) in _periods(base, "month", keys).items() if n >= max(1, min_files))
    return sorted(out)


def complete_months(days: Iterable[dt.date | str], today: dt.date) -> list[str]:
    """The calendar months (``YYYY-MM``) of ``days`` (dates, or ISO dates or months as text) that ended
    before ``today``.

    Automatic compaction takes complete months only, so a month is compacted once, after its last session,
    instead of again and again into ever larger copies while its daily files arrive; the current month's
    few files (one per session and delivery) are read as they are until then.
    """
    current = f"{today:%Y-%m}"
    return sorted({m for m in (str(d)[:7] for d in days) if m < current})

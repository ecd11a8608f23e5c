"""Feature files on disk: where a family version lives, its manifest, and the write path of a day's rows.

Physical layout (the logical contract is the long ``feature_events`` schema):

    <root>/features/<family>/fv=<family version>/_manifest.json     {feature: version}
    <root>/features/<family>/fv=<family version>/date=D/part-<sha>.parquet
        entity_key, event_time, ingest_time, producer, producer_version, run_id, <one column per feature>
    <root>/features/<family>/fv=<family version>/_retired-<sha>.json   feature versions it no longer receives

The manifest lists the feature versions a directory was created with, for good. When one of them gets a new
version, the directory keeps receiving the others (``units.py``): its later files lack the retired version's
column, and a retirement record (written before the first such file) names the files stored with it, the
last session among them and the window its markers hash. Readers of the retired version read those files only.

Every row has ingest_time >= event_time (enforced on write); the point-in-time kernel (``pit.py``) relies
on it. Files are written once and never rewritten: a re-run appends only rows not stored yet, and a
recomputed value that differs from the stored one under the same version is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from quant_assets.core import sessions
from quant_assets.core.features.compute import target_event_time
from quant_assets.core.features.definitions import FeatureFamily, family_version
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.equality import nan_equal
from quant_assets.core.storage.fs import Location

KEY = ["entity_key", "event_time", "ingest_time"]
MANIFEST = "_manifest.json"
RETIRED = "_retired-"
_TS = pa.timestamp("us", tz="UTC")


class FeatureStoreError(RuntimeError):
    pass


def event_column(family: str) -> str:
    """The column of a point-in-time answer holding the answering row's event time for ``family``."""
    return f"event_time_{family}"


def ingest_column(family: str) -> str:
    """The column of a point-in-time answer holding the answering row's ingest time for ``family`` (asked for)."""
    return f"ingest_time_{family}"


def family_dir(root: Location, family: FeatureFamily) -> Location:
    return lake.under(root, "features", family.name, f"fv={family.version}")


def family_dirs(root: Location, family: str | None = None) -> list[Location]:
    """Every stored family version directory under ``root`` (or those of one family), in name order: walked level
    by level (families, then their versions, then the manifest), never listing the files below them."""
    features = root / "features"
    families = [lake.under(features, family)] if family else fs.children(features)
    return [v for f in families for v in fs.children(f) if v.name.startswith("fv=") and (v / MANIFEST).exists()]


def day_files(base: Location, periods: Collection[str] | None = None) -> list[Location]:
    """The files written to a family version's daily partitions (the originals), in date then name order
    (``day_names``, as locations)."""
    return [base / name for name in day_names(base, periods)]


def day_names(base: Location, periods: Collection[str] | None = None) -> list[str]:
    """``day_files`` as paths relative to ``base`` (``date=<day>/part-<sha>.parquet``).

    With ``periods`` (date prefixes such as ``2024-03`` or ``2024``), only the partitions whose date starts
    with one of them: a listing of the matching partitions alone, so a compaction of the months a run
    touched costs the same whatever the length of the history.
    """
    if periods is None:
        return fs.names(base, f"date=*/{lake.PART_PREFIX}*.parquet")
    return sorted(n for key in set(periods) for n in fs.names(base, f"date={key}*/{lake.PART_PREFIX}*.parquet"))


def partition_day(name: str) -> str:
    """The ISO day of a ``day_names`` entry (its partition's ``date=`` value)."""
    return name[5:15]


def within(names: Sequence[str], first: dt.date | None, last: dt.date) -> list[str]:
    """The entries of ``names`` (``day_names``: sorted) of the partitions from ``first`` (None: any) to ``last``,
    found by bisection: a fingerprint per day of a range takes its window from one listing of the range."""
    low = bisect_left(names, first.isoformat(), key=partition_day) if first else 0
    return list(names[low : bisect_right(names, last.isoformat(), key=partition_day)])


def months_between(first: dt.date, last: dt.date) -> list[str]:
    """The calendar months (``YYYY-MM``) from ``first``'s to ``last``'s: the ``periods`` of ``day_names`` that
    list the partitions of a range, and no others (none when ``first`` is after ``last``)."""
    if first > last:
        return []
    out, month = [], first.replace(day=1)
    while month <= last:
        out.append(month.isoformat()[:7])
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return out


def _schema(family: FeatureFamily) -> pa.Schema:
    return pa.schema(
        [("entity_key", pa.string()), ("event_time", _TS), ("ingest_time", _TS)]
        + lake.PROVENANCE_FIELDS
        + [(f.name, pa.float64()) for f in family.features]
    )


def _write_manifest(path: Location, family: FeatureFamily) -> None:
    """The family version's manifest, written once (a concurrent first writer writes the same bytes)."""
    body = {
        "family": family.name,
        "family_version": family.version,
        "features": {f.name: f.version for f in family.features},
    }
    fs.put_once(path / MANIFEST, json.dumps(body, indent=2, sort_keys=True).encode())


def read_manifest(directory: Location) -> dict:
    """A family version's manifest, refused unless it parses and its features hash to the directory's version.

    The directory name ``fv=<version>`` is the hash of the manifest's feature versions, so a damaged or
    edited manifest cannot silently redirect a query to other columns.
    """
    path = directory / MANIFEST
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        version = family_version(body["features"])
        claimed = (body["family"], body["family_version"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FeatureStoreError(f"{path}: unreadable feature manifest ({type(exc).__name__}: {exc})") from exc
    expected = (path.parent.parent.name, path.parent.name.removeprefix("fv="))
    if claimed != expected or version != expected[1]:
        raise FeatureStoreError(
            f"{path}: manifest does not match its directory (family/version {claimed}, features hash to "
            f"{version}, directory says {expected})"
        )
    return body


@dataclass(frozen=True)
class Retirement:
    """What a directory holds of a feature version it no longer receives: the day files stored with it (relative
    paths), the newest session among them, and when the version's next value would have been known."""

    covers: frozenset[str]
    through: dt.date | None
    valid_until: pd.Timestamp | None  # as-of times from then on need values it never got (None: none stored)
    window: int | None  # the lookback the directory's markers hash (``units.py``; None: it receives nothing now)


def write_retirement(base: Location, family: FeatureFamily, features: Mapping[str, str], window: int | None) -> None:
    """Record, once and before the directory receives a file without them, that ``base`` no longer receives
    ``features`` ({name: version}): the record names the day files stored so far, all of which hold them, and the
    time their next session's values would have been known (``family``'s event times); ``window``: the lookback
    the directory's markers hash, None when it receives nothing any more."""
    covers = day_names(base)
    through = dt.date.fromisoformat(partition_day(covers[-1])) if covers else None
    body = {
        "features": dict(sorted(features.items())),
        "covers": covers,
        "through": through.isoformat() if through else None,
        "valid_until": target_event_time(family, sessions.next_session(through)).isoformat() if through else None,
        "window": window,
    }
    text = json.dumps(body, indent=2, sort_keys=True)
    fs.put_once(base / f"{RETIRED}{_sha(text)}.json", text.encode())


def read_retirement(path: Location) -> dict:
    """A retirement record, refused unless its text hashes to its name (an edited one would redirect reads)."""
    try:
        text = path.read_text(encoding="utf-8")
        body = json.loads(text)
        window = None if body["window"] is None else int(body["window"])
        body = {**body, "features": dict(body["features"]), "covers": list(body["covers"]), "window": window}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FeatureStoreError(f"{path}: unreadable retirement record ({type(exc).__name__}: {exc})") from exc
    if path.name != f"{RETIRED}{_sha(text)}.json":
        raise FeatureStoreError(f"{path}: retirement record does not match its name (edited or damaged)")
    return body


def retirements(base: Location) -> dict[str, Retirement]:
    """The feature versions (``name@version``) ``base`` no longer receives. A record of a directory that stopped
    receiving anything (no window) no longer applies once the directory holds files it does not cover: only the
    features going back to exactly its versions write there again, with every column."""
    records = [read_retirement(base / name) for name in fs.names(base, f"{RETIRED}*.json")]
    if any(r["window"] is None for r in records):
        stored = set(day_names(base))
        records = [r for r in records if r["window"] is not None or stored <= set(r["covers"])]
    held = {
        f"{f}@{v}": [r for r in records if r["features"].get(f) == v] for r in records for f, v in r["features"].items()
    }
    return {key: _retirement(mine) for key, mine in held.items()}


def _retirement(records: list[dict]) -> Retirement:
    """One version's retirement from its records. Two runs racing to retire it each write one; a file counts as
    holding it only if every record says so (listings only grow, so that is the earliest record's files)."""
    covers = frozenset.intersection(*(frozenset(r["covers"]) for r in records))
    through = max((partition_day(c) for c in covers), default=None)
    until = [pd.Timestamp(r["valid_until"]) for r in records if r["valid_until"]]
    windows = [r["window"] for r in records if r["window"] is not None]
    return Retirement(
        covers,
        dt.date.fromisoformat(through) if through else None,
        min(until) if covers and until else None,
        max(windows, default=None),
    )


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def write_day(
    root: Location,
    family: FeatureFamily,
    day: dt.date,
    rows: pd.DataFrame,
    provenance: Mapping[str, str],
    base: Location | None = None,
) -> lake.WriteResult:
    """Append the day's feature rows that are not stored yet; same key, other values is an error.

    Deterministic code under a fixed version must reproduce stored values; if
    it does not, something changed without a version bump, and we refuse. ``base``: the directory receiving the
    rows, by default the family's own. The manifest is written first into a directory named by exactly these
    feature versions; one that holds more (retired from it, ``units.py``) keeps the manifest it was created with.
    """
    if rows.empty:
        return lake.WriteResult(0, 0, None)
    if (rows["ingest_time"] < rows["event_time"]).any():
        raise FeatureStoreError(f"{family.name} {day}: a row has ingest_time before event_time")
    own = family_dir(root, family)
    base = own if base is None else base
    if base == own:
        _write_manifest(base, family)
    rows = lake.stamp(rows, provenance)
    rows = lake.conform(rows, _schema(family))
    stored = lake.read_partition(base, "", day)
    fresh = rows
    if not stored.empty:
        features = [f.name for f in family.features]
        merged = rows.merge(stored[KEY + features], on=KEY, how="left", suffixes=("", "__old"), indicator=True)
        known = (merged["_merge"] == "both").to_numpy()
        old = merged.loc[known, [f"{c}__old" for c in features]].to_numpy()
        new = merged.loc[known, features].to_numpy()
        if not nan_equal(old, new).all():
            raise FeatureStoreError(
                f"{family.name} {day}: recomputed values differ from stored ones under the same version"
            )
        fresh = rows.loc[~known]
    if fresh.empty:
        return lake.WriteResult(len(rows), 0, None)
    path = lake.write_part(base / f"date={day.isoformat()}", lake.canonical_table(fresh, KEY, _schema(family)))
    return lake.WriteResult(len(rows), len(fresh), path)

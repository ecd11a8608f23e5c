"""Check stored files against what they claim to be, and name every one that is not.

A query cannot afford to hash every file it reads (the point-in-time kernel reads thousands through
DuckDB), so reads verify what is cheap (Parquet page checksums and part names on every pyarrow read,
manifests and compaction records on every query) and this module checks the rest, on demand (the
``verify`` command) or on a sample (the feature assets' ``files_intact`` check):

- content-addressed parts (raw data, quarantine, feature files, predictions, a model's out-of-sample
  predictions): the content as read back hashes to the name;
- feature manifests: they parse and their feature versions hash to their ``fv=`` directory;
- compaction records: their text hashes to their name; compacted parts: the SHA-256 their record
  holds, or for records written before that was recorded, the rows of the originals they cover;
- snapshots: the fingerprint; model artifacts: ``<sha256>.json`` hashes to its name.

Temporary files left by killed writers are listed as leftovers (never read, safe to delete), and
snapshots whose writer was killed before their manifest as incomplete (refused by readers, completed by
building them again).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from quant_assets.core.features import store
from quant_assets.core.research import snapshots
from quant_assets.core.research.training import sha256
from quant_assets.core.storage import lake

CHECKED = (lake.CorruptFile, store.FeatureStoreError, snapshots.SnapshotError, OSError, ValueError)


@dataclass(frozen=True)
class Problem:
    kind: str
    path: Path
    error: str


@dataclass
class Report:
    checked: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def stored_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(kind, path) of every file a reader may use under ``root``, in a stable order."""
    root = Path(root)
    for path in sorted(root.rglob("*")):
        kind = _kind(path.relative_to(root).parts)
        if kind is not None and path.is_file():
            yield kind, path


def _kind(parts: tuple[str, ...]) -> str | None:
    name = parts[-1]
    if name.startswith(".tmp-"):
        return None
    if parts[0] == "snapshots":
        return "snapshot" if len(parts) == 3 and name == snapshots.DATA else None
    if store.COMPACTED in parts:
        return "compaction_record" if name.endswith(".json") else "compacted_part"
    if name == store.MANIFEST:
        return "feature_manifest"
    if parts[0] == "models" and len(parts) == 3 and name.endswith(".json"):
        return "model_artifact"
    if name.startswith(lake.PART_PREFIX) and name.endswith(".parquet"):
        return "part"
    return None


def check(kind: str, path: Path) -> None:
    """Raise (naming ``path``) unless the file is what its kind and name say it is."""
    if kind == "part":
        lake.read_part(path)
    elif kind == "feature_manifest":
        store.read_manifest(path.parent)
    elif kind == "compaction_record":
        store.read_record(path)
    elif kind == "compacted_part":
        _check_compacted(path)
    elif kind == "snapshot":
        snapshots.read(path.parent)
    elif kind == "model_artifact":
        if sha256(path.read_bytes()) != path.stem:
            raise lake.CorruptFile(f"{path}: content does not hash to its name")
    else:
        raise ValueError(f"unknown kind of stored file {kind!r}")


def _check_compacted(path: Path) -> None:
    """A compacted part against every record naming it: the recorded SHA-256, else the originals' rows."""
    base = path.parent.parent
    records = [r for r in map(store.read_record, store.record_paths(base)) if path.name in r["parts"]]
    if not records:
        lake.read_parquet(path)  # not used by any query until a record names it; its pages still check
    for record in records:
        recorded = record.get("sha256", {}).get(path.name)
        if recorded is not None:
            if lake.file_sha256(path) != recorded:
                raise lake.CorruptFile(f"{path}: SHA-256 differs from its record {record['name']}")
            continue
        originals = pa.concat_tables([lake.read_part(base / c) for c in record["covers"]], promote_options="default")
        if not store.same_rows(lake.read_parquet(path), originals):
            raise lake.CorruptFile(f"{path}: rows differ from the originals its record {record['name']} covers")


def verify(files: Iterable[tuple[str, Path]]) -> Report:
    """Check each (kind, path); every failure becomes a Problem naming the file, none stops the rest."""
    report = Report()
    for kind, path in files:
        report.checked[kind] += 1
        try:
            check(kind, path)
        except CHECKED as exc:
            report.problems.append(Problem(kind, path, str(exc)))
    return report


def verify_lake(root: Path, sample: int | None = None, seed: int = 0) -> Report:
    """Every stored file under ``root`` (or a random ``sample`` of them), plus the leftovers of killed writers."""
    files = list(stored_files(root))
    if sample is not None and sample < len(files):
        files = sorted(random.Random(seed).sample(files, sample), key=lambda f: f[1])
    unfinished = [f for f in files if f[0] == "snapshot" and not (f[1].parent / snapshots.MANIFEST).exists()]
    report = verify([f for f in files if f not in unfinished])
    report.leftovers = sorted(p for p in Path(root).rglob(".tmp-*") if p.is_file())
    report.incomplete = [path.parent for _, path in unfinished]
    return report

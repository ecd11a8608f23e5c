"""Which stored feature files are what their names say: manifests, daily parts, compaction records and parts.

- daily parts: the content as read back hashes to the name (``verify.check_part``);
- manifests: they parse and their feature versions hash to their ``fv=`` directory (``files.read_manifest``);
- retirement records: their text hashes to their name (``files.read_retirement``);
- compaction records: their text hashes to their name; compacted parts: the SHA-256 their record holds,
  or for records written before that was recorded, the rows of the originals they cover.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from quant_assets.core.features.compaction import COMPACTED, read_record, record_paths
from quant_assets.core.features.files import MANIFEST, RETIRED, FeatureStoreError, read_manifest, read_retirement
from quant_assets.core.storage import lake, verify
from quant_assets.core.storage.equality import same_rows
from quant_assets.core.storage.fs import Location

ERRORS = (FeatureStoreError,)  # what a check raises about a bad feature file, beyond verify.CHECKED


def kind_of(parts: tuple[str, ...]) -> str | None:
    """The kind of a feature file from its path's parts (None: not a file a reader uses)."""
    name = parts[-1]
    if verify.is_leftover(name):
        return None
    if COMPACTED in parts:
        return "compaction_record" if name.endswith(".json") else "compacted_part"
    if name == MANIFEST:
        return "feature_manifest"
    if name.startswith(RETIRED) and name.endswith(".json"):
        return "retirement_record"
    return "part" if verify.is_part(name) else None


def family_files(base: Location) -> Iterator[tuple[str, Location]]:
    """(kind, path) of every file of a family version directory, in a stable order."""
    return verify.stored_files(base, kind_of)


def check(kind: str, path: Location) -> None:
    """Raise (naming ``path``) unless the feature file is what its kind and name say it is."""
    if kind == "part":
        verify.check_part(path)
    elif kind == "feature_manifest":
        read_manifest(path.parent)
    elif kind == "compaction_record":
        read_record(path)
    elif kind == "retirement_record":
        read_retirement(path)
    elif kind == "compacted_part":
        _check_compacted(path)
    else:
        raise ValueError(f"unknown kind of feature file {kind!r}")


def _check_compacted(path: Location) -> None:
    """A compacted part against every record naming it: the recorded SHA-256, else the originals' rows."""
    base = path.parent.parent
    records = [r for r in map(read_record, record_paths(base)) if path.name in r["parts"]]
    if not records:
        lake.read_parquet(path)  # not used by any query until a record names it; its pages still check
    for record in records:
        recorded = record.get("sha256", {}).get(path.name)
        if recorded is not None:
            if lake.file_sha256(path) != recorded:
                raise lake.CorruptFile(f"{path}: SHA-256 differs from its record {record['name']}")
            continue
        originals = pa.concat_tables(lake.read_parts([base / c for c in record["covers"]]), promote_options="default")
        if not same_rows(lake.read_parquet(path), originals):
            raise lake.CorruptFile(f"{path}: rows differ from the originals its record {record['name']} covers")

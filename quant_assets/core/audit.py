"""Every stored file of a lake checked against what it claims to be: what the ``verify`` command runs.

Feature files are checked as ``features/integrity.py`` says; besides them, content-addressed parts
(raw data, quarantine, predictions, a model's out-of-sample predictions) hash to their names, snapshots
to their fingerprint, model artifacts (``models/<name>/<sha256>.json``) to their name, and receipts (of an
ingest, of a day's predictions) read as one. Temporary files left by killed writers are listed as leftovers
(never read, safe to delete), and snapshots whose writer was killed before their manifest as incomplete (refused
by readers, completed by building them again). It reads every stage's files, so it sits above them all, beside
``summary.py``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from quant_assets.core.features import integrity
from quant_assets.core.ingest import receipts
from quant_assets.core.research import scoring, snapshots
from quant_assets.core.research.training import sha256
from quant_assets.core.storage import lake, receipt, verify
from quant_assets.core.storage.fs import Location

ERRORS = (*integrity.ERRORS, snapshots.SnapshotError)


def stored_files(root: Location) -> Iterator[tuple[str, Location]]:
    """(kind, path) of every file a reader may use under ``root``, in a stable order."""
    return verify.stored_files(root, _kind)


def _kind(parts: tuple[str, ...]) -> str | None:
    name = parts[-1]
    if verify.is_leftover(name):
        return None
    if parts[0] == "snapshots":
        return "snapshot" if len(parts) == 3 and name == snapshots.DATA else None
    if parts[0] == "features":
        return integrity.kind_of(parts)
    if parts[0] == "models" and len(parts) == 3 and name.endswith(".json"):
        return "model_artifact"
    if name.startswith(receipt.PREFIX):
        return "predictions_receipt" if parts[0] == scoring.DATASET else "ingest_receipt"
    return "part" if verify.is_part(name) else None


def check(kind: str, path: Location) -> None:
    """Raise (naming ``path``) unless the file is what its kind and name say it is."""
    if kind == "part":
        verify.check_part(path)
    elif kind == "snapshot":
        snapshots.read(path.parent)
    elif kind == "ingest_receipt":
        receipts.read(path)
    elif kind == "predictions_receipt":
        scoring.read_receipt(path)
    elif kind == "model_artifact":
        if sha256(path.read_bytes()) != path.stem:
            raise lake.CorruptFile(f"{path}: content does not hash to its name")
    else:
        integrity.check(kind, path)


def verify_lake(root: Location, sample: int | None = None, seed: int = 0) -> verify.Report:
    """Every stored file under ``root`` (or a random ``sample`` of them), plus the leftovers of killed writers."""
    files = list(stored_files(root))
    if sample is not None and sample < len(files):
        files = sorted(random.Random(seed).sample(files, sample), key=lambda f: f[1])
    unfinished = [f for f in files if f[0] == "snapshot" and not (f[1].parent / snapshots.MANIFEST).exists()]
    report = verify.verify([f for f in files if f not in unfinished], check, ERRORS)
    report.leftovers = verify.leftovers(root)
    report.incomplete = [path.parent for _, path in unfinished]
    return report

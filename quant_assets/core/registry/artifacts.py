"""A registered model's files: the artifact and its out-of-sample predictions, checked against the registry.

Each file is written once under ``models/<name>/`` (the artifact named by its SHA-256, the predictions a
content-addressed part), and its SHA-256 and size are recorded with the model; every read verifies them
and refuses a file that differs (``ArtifactTampered`` naming it).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from quant_assets.core.registry.models import ModelRef, check_model_name
from quant_assets.core.research.training import Ensemble, sha256
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location


class ArtifactTampered(RuntimeError):
    pass


@dataclass(frozen=True)
class StoredFile:
    """A file a model owns, with the SHA-256 and size it must have when read back."""

    path: Location
    sha256: str
    size: int

    def read_bytes(self, owner: str) -> bytes:
        """The file's bytes, refused (ArtifactTampered naming the file) unless they hash as recorded."""
        try:
            blob = self.path.read_bytes()
        except OSError as exc:
            raise ArtifactTampered(f"{owner}: {self.path} is unreadable: {exc}") from exc
        if len(blob) != self.size or sha256(blob) != self.sha256:
            raise ArtifactTampered(f"{owner}: {self.path} fails verification (sha256/size differ from the registry)")
        return blob


@dataclass(frozen=True)
class ModelFiles:
    """Every file a model owns: the artifact and its out-of-sample walk-forward predictions."""

    artifact: StoredFile
    oos: StoredFile


def save_model_files(root: Location, name: str, blob: bytes, oos: pd.DataFrame) -> ModelFiles:
    """Write a model's artifact (named by its SHA-256) and out-of-sample predictions (a content-addressed part)
    under ``models/<name>/``, each once, and return them as they now stand on disk.

    A file of the same name written earlier must hold the same content: the artifact is checked against
    its name, the predictions part against its content digest.
    """
    directory = lake.under(root, "models", check_model_name(name))
    artifact = StoredFile(directory / f"{sha256(blob)}.json", sha256(blob), len(blob))
    fs.put_once(artifact.path, blob)
    artifact.read_bytes(f"model {name}")
    path = lake.write_part(directory / "oos", pa.Table.from_pandas(oos, preserve_index=False))
    stored = path.read_bytes()
    lake.read_part(path, stored)  # the bytes just read, checked against the name and the page checksums
    return ModelFiles(artifact, StoredFile(path, sha256(stored), len(stored)))


def model_files(conn, ref: ModelRef) -> tuple[Location, str]:
    """(artifact path, training snapshot fingerprint) of a registered model."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.path, m.snapshot FROM quant.models m JOIN quant.model_artifacts a USING (model_id) "
            "WHERE model_id = %s",
            (ref.model_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise ArtifactTampered(f"{ref.node} has no registered artifact")
    return fs.location(row[0]), row[1]


def _stored_files(conn, ref: ModelRef) -> tuple[StoredFile, StoredFile | None]:
    """The recorded artifact and out-of-sample predictions of a model (None: registered before they were)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT path, sha256, size_bytes, oos_path, oos_sha256, oos_size_bytes FROM quant.model_artifacts "
            "WHERE model_id = %s",
            (ref.model_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise ArtifactTampered(f"{ref.node} has no registered artifact")
    oos = StoredFile(fs.location(row[3]), row[4], row[5]) if row[3] is not None else None
    return StoredFile(fs.location(row[0]), row[1], row[2]), oos


def registered_files(conn, ref: ModelRef) -> ModelFiles:
    """A model's files as the registry records them (ArtifactTampered for one registered before its out-of-sample
    predictions were recorded: it cannot stand for a training run)."""
    artifact, oos = _stored_files(conn, ref)
    if oos is None:
        raise ArtifactTampered(f"{ref.node} has no recorded out-of-sample predictions")
    return ModelFiles(artifact, oos)


def load_model(conn, ref: ModelRef) -> Ensemble:
    """Load a model's artifact, refusing it when its size or SHA-256 differs from the registry's."""
    return Ensemble.from_bytes(_stored_files(conn, ref)[0].read_bytes(ref.node))


def load_oos(conn, ref: ModelRef) -> pd.DataFrame | None:
    """A model's out-of-sample walk-forward predictions, verified against their recorded hash (ArtifactTampered
    naming the file otherwise); None for a model registered before they were recorded."""
    oos = _stored_files(conn, ref)[1]
    if oos is None:
        return None
    return lake.read_parquet(oos.path, source=pa.BufferReader(oos.read_bytes(ref.node))).to_pandas()


def verify_models(conn) -> list[tuple[str, Location | None, str | None]]:
    """Every file of every registered model against its recorded hash: (model node, path, error or None)."""
    with conn.cursor() as cur:
        cur.execute("SELECT model_id, name, version FROM quant.models ORDER BY model_id")
        refs = [ModelRef(*row) for row in cur.fetchall()]
    out = []
    for ref in refs:
        try:
            stored = [f for f in _stored_files(conn, ref) if f is not None]
        except ArtifactTampered as exc:
            out.append((ref.node, None, str(exc)))
            continue
        for f in stored:
            try:
                f.read_bytes(ref.node)
                out.append((ref.node, f.path, None))
            except ArtifactTampered as exc:
                out.append((ref.node, f.path, str(exc)))
    return out

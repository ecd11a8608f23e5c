"""An optional local read-through cache of an object store's immutable files, keyed by their content hash.

Every Parquet file a feature query reads is named by, or recorded with, the SHA-256 of its bytes (an original
``part-<sha>.parquet`` by its name, a compacted part by its compaction record), and no file is ever rewritten.
So a local copy named by that hash can never be stale, whichever lake, bucket or prefix it came from: a hit
is the same bytes. A miss is fetched (concurrently, ``fs.read_many``), checked against its hash (other bytes
are refused as ``lake.CorruptFile``, naming the object, and nothing is cached), and written once
(``fs.put_once``: a concurrent process caching the same file is harmless). The query then reads the local
copies as it reads a local lake. Nothing is evicted: delete the directory (or any file in it) at any time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location


def read_through(
    directory: Path | None, files: list[Location], digests: list[str], read: Callable[[list[Location]], list]
) -> list:
    """``read(files)``, where each file of an object store whose digest (a prefix of its SHA-256, as long as
    the lake records it; empty: unknown) is known is read from its local copy in ``directory``; without a
    directory, or for local files, ``read(files)`` itself. ``read`` is called once per kind of location (it
    may assume one kind) and must return results in any order (one list per call, concatenated)."""
    if directory is None or all(fs.is_local(f) for f in files):
        return read(files)
    known = [i for i, digest in enumerate(digests) if digest]
    copies = _local_copies(directory, [files[i] for i in known], [digests[i] for i in known])
    return read(copies) + read([f for f, digest in zip(files, digests, strict=True) if not digest])


def read_many(directory: Path | None, files: list[Location], digests: list[str]) -> list[bytes]:
    """``fs.read_many(files)``, each file of an object store read from its local copy in ``directory`` (every
    digest known); without a directory, or for local files, ``fs.read_many`` itself."""
    if directory is None or all(fs.is_local(f) for f in files):
        return fs.read_many(files)
    return [copy.read_bytes() for copy in _local_copies(directory, files, digests)]


def _local_copies(directory: Path, files: list[Location], digests: list[str]) -> list[Path]:
    """Each file's local copy, named by its digest; the missing ones fetched at once, checked and written."""
    copies = [directory / f"{digest}{Path(f.name).suffix}" for f, digest in zip(files, digests, strict=True)]
    missing = [i for i, copy in enumerate(copies) if not copy.exists()]
    for i, blob in zip(missing, fs.read_many([files[i] for i in missing]), strict=True):
        if not hashlib.sha256(blob).hexdigest().startswith(digests[i]):
            raise lake.CorruptFile(f"{files[i]}: its bytes do not hash to {digests[i]} (edited or damaged)")
        fs.put_once(copies[i], blob)
    return copies

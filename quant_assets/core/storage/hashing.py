"""The hashes that key work already done: a feature day's marker, an ingest's receipt, a drift row's inputs.

Each keys a result by what it was computed from, so a rerun over the same inputs finds it and skips the work.
Lake parts are content-addressed (``part-<sha>.parquet``), so the names of the parts a computation reads stand
for their content: hashing names, a listing is all a rerun reads to know nothing changed. The code is hashed
by its text, so an edit changes the key even in a checkout whose version reads only "dirty".
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path


def lines_hash(lines: Iterable[str]) -> str:
    """The SHA-256 of ``lines`` joined by newlines, 32 hex digits: a key for a file name or a column."""
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


@functools.cache
def code_hash(*paths: Path) -> str:
    """The SHA-256 of the text of the Python files at ``paths`` (a file, or a package's files in name order),
    hashed once per process."""
    files = [f for p in paths for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()

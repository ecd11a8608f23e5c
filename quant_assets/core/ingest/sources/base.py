"""The adapter interface every market and alternative-data source implements, and the checks on names and
paths that every file-based source applies where a name or a file enters."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.ingest.validate import empty_rejects, utf8_safe

# How long after its event time a value of each dataset is known to the system.
PRICE_LAG = pd.Timedelta(minutes=15)
ALT_LAG = pd.Timedelta(minutes=30)


def known_by_close(day) -> pd.Timestamp:
    """What a run for session ``day`` may know: everything ingested by its close plus PRICE_LAG, so the day's
    own bar is in. A snapshot's as-of, a drift row's labels and a backfilled session's step checks all
    stop here, so each is the same however late it is computed."""
    return sessions.session_close(day) + PRICE_LAG


# What a ticker may look like (after upper-casing): letters, digits, '.' and '-' (BRK-A, RDS-B, BF.B).
# Anything else never becomes a ticker, a file name in the lake or a path: it is reported instead.
TICKER = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,19}")


class SourceError(RuntimeError):
    """A source that cannot be read at all: missing directory, unreadable root, an invalid universe."""


@dataclass(frozen=True)
class Notice:
    """A source-level warning: something expected is missing, or something unexpected is present.

    Notices are not records (nothing was read that could be quarantined): they are reported by the raw
    assets' non-blocking ``source_complete`` check, so nothing goes missing without a word.
    """

    code: str  # missing_file, unexpected_file, ...
    subject: str  # the name concerned
    detail: str

    def __post_init__(self):
        # names from the filesystem may hold undecodable bytes; a notice is shown and stored as UTF-8
        object.__setattr__(self, "subject", utf8_safe(self.subject))
        object.__setattr__(self, "detail", utf8_safe(self.detail))


@dataclass
class RawBatch:
    """What a source offers for one partition, before row validation.

    ``records`` holds candidate rows (possibly bad); ``rejects`` holds what could not even become a row
    (undecodable bytes, malformed lines, unusable files), already in quarantine form. ``records_read``
    counts the source records the partition owns, good or bad (CSV data lines, tweet lines, synthetic
    rows), so a quarantine share compares records with records; ``None`` means one per record and reject.
    """

    records: pd.DataFrame
    rejects: pd.DataFrame = field(default_factory=empty_rejects)
    records_read: int | None = None
    notices: list[Notice] = field(default_factory=list)

    def read_count(self) -> int:
        return self.records_read if self.records_read is not None else len(self.records) + len(self.rejects)


class PriceSource(Protocol):
    name: str

    def universe(self) -> frozenset[str]: ...

    def prices(self, session: dt.date) -> RawBatch:
        """Daily bars for one session: ticker, date, open..adj_close, volume."""
        ...


class AltSource(Protocol):
    name: str

    def universe(self) -> frozenset[str]: ...

    def alt(self, session: dt.date) -> RawBatch:
        """Daily aggregates for the calendar days the session owns."""
        ...


def ticker_of(name: str) -> str | None:
    """The ticker a file or directory name stands for, or None when the name is not a valid ticker.

    Names from the filesystem may hold undecodable bytes (as surrogates); those never match.
    """
    candidate = name.upper()
    return candidate if TICKER.fullmatch(candidate) else None


@dataclass(frozen=True)
class Located:
    """Where a source entry really is (``real`` and its ``mode``), or why it cannot be read (reason, detail)."""

    real: Path | None
    mode: int = 0
    reason: str | None = None
    detail: str | None = None


def locate(path: Path, root: Path) -> Located:
    """Resolve ``path`` (following links) and refuse what does not stay inside ``root`` (already resolved).

    A link loop or a dangling link is ``unreadable_file`` with the OS error; a link that leaves the source
    root is ``link_outside_source``: it is never read.
    """
    try:
        real = Path(os.path.realpath(path, strict=True))
        mode = os.stat(real).st_mode
    except OSError as exc:
        return Located(None, reason="unreadable_file", detail=f"cannot resolve {path}: {exc.strerror or exc}")
    if not real.is_relative_to(root):
        return Located(
            None, reason="link_outside_source", detail=f"{path} links to {real}, outside the source root {root}"
        )
    return Located(real, mode)


def locate_file(path: Path, root: Path) -> Located:
    """``locate``, and a directory, FIFO or device where a data file is expected is ``unreadable_file``
    (reading a FIFO would block the run)."""
    found = locate(path, root)
    if found.real is None or stat.S_ISREG(found.mode):
        return found
    kind = "is a directory" if stat.S_ISDIR(found.mode) else "is not a regular file"
    return Located(None, reason="unreadable_file", detail=f"cannot read {path}: {kind}")

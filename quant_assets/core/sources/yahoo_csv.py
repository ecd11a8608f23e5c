"""Yahoo-format per-ticker CSV files: ``<TICKER>.csv`` with
``Date,Open,High,Low,Close,Adj Close,Volume``.

Each file is parsed once per process (cached on path, size and mtime) into
lines tagged with the session that owns them: a line's own date if it is a
session, else the next session (a Saturday bar is quarantined with Monday's
partition); a line whose date cannot be read goes with the next readable line
(files are date-sorted), so every line is reported in exactly one partition.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quant_assets.core import time as qtime
from quant_assets.core.sources.base import RawBatch, SourceError
from quant_assets.core.validate import concat_rejects, make_rejects

HEADER = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
FIELDS = ["date", "open", "high", "low", "close", "adj_close", "volume"]
_DATE = re.compile(rb"^\s*(\d{4}-\d{2}-\d{2})\s*,")


@dataclass
class _Sorted:
    """Rows sorted by owning session, sliced per session with a binary search."""

    owners: np.ndarray
    frame: pd.DataFrame

    @classmethod
    def of(cls, frame: pd.DataFrame, owners: np.ndarray) -> _Sorted:
        order = np.argsort(owners, kind="stable")
        return cls(owners[order], frame.iloc[order].reset_index(drop=True))

    def get(self, owner: np.datetime64) -> pd.DataFrame:
        lo, hi = np.searchsorted(self.owners, owner, "left"), np.searchsorted(self.owners, owner, "right")
        return self.frame.iloc[lo:hi]


@dataclass
class _ParsedFile:
    records: _Sorted | None  # well-formed lines as text fields
    rejects: _Sorted | None  # malformed lines, already in quarantine form
    file_reject: pd.DataFrame | None  # a whole-file problem, reported in every partition


def _index_lines(lines: pd.DataFrame) -> _ParsedFile:
    """Split a file's lines into records and rejects once, each sorted by owning session."""
    owners = lines["owner"].to_numpy(dtype="datetime64[D]")
    bad = lines["pre_reason"].notna().to_numpy()
    good = lines[~bad]
    fields = pd.DataFrame(good["fields"].tolist(), columns=FIELDS, index=good.index)
    records = pd.concat([good[["ticker", "source_file", "source_line", "raw"]], fields], axis=1)
    rejects = lines[bad]
    rejects = make_rejects(rejects, "", rejects["detail"].astype("string")).assign(
        reason=rejects["pre_reason"].astype("string").to_numpy()
    )
    return _ParsedFile(_Sorted.of(records, owners[~bad]), _Sorted.of(rejects, owners[bad]), None)


def _owner_sessions(dates: list[str | None]) -> np.ndarray:
    """Session owning each line: its date's session on/after, unreadable dates back-filled.

    A date outside the calendar (a typo'd year) counts as unreadable. NaT only
    when no line of the file has a usable date.
    """
    parsed = pd.to_datetime(pd.Series(dates, dtype="string"), format="%Y-%m-%d", errors="coerce")
    cal = qtime.calendar()
    days = parsed.to_numpy(dtype="datetime64[D]")
    usable = ~np.isnat(days) & (days >= cal.sessions[0]) & (days <= cal.sessions[-1])
    days = pd.Series(np.where(usable, days, np.datetime64("NaT"))).bfill().ffill().to_numpy(dtype="datetime64[D]")
    idx = np.searchsorted(cal.sessions, days, side="left")
    inside = ~np.isnat(days) & (idx < len(cal.sessions)) & (days >= cal.sessions[0])
    owner = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[D]")
    owner[inside] = cal.sessions[idx[inside]]
    return owner


class YahooCsvPrices:
    """Daily bars from a directory of Yahoo-format CSV files."""

    def __init__(self, directory: str | Path, universe: frozenset[str] | None = None):
        self.directory = Path(directory)
        self.name = f"yahoo_csv({self.directory})"
        self._universe = universe
        self._cache: dict[Path, tuple[tuple[int, int], _ParsedFile]] = {}

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            raise SourceError(f"price directory not found or not a directory: {self.directory}")
        files = sorted(self.directory.glob("*.csv"))
        if not files:
            raise SourceError(f"no *.csv files in price directory {self.directory}")
        return files

    def universe(self) -> frozenset[str]:
        if self._universe is not None:
            return self._universe
        return frozenset(f.stem.upper() for f in self._files())

    def _parse(self, path: Path) -> _ParsedFile:
        stat = path.stat()
        sig = (stat.st_size, stat.st_mtime_ns)
        hit = self._cache.get(path)
        if hit and hit[0] == sig:
            return hit[1]
        parsed = self._parse_uncached(path)
        self._cache[path] = (sig, parsed)
        return parsed

    def _parse_uncached(self, path: Path) -> _ParsedFile:
        ticker = path.stem.upper()
        rel = path.name

        def whole_file(reason: str, detail: str, raw: str | None = None) -> _ParsedFile:
            rec = pd.DataFrame({"ticker": [ticker], "source_file": [rel], "source_line": [pd.NA], "raw": [raw]})
            return _ParsedFile(None, None, make_rejects(rec, reason, detail))

        try:
            blob = path.read_bytes()
        except OSError as exc:
            return whole_file("unreadable_file", f"cannot read {path}: {exc.strerror or exc}")
        if not blob.strip():
            return whole_file("empty_file", f"{path} is empty (no header, no rows)")
        raw_lines = blob.split(b"\n")
        header = raw_lines[0].rstrip(b"\r").lstrip(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
        if [h.strip() for h in header.split(",")] != HEADER:
            return whole_file(
                "bad_header", f"{path}: expected header {','.join(HEADER)!r}, got {header[:120]!r}", header
            )
        rows = []
        for i, line in enumerate(raw_lines[1:], start=2):
            line = line.rstrip(b"\r")
            if not line.strip():
                continue
            m = _DATE.match(line)
            date = m.group(1).decode() if m else None
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                rows.append(
                    (i, date, line.decode("utf-8", "replace"), "not_utf8", f"byte {exc.start}: {exc.reason}", None)
                )
                continue
            parts = text.split(",")
            if len(parts) != len(FIELDS):
                rows.append((i, date, text, "wrong_field_count", f"{len(parts)} fields, expected {len(FIELDS)}", None))
                continue
            rows.append((i, date, text, None, None, [p.strip() for p in parts]))
        lines = pd.DataFrame(rows, columns=["source_line", "date_hint", "raw", "pre_reason", "detail", "fields"])
        lines["owner"] = _owner_sessions(lines["date_hint"].tolist())
        if len(lines) and lines["owner"].isna().all():
            return whole_file(
                "no_readable_dates",
                f"{path}: none of its {len(lines)} data lines has a date within the trading calendar",
                lines["raw"].iloc[0],
            )
        lines["ticker"] = ticker
        lines["source_file"] = rel
        return _index_lines(lines)

    def prices(self, session: dt.date) -> RawBatch:
        target = np.datetime64(session, "D")
        records, rejects = [], []
        for path in self._files():
            parsed = self._parse(path)
            if parsed.file_reject is not None:
                rejects.append(parsed.file_reject)
                continue
            records.append(parsed.records.get(target))
            rejects.append(parsed.rejects.get(target))
        records = [r for r in records if not r.empty]
        df = (
            pd.concat(records, ignore_index=True)
            if records
            else pd.DataFrame(columns=["ticker", "source_file", "source_line", "raw", *FIELDS])
        )
        return RawBatch(df, concat_rejects(rejects))

"""Yahoo-format per-ticker CSV files: ``<TICKER>.csv`` with
``Date,Open,High,Low,Close,Adj Close,Volume``.

Each file is parsed once per process (cached on path, size and mtime) into
lines tagged with the session that owns them: a line's own date if it is a
session, else the next session (a Saturday bar is quarantined with Monday's
partition); a line whose date cannot be read goes with the next readable line
(files are date-sorted), so every line is reported in exactly one partition.
The lines of all parsed files are then held in one frame sorted by owning
session (then file, then line), rebuilt only when the directory's files or a
file's signature change, so a partition is one slice rather than one per file.

Only ``<TICKER>.csv`` files that resolve inside the directory are read; any
other entry is a notice, a missing universe ticker too. A file that cannot be
read or parsed, for whatever reason, is one whole-file reject naming the
error, and never costs the other files their rows. A last line without its
final newline may have been cut inside its last field (a volume of 2,316,500
read as 23): it is quarantined as ``no_final_newline`` until the file is
complete.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.ingest.sources.base import Notice, RawBatch, SourceError, locate_file, ticker_of
from quant_assets.core.ingest.validate import concat_rejects, make_rejects, utf8_safe

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

    def bounds(self, owner: np.datetime64) -> tuple[int, int]:
        return int(np.searchsorted(self.owners, owner, "left")), int(np.searchsorted(self.owners, owner, "right"))


@dataclass
class _ParsedFile:
    records: pd.DataFrame | None  # well-formed lines as text fields, in file order
    record_owners: np.ndarray | None  # the session owning each record
    rejects: pd.DataFrame | None  # malformed lines, already in quarantine form, in file order
    reject_owners: np.ndarray | None
    file_reject: pd.DataFrame | None  # a whole-file problem, reported in every partition


def _index_lines(lines: pd.DataFrame) -> _ParsedFile:
    """Split a file's lines into records and rejects once, each with its owning sessions."""
    owners = lines["owner"].to_numpy(dtype="datetime64[D]")
    bad = lines["pre_reason"].notna().to_numpy()
    good = lines[~bad]
    fields = pd.DataFrame(good["fields"].tolist(), columns=FIELDS, index=good.index)
    records = pd.concat([good[["ticker", "source_file", "source_line", "raw"]], fields], axis=1)
    rejects = lines[bad]
    rejects = make_rejects(rejects, "", rejects["detail"].astype("string")).assign(
        reason=rejects["pre_reason"].astype("string").to_numpy()
    )
    return _ParsedFile(records, owners[~bad], rejects, owners[bad], None)


@dataclass
class _Index:
    """The lines of every cached file in one frame per kind, sorted by owning session, then file, then line.

    A session's rows are then one slice in the order a file-by-file concatenation gives them (files in name
    order); whole-file rejects, one per file and partition, are merged in by file name.
    """

    key: tuple  # (name, signature) of every file it holds, in name order: valid while they are unchanged
    records: _Sorted
    rejects: _Sorted
    reject_names: np.ndarray  # the file name of each row of ``rejects.frame``
    file_rejects: list[tuple[str, pd.DataFrame]]

    @classmethod
    def of(cls, key: tuple, parsed: dict[str, _ParsedFile]) -> _Index:
        lines = {n: p for n, p in parsed.items() if p.file_reject is None}
        # Files without records are left out as a session's own concatenation leaves them out: an empty
        # frame's columns are typed otherwise and would change the dtypes of the concatenation.
        recs = [(p.records, p.record_owners) for p in lines.values() if not p.records.empty]
        rejs = [(n, p.rejects, p.reject_owners) for n, p in lines.items() if not p.rejects.empty]
        records = (
            _Sorted.of(pd.concat([r for r, _ in recs], ignore_index=True), np.concatenate([o for _, o in recs]))
            if recs
            else _Sorted(np.array([], dtype="datetime64[D]"), pd.DataFrame())
        )
        names = np.array([n for n, r, _ in rejs for _ in range(len(r))], dtype=object)
        owners = np.concatenate([o for _, _, o in rejs]) if rejs else np.array([], dtype="datetime64[D]")
        order = np.argsort(owners, kind="stable")
        rejects = _Sorted(owners[order], concat_rejects([r for _, r, _ in rejs]).iloc[order].reset_index(drop=True))
        file_rejects = [(n, p.file_reject) for n, p in parsed.items() if p.file_reject is not None]
        return cls(key, records, rejects, names[order], file_rejects)

    def session(self, owner: np.datetime64, failed: list[tuple[str, pd.DataFrame]], notices: list[Notice]) -> RawBatch:
        """The rows ``owner`` owns, with the whole-file rejects of every partition (``failed``: this call's)."""
        lo, hi = self.records.bounds(owner)
        records = self.records.frame.iloc[lo:hi].reset_index(drop=True)
        if records.empty:
            records = pd.DataFrame(columns=["ticker", "source_file", "source_line", "raw", *FIELDS])
        rlo, rhi = self.rejects.bounds(owner)
        rejects = self.rejects.frame.iloc[rlo:rhi]
        whole = self.file_rejects + failed
        if whole:  # in file order, as file-by-file reading reports them
            names = np.concatenate([self.reject_names[rlo:rhi], np.array([n for n, _ in whole], dtype=object)])
            rejects = pd.concat([rejects, *(r for _, r in whole)]).iloc[np.argsort(names, kind="stable")]
        read = (hi - lo) + (rhi - rlo) + len(whole)
        return RawBatch(records, concat_rejects([rejects]), records_read=read, notices=notices)


def _owner_sessions(dates: list[str | None]) -> np.ndarray:
    """Session owning each line: its date's session on/after, unreadable dates back-filled.

    A date outside the calendar (a typo'd year) counts as unreadable. NaT only
    when no line of the file has a usable date.
    """
    parsed = pd.to_datetime(pd.Series(dates, dtype="string"), format="%Y-%m-%d", errors="coerce")
    cal = sessions.calendar()
    days = parsed.to_numpy(dtype="datetime64[D]")
    usable = ~np.isnat(days) & (days >= cal.sessions[0]) & (days <= cal.sessions[-1])
    days = pd.Series(np.where(usable, days, np.datetime64("NaT"))).bfill().ffill().to_numpy(dtype="datetime64[D]")
    idx = np.searchsorted(cal.sessions, days, side="left")
    inside = ~np.isnat(days) & (idx < len(cal.sessions)) & (days >= cal.sessions[0])
    owner = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[D]")
    owner[inside] = cal.sessions[idx[inside]]
    return owner


def _whole_file(ticker: str, name: str, reason: str, detail: str, raw: str | None = None) -> _ParsedFile:
    """A problem with the file as a whole: no line, reported in every partition the file would feed."""
    rec = pd.DataFrame({"ticker": [ticker], "source_file": [name], "source_line": [pd.NA], "raw": [raw]})
    return _ParsedFile(None, None, None, None, make_rejects(rec, reason, detail))


def _split_line(i: int, line: bytes, cut: bool) -> tuple:
    """(line number, date hint, text, reason or None, detail, fields) for one data line.

    ``cut``: the file's last line, not ended by a newline. With all its fields it is still suspect.
    """
    m = _DATE.match(line)
    date = m.group(1).decode() if m else None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (i, date, line.decode("utf-8", "replace"), "not_utf8", f"byte {exc.start}: {exc.reason}", None)
    parts = text.split(",")
    if len(parts) != len(FIELDS):
        return (i, date, text, "wrong_field_count", f"{len(parts)} fields, expected {len(FIELDS)}", None)
    if cut:
        detail = "last line has no final newline: the file may have been cut inside its last field"
        return (i, date, text, "no_final_newline", detail, None)
    return (i, date, text, None, None, [p.strip() for p in parts])


def _parse_blob(blob: bytes, ticker: str, name: str, shown: str) -> _ParsedFile:
    """Parse a file's bytes (``shown`` is its path for messages)."""
    if not blob.strip():
        return _whole_file(ticker, name, "empty_file", f"{shown} is empty (no header, no rows)")
    raw_lines = blob.split(b"\n")
    header = raw_lines[0].rstrip(b"\r").lstrip(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    if [h.strip() for h in header.split(",")] != HEADER:
        detail = f"{shown}: expected header {','.join(HEADER)!r}, got {header[:120]!r}"
        return _whole_file(ticker, name, "bad_header", detail, header)
    last = len(raw_lines) if not blob.endswith(b"\n") else None
    rows = [
        _split_line(i, line.rstrip(b"\r"), i == last) for i, line in enumerate(raw_lines[1:], start=2) if line.strip()
    ]
    lines = pd.DataFrame(rows, columns=["source_line", "date_hint", "raw", "pre_reason", "detail", "fields"])
    lines["owner"] = _owner_sessions(lines["date_hint"].tolist())
    if len(lines) and lines["owner"].isna().all():
        detail = f"{shown}: none of its {len(lines)} data lines has a date within the trading calendar"
        return _whole_file(ticker, name, "no_readable_dates", detail, lines["raw"].iloc[0])
    lines["ticker"] = ticker
    lines["source_file"] = name
    return _index_lines(lines)


class YahooCsvPrices:
    """Daily bars from a directory of Yahoo-format CSV files."""

    def __init__(self, directory: str | Path, universe: frozenset[str] | None = None):
        self.directory = Path(directory)
        self.name = utf8_safe(f"yahoo_csv({self.directory})")
        self._universe = universe
        self._cache: dict[Path, tuple[tuple, _ParsedFile]] = {}
        self._index: _Index | None = None

    def _listing(self) -> tuple[dict[str, str], list[Notice]]:
        """Data files (name -> ticker) of the directory, and a notice for every other entry."""
        if not self.directory.is_dir():
            raise SourceError(f"price directory not found or not a directory: {self.directory}")
        files, notices = {}, []
        for name in sorted(os.listdir(self.directory)):
            ticker = ticker_of(name[: -len(".csv")]) if name.endswith(".csv") else None
            if ticker is None:
                detail = f"not a <TICKER>.csv file in {self.directory}; not read"
                notices.append(Notice("unexpected_file", name, detail))
            else:
                files[name] = ticker
        if not files:
            raise SourceError(f"no *.csv files in price directory {self.directory}")
        return files, notices

    def universe(self) -> frozenset[str]:
        if self._universe is not None:
            return self._universe
        return frozenset(self._listing()[0].values())

    def _parse(self, name: str, ticker: str, root: Path) -> tuple[_ParsedFile, tuple | None]:
        """The parsed file and the signature it is cached on (real path, size, mtime); any failure is a
        whole-file reject, without a signature: it is tried again next time.

        ``root`` is the resolved directory: a file that links outside it is never read.
        """
        path = self.directory / name
        try:
            st = os.lstat(path)
        except OSError:
            st = None  # gone since the listing: ``locate_file`` names the error
        if st is not None and stat.S_ISREG(st.st_mode):
            real = root / name  # not a link, in a directory whose real path is ``root``: no need to resolve it
        else:
            found = locate_file(path, root)
            if found.real is None:
                return _whole_file(ticker, name, found.reason, found.detail), None
            real, st = found.real, None
        try:
            st = st or os.stat(real)
            sig = (real, st.st_size, st.st_mtime_ns)
            hit = self._cache.get(path)
            if hit and hit[0] == sig:
                return hit[1], sig
            parsed = _parse_blob(real.read_bytes(), ticker, name, str(path))
        except OSError as exc:
            return _whole_file(ticker, name, "unreadable_file", f"cannot read {path}: {exc.strerror or exc}"), None
        except Exception as exc:  # noqa: BLE001 - one file's failure must not cost the other files their rows
            return _whole_file(ticker, name, "parse_error", f"{path}: {type(exc).__name__}: {exc}"), None
        self._cache[path] = (sig, parsed)
        return parsed, sig

    def prices(self, session: dt.date) -> RawBatch:
        files, notices = self._listing()
        root = Path(os.path.realpath(self.directory))
        parsed, failed, key = {}, [], []
        for name, ticker in files.items():
            got, sig = self._parse(name, ticker, root)
            if sig is None:
                failed.append((name, got.file_reject))
            else:
                parsed[name] = got
                key.append((name, sig))
        if self._index is None or self._index.key != tuple(key):
            self._index = _Index.of(tuple(key), parsed)
        missing = sorted((self._universe or frozenset()) - set(files.values()))
        notices += [Notice("missing_file", t, f"in the universe but no {t}.csv in {self.directory}") for t in missing]
        return self._index.session(np.datetime64(session, "D"), failed, notices)

"""StockNet preprocessed tweets: ``<TICKER>/<YYYY-MM-DD>`` files of JSON lines.

Aggregated per ticker and UTC day into tweet count, unique users, lexicon
word counts and mean sentiment. A file named for day F holds tweets created
on UTC day F and, in this data set, the late evening of F-1 (about 7% of
tweets), so a partition reads its own days' files plus the next day's and
takes the tweets whose UTC day it owns. Line-level problems are reported by
the partition that owns the file's date.

Only ticker directories and day files that resolve inside the tweet root are
read. A ticker directory that cannot be read (a link loop, a link leaving the
root) is a reject in every partition; a day file that cannot be read (a
directory, a loop, a link leaving the root) a reject of the partition owning
its day; an entry that is not a ticker directory, and a universe ticker
without one, are notices. Any failure to parse one line quarantines that line
with the error named; a UTF-8 byte-order mark opening a file is skipped.

A partition's day files are the next partition's too (the day after its last
owned day), so the files parsed by the previous call are kept, each on its
ticker, path, size and mtime: a file that changed since is read again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.ingest.lexicon import score_tokens
from quant_assets.core.ingest.sources.base import Notice, RawBatch, SourceError, locate, locate_file, ticker_of
from quant_assets.core.ingest.validate import concat_rejects, utf8_safe, validate_tweets

RAW_PREVIEW = 500
BOM = b"\xef\xbb\xbf"
REJECT_FIELDS = ["ticker", "source_file", "source_line", "reason", "detail", "raw"]
TWEET_FIELDS = ["ticker", "source_file", "source_line", "file_date", "created_at", "user_id", "text", "raw"]
AGGREGATE_FIELDS = [
    "ticker",
    "day",
    "tweet_count",
    "unique_users",
    "pos_words",
    "neg_words",
    "sentiment",
    "source_file",
    "source_line",
    "raw",
]
# A JSON escape of a UTF-16 surrogate: only lines holding one can decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate_field(obj: dict) -> str | None:
    """The first field the aggregates use that holds a string not encodable as UTF-8 (a lone surrogate)."""
    for name in ("created_at", "user_id_str", "text"):
        value = obj.get(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return name
    return None


def _parse_line(line: bytes, base: dict, file_date: dt.date) -> tuple[dict | None, dict | None]:
    """One tweet line as (record, None) or (None, reject); never raises for a bad line."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = line[:RAW_PREVIEW].decode("utf-8", "replace")
        return None, dict(base, reason="not_utf8", detail=f"byte {exc.start}: {exc.reason}", raw=raw)
    raw = text[:RAW_PREVIEW]
    try:
        obj = json.loads(text)
    except RecursionError:
        detail = "JSON nested deeper than the parser's recursion limit"
        return None, dict(base, reason="nesting_too_deep", detail=detail, raw=raw)
    except Exception as exc:  # noqa: BLE001 - a decode error, a number beyond int limits...: this line, not the run
        return None, dict(base, reason="malformed_json", detail=f"{type(exc).__name__}: {exc}", raw=raw)
    if not isinstance(obj, dict):
        return None, dict(base, reason="malformed_json", detail="line is not a JSON object", raw=raw)
    bad = _lone_surrogate_field(obj) if _SURROGATE_ESCAPE.search(text) else None
    if bad:
        detail = f"{bad} holds a lone UTF-16 surrogate (not valid Unicode)"
        return None, dict(base, reason="invalid_unicode", detail=detail, raw=raw)
    fields = dict(created_at=obj.get("created_at"), user_id=obj.get("user_id_str"), text=obj.get("text"))
    return dict(base, file_date=file_date, raw=raw, **fields), None


def _file_reject(ticker: str, source_file: str, reason: str, detail: str) -> dict:
    """A problem with a whole file or ticker directory: a reject without a line."""
    return dict(ticker=ticker, source_file=source_file, source_line=None, reason=reason, detail=detail, raw=None)


def _parse_file(blob: bytes, ticker: str, file_date: dt.date) -> tuple[list[dict], list[dict], int]:
    """Records and rejects of one tweet file's bytes, and how many records (non-blank lines) it holds."""
    rel = f"{ticker}/{file_date.isoformat()}"
    if blob.startswith(BOM):
        blob = blob[len(BOM) :]
    records, rejects, count = [], [], 0
    for i, line in enumerate(blob.split(b"\n"), start=1):
        if not line.strip():
            continue
        count += 1
        record, reject = _parse_line(line, dict(ticker=ticker, source_file=rel, source_line=i), file_date)
        (records if record else rejects).append(record or reject)
    return records, rejects, count


def aggregate_tweets(tweets: pd.DataFrame) -> pd.DataFrame:
    """Per ticker and UTC day: count, unique users, lexicon counts, mean sentiment (``tweets`` not empty).

    A partition holds a few hundred tweets, where pandas' per-group machinery costs more than the work:
    groups are counted in plain Python. The mean alone is pandas' grouped mean, whose summation decides
    the last bits of the sentiment; its sorted groups give the row order.
    """
    keys = zip(tweets["ticker"].tolist(), tweets["day"].tolist(), strict=True)
    pos, neg, score = zip(*map(score_tokens, tweets["text"].tolist()), strict=True)
    groups: dict[tuple, list] = {}
    users, sources = tweets["user_id"].tolist(), tweets["source_file"].tolist()
    for key, user, p, n, source in zip(keys, users, pos, neg, sources, strict=True):
        group = groups.setdefault(key, [0, set(), 0, 0, set()])  # tweets, users, pos, neg, files
        group[0] += 1
        group[1].add(user)
        group[2] += p
        group[3] += n
        group[4].add(source)
    mean = pd.Series(score, index=tweets.index, dtype="float64").groupby([tweets["ticker"], tweets["day"]]).mean()
    rows = [groups[key] for key in mean.index]
    out = pd.DataFrame(
        {
            "ticker": [ticker for ticker, _ in mean.index],
            "day": [day.isoformat() for _, day in mean.index],
            "tweet_count": [g[0] for g in rows],
            "unique_users": [len(g[1]) for g in rows],
            "pos_words": [g[2] for g in rows],
            "neg_words": [g[3] for g in rows],
            "sentiment": mean.to_numpy().round(12),
            "source_file": [";".join(sorted(g[4])) for g in rows],
        }
    )
    return out.assign(source_line=pd.NA, raw=pd.NA)


@dataclass
class _Tree:
    """The tweet root as found: readable ticker directories, and what is wrong or unexpected in it."""

    root: Path  # the resolved tweet root: nothing outside it is read
    tickers: dict[str, Path] = field(default_factory=dict)  # ticker -> resolved directory
    rejects: list[dict] = field(default_factory=list)  # ticker entries that cannot be read
    notices: list[Notice] = field(default_factory=list)


class StockNetTweets:
    """Daily tweet aggregates from a StockNet ``tweet/preprocessed`` directory."""

    def __init__(self, directory: str | Path, universe: frozenset[str] | None = None):
        self.directory = Path(directory)
        self.name = utf8_safe(f"stocknet_tweets({self.directory})")
        self._universe = universe
        self._files: dict[tuple, tuple] = {}  # plain files the last call read: (ticker, path) -> (size, mtime), parse

    def _scan(self) -> _Tree:
        """Every entry of the tweet root: a readable ticker directory, a reject or a notice."""
        if not self.directory.is_dir():
            raise SourceError(f"tweet directory not found or not a directory: {self.directory}")
        tree = _Tree(Path(os.path.realpath(self.directory)))
        seen = set()
        with os.scandir(self.directory) as entries:
            listing = sorted(entries, key=lambda e: e.name)
        for entry in listing:
            name, ticker = entry.name, ticker_of(entry.name)
            if ticker is None:
                tree.notices.append(Notice("unexpected_file", name, f"not a ticker directory of {self.directory}"))
                continue
            seen.add(ticker)
            if entry.is_dir(follow_symlinks=False):  # not a link, in a directory whose real path is the root
                tree.tickers[ticker] = tree.root / name
                continue
            found = locate(self.directory / name, tree.root)
            if found.real is None:
                tree.rejects.append(_file_reject(ticker, name, found.reason, found.detail))
            elif not stat.S_ISDIR(found.mode):
                detail = f"a file where a ticker directory was expected in {self.directory}; not read"
                tree.notices.append(Notice("unexpected_file", name, detail))
            else:
                tree.tickers[ticker] = found.real
        for ticker in sorted((self._universe or frozenset()) - seen):
            detail = f"in the universe but no {ticker}/ directory in {self.directory}"
            tree.notices.append(Notice("missing_file", ticker, detail))
        return tree

    def universe(self) -> frozenset[str]:
        if self._universe is not None:
            return self._universe
        return frozenset(self._scan().tickers)

    def _read_day(self, root: Path, tdir: Path, ticker: str, file_date: dt.date, kept: dict) -> tuple:
        """One ticker's file for ``file_date``: nothing when there is none (no tweets that day).

        A plain file (``tdir`` is resolved) is taken from the previous call's files while its size and
        mtime are unchanged, and kept in ``kept`` for the next call; a link is resolved and read every time.
        """
        path, rel = tdir / file_date.isoformat(), f"{ticker}/{file_date.isoformat()}"
        try:
            st = os.lstat(path)
        except OSError:
            return [], [], 0
        real, sig = path, (st.st_size, st.st_mtime_ns)
        if not stat.S_ISREG(st.st_mode):  # a link, or not a file: resolved and checked, never kept
            found = locate_file(path, root)
            if found.real is None:
                return [], [_file_reject(ticker, rel, found.reason, found.detail)], 1
            real, sig = found.real, None
        key = (ticker, path)  # a ticker directory linking to another reads the same files as another ticker
        hit = self._files.get(key)
        if sig and hit and hit[0] == sig:
            kept[key] = hit
            return hit[1]
        try:
            parsed = _parse_file(real.read_bytes(), ticker, file_date)
        except OSError as exc:  # not kept: a file unreadable now (its permissions) may be readable next time
            return [], [_file_reject(ticker, rel, "unreadable_file", f"cannot read {path}: {exc.strerror or exc}")], 1
        if sig:
            kept[key] = (sig, parsed)
        return parsed

    def alt(self, session: dt.date) -> RawBatch:
        days = sessions.owned_calendar_days(session)
        tree = self._scan()
        records, rejects, read, kept = [], list(tree.rejects), len(tree.rejects), {}
        for ticker, tdir in tree.tickers.items():
            for file_date in days + [days[-1] + dt.timedelta(days=1)]:
                recs, rejs, count = self._read_day(tree.root, tdir, ticker, file_date, kept)
                records.extend(recs)
                if file_date in days:  # the next day's file lends its late-evening tweets, not its problems
                    rejects.extend(rejs)
                    read += count
        self._files = kept
        aggregates, tweet_rejects = self._aggregate(pd.DataFrame(records, columns=TWEET_FIELDS), days)
        line_rejects = pd.DataFrame(rejects, columns=REJECT_FIELDS, dtype=object)  # typed by concat_rejects
        return RawBatch(aggregates, concat_rejects([line_rejects, tweet_rejects]), read, tree.notices)

    def _aggregate(self, tweets: pd.DataFrame, days: list[dt.date]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Aggregates of the valid tweets of ``days``, and the rejects of the files those days own."""
        clean, rejects = validate_tweets(tweets, self._universe)
        if not rejects.empty:
            owned = tweets.loc[tweets["file_date"].isin(days), ["source_file", "source_line"]]
            keys = set(owned.itertuples(index=False, name=None))
            rejects = rejects[
                [k in keys for k in rejects[["source_file", "source_line"]].itertuples(index=False, name=None)]
            ]
        clean = clean[clean["day"].isin(days)] if not clean.empty else clean
        return (aggregate_tweets(clean) if not clean.empty else pd.DataFrame(columns=AGGREGATE_FIELDS)), rejects

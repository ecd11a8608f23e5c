"""StockNet preprocessed tweets: ``<TICKER>/<YYYY-MM-DD>`` files of JSON lines.

Aggregated per ticker and UTC day into tweet count, unique users, lexicon
word counts and mean sentiment. A file named for day F holds tweets created
on UTC day F and, in this data set, the late evening of F-1 (about 7% of
tweets), so a partition reads its own days' files plus the next day's and
takes the tweets whose UTC day it owns. Line-level problems are reported by
the partition that owns the file's date.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from quant_assets.core import time as qtime
from quant_assets.core.lexicon import score_tokens
from quant_assets.core.sources.base import RawBatch, SourceError
from quant_assets.core.validate import concat_rejects, validate_tweets

RAW_PREVIEW = 500


def _read_lines(path: Path, ticker: str, file_date: dt.date) -> tuple[list[dict], list[dict]]:
    """Parse one tweet file into records and line-level rejects."""
    rel = f"{ticker}/{file_date.isoformat()}"
    records, rejects = [], []
    try:
        blob = path.read_bytes()
    except OSError as exc:
        return [], [
            dict(
                ticker=ticker,
                source_file=rel,
                source_line=None,
                reason="unreadable_file",
                detail=f"cannot read {path}: {exc.strerror or exc}",
                raw=None,
            )
        ]
    for i, line in enumerate(blob.split(b"\n"), start=1):
        if not line.strip():
            continue
        base = dict(ticker=ticker, source_file=rel, source_line=i)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(
                dict(
                    base,
                    reason="not_utf8",
                    detail=f"byte {exc.start}: {exc.reason}",
                    raw=line[:RAW_PREVIEW].decode("utf-8", "replace"),
                )
            )
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            rejects.append(dict(base, reason="malformed_json", detail=str(exc), raw=text[:RAW_PREVIEW]))
            continue
        if not isinstance(obj, dict):
            rejects.append(
                dict(base, reason="malformed_json", detail="line is not a JSON object", raw=text[:RAW_PREVIEW])
            )
            continue
        records.append(
            dict(
                base,
                file_date=file_date,
                created_at=obj.get("created_at"),
                user_id=obj.get("user_id_str"),
                text=obj.get("text"),
                raw=text[:RAW_PREVIEW],
            )
        )
    return records, rejects


def aggregate_tweets(tweets: pd.DataFrame) -> pd.DataFrame:
    """Per ticker and UTC day: count, unique users, lexicon counts, mean sentiment."""
    scores = pd.DataFrame(
        tweets["text"].map(score_tokens).tolist(), columns=["pos", "neg", "score"], index=tweets.index
    )
    df = pd.concat([tweets[["ticker", "day", "user_id", "source_file"]], scores], axis=1)
    out = df.groupby(["ticker", "day"], sort=True).agg(
        tweet_count=("user_id", "size"),
        unique_users=("user_id", "nunique"),
        pos_words=("pos", "sum"),
        neg_words=("neg", "sum"),
        sentiment=("score", "mean"),
        source_file=("source_file", lambda s: ";".join(sorted(set(s)))),
    )
    out = out.reset_index()
    out["day"] = out["day"].map(lambda d: d.isoformat())
    out["sentiment"] = out["sentiment"].round(12)
    return out.assign(source_line=pd.NA, raw=pd.NA)


class StockNetTweets:
    """Daily tweet aggregates from a StockNet ``tweet/preprocessed`` directory."""

    def __init__(self, directory: str | Path, universe: frozenset[str] | None = None):
        self.directory = Path(directory)
        self.name = f"stocknet_tweets({self.directory})"
        self._universe = universe

    def _ticker_dirs(self) -> list[Path]:
        if not self.directory.is_dir():
            raise SourceError(f"tweet directory not found or not a directory: {self.directory}")
        return sorted(p for p in self.directory.iterdir() if p.is_dir())

    def universe(self) -> frozenset[str]:
        if self._universe is not None:
            return self._universe
        return frozenset(p.name.upper() for p in self._ticker_dirs())

    def alt(self, session: dt.date) -> RawBatch:
        days = qtime.owned_calendar_days(session)
        file_dates = days + [days[-1] + dt.timedelta(days=1)]
        records, rejects = [], []
        for tdir in self._ticker_dirs():
            for fdate in file_dates:
                path = tdir / fdate.isoformat()
                if not path.is_file():
                    continue
                recs, rejs = _read_lines(path, tdir.name.upper(), fdate)
                owned = fdate in days
                records.extend(recs)
                if owned:
                    rejects.extend(rejs)
        columns = ["ticker", "source_file", "source_line", "file_date", "created_at", "user_id", "text", "raw"]
        recs = pd.DataFrame(records, columns=columns)
        line_rejects = pd.DataFrame(
            rejects, columns=["ticker", "source_file", "source_line", "reason", "detail", "raw"]
        )
        clean, tweet_rejects = validate_tweets(recs)
        owned_files = recs["file_date"].isin(days) if not recs.empty else pd.Series(dtype=bool)
        keys = set(recs.loc[owned_files, ["source_file", "source_line"]].itertuples(index=False, name=None))
        if not tweet_rejects.empty:
            mine = [k in keys for k in tweet_rejects[["source_file", "source_line"]].itertuples(index=False, name=None)]
            tweet_rejects = tweet_rejects[mine]
        clean = clean[clean["day"].isin(days)] if not clean.empty else clean
        aggregates = (
            aggregate_tweets(clean)
            if not clean.empty
            else pd.DataFrame(
                columns=[
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
            )
        )
        return RawBatch(aggregates, concat_rejects([line_rejects, tweet_rejects]))

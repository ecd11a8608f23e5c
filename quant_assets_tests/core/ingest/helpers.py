"""The ingest tests' shared files and readers: price CSV lines and tweet JSON lines written into ``tmp_path``, the
lake rows and quarantine rows they must become.

Prices cover the sessions of 2024-03-25..2024-04-02: Good Friday (03-29) and the weekend fold into Monday 04-01.
Tweets use session Tue 2024-03-26, which owns the calendar day 03-26 and also reads the 03-27 file for late tweets.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.ingest.pipeline import ingest_prices
from quant_assets.core.storage import lake

# ---------------------------------------------------------------- prices

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
SESSIONS = ["2024-03-25", "2024-03-26", "2024-03-27", "2024-03-28", "2024-04-01", "2024-04-02"]
MAR25, MAR26, MAR27, MAR28, APR01, APR02 = SESSIONS
GOOD_FRIDAY, SATURDAY = "2024-03-29", "2024-03-30"
VALUE_COLS = ["open", "high", "low", "close", "adj_close", "volume"]


@dataclass(frozen=True)
class Bad:
    """A line that must be quarantined, by the partition ``session``, with ``reason``."""

    text: str | bytes
    reason: str
    session: str
    detail: str  # a fragment the quarantine detail must contain


def bar(day: str, o=10.0, h=11.0, lo=9.0, c=10.5, adj=10.25, v=1000) -> str:
    return f"{day},{o},{h},{lo},{c},{adj},{v}"


def good(*days: str) -> list[str]:
    return [bar(d, c=10.0 + i / 8) for i, d in enumerate(days)]  # distinct closes per day


def write_csv(path: Path, lines: list, header: str = HEADER, final_newline: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [header.encode()] + [(x.text if isinstance(x, Bad) else x) for x in lines]
    blob = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in body)
    path.write_bytes(blob + (b"\n" if final_newline else b""))


def ingest_all_prices(source, root: Path, days=SESSIONS) -> dict[str, object]:
    return {s: ingest_prices(source, dt.date.fromisoformat(s), root) for s in days}


def stored_prices(root: Path, days=SESSIONS) -> set[tuple]:
    """(partition, ticker, source_file, source_line, open, high, low, close, adj_close, volume) in the lake."""
    out = set()
    for s in days:
        df = lake.read_partition(root, "raw_prices", dt.date.fromisoformat(s))
        if df.empty:
            continue
        assert (df["event_time"] == sessions.session_close(s)).all()
        for r in df.itertuples(index=False):
            out.add((s, r.ticker, r.source_file, r.source_line, *(getattr(r, c) for c in VALUE_COLS)))
    return out


def quarantined(root: Path, dataset: str, days) -> pd.DataFrame:
    """Every quarantine row of ``sessions``, with the partition that holds it."""
    parts = []
    for s in days:
        df = lake.read_partition(root, f"quarantine/{dataset}", dt.date.fromisoformat(s))
        if not df.empty:
            parts.append(df.assign(session=s))
    cols = ["session", "ticker", "source_file", "source_line", "reason", "detail", "raw"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def expected_row(session: str, ticker: str, line_no: int, text: str) -> tuple:
    _, o, h, lo, c, adj, v = text.split(",")
    return (session, ticker, f"{ticker}.csv", line_no, float(o), float(h), float(lo), float(c), float(adj), int(v))


def clean_rows(ticker: str, lines: list) -> set[tuple]:
    """The lake rows the valid lines of a file must become (header is line 1)."""
    return {
        expected_row(text[:10], ticker, n, text) for n, text in enumerate(lines, start=2) if not isinstance(text, Bad)
    }


# ---------------------------------------------------------------- tweets

TWEET_SESSION = dt.date(2024, 3, 26)  # owns 2024-03-26, also reads the 2024-03-27 file
AT = "Tue Mar 26 15:00:00 +0000 2024"
MISSING = object()  # leave the key out of the JSON line


def tweet(text=("aapl", "bullish", "buy"), created_at=AT, user="u1", **overrides) -> str:
    obj = {"text": list(text) if isinstance(text, tuple) else text, "created_at": created_at, "user_id_str": user}
    obj.update(overrides)
    return json.dumps({k: v for k, v in obj.items() if v is not MISSING})


# Three good tweets of AAA on 2024-03-26: 2 users, 3 positive and 1 negative word, scores 1, -1, 1.
AAA_GOOD = [
    tweet(("$", "aapl", "bullish", "buy"), "Tue Mar 26 14:00:00 +0000 2024", "u1"),
    tweet(("aapl", "crash"), "Tue Mar 26 15:30:00 +0000 2024", "u2"),
    tweet(("aapl", "to", "the", "moon"), "Tue Mar 26 16:45:00 +0000 2024", "u1"),
]
AAA_AGG = {"tweet_count": 3, "unique_users": 2, "pos_words": 3, "neg_words": 1, "sentiment": 1 / 3}
BBB_GOOD = [tweet(("bbb", "downgrade"), AT, "u9")]
BBB_AGG = {"tweet_count": 1, "unique_users": 1, "pos_words": 0, "neg_words": 1, "sentiment": -1.0}


def write_tweets(path: Path, lines: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")


def stored_alt(root: Path, session: dt.date) -> dict[tuple[str, str], dict]:
    df = lake.read_partition(root, "alt_data", session)
    if df.empty:
        return {}
    cols = ["tweet_count", "unique_users", "pos_words", "neg_words", "sentiment"]
    return {(r["ticker"], r["day"].isoformat()): {c: r[c] for c in cols} for _, r in df.iterrows()}


def assert_aggregates(root: Path, session: dt.date, expected: dict) -> None:
    got = stored_alt(root, session)
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        assert got[key] == pytest.approx(want), key

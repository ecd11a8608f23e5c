"""Receipts: what a step gave for inputs it names by a key, kept so that the same inputs again cost a look-up.

A receipt is ``<dataset>/date=D/_receipt-<key>.json``: the key (``hashing.lines_hash``) hashes everything the step's
outcome depends on (what it read, given as names that are their content, and the text of the code that ran), the body is
the outcome. It is written once, after the step's own writes (a reader that finds one finds the outcome stored), and
never replaced. Readers of a dataset's rows take ``part-*.parquet`` files only, so a receipt is no row. The ingest
(``ingest/receipts.py``) and daily scoring (``research/scoring.py``) keep theirs through these primitives.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import TypeVar

from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location

PREFIX = "_receipt-"
T = TypeVar("T")


def path(partition: Location, receipt_key: str) -> Location:
    """The receipt of ``receipt_key`` in a partition directory."""
    return partition / f"{PREFIX}{receipt_key}.json"


def write(where: Location, body: dict) -> None:
    """Write a receipt once: a rerun, or a writer racing this one, gives the same bytes (``fs.put_once``)."""
    fs.put_once(where, json.dumps(body, sort_keys=True, default=str).encode())  # default: dates and times as text


def read(where: Location, parse: Callable[[dict], T], what: str, blob: bytes | None = None) -> T:
    """``parse`` of a receipt's body (its bytes already read: ``blob``); one that does not parse as ``what`` raises
    ``CorruptFile`` naming it."""
    try:
        return parse(json.loads(where.read_bytes() if blob is None else blob))
    except (ValueError, KeyError, TypeError) as exc:
        raise lake.CorruptFile(f"{where}: not {what} ({type(exc).__name__}: {exc})") from None


def present(dataset: Location, days: Iterable[dt.date]) -> set[str]:
    """The receipts (``date=D/_receipt-<key>.json``, relative to the dataset's directory) stored for the months of
    ``days``: one listing per month, whatever the number of days."""
    months = sorted({d.isoformat()[:7] for d in days})
    return {n for month in months for n in fs.names(dataset, f"date={month}*/{PREFIX}*.json")}

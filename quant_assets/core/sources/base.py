"""The adapter interface every market and alternative-data source implements."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from quant_assets.core.validate import empty_rejects

# How long after its event time a value of each dataset is known to the system.
PRICE_LAG = pd.Timedelta(minutes=15)
ALT_LAG = pd.Timedelta(minutes=30)


class SourceError(RuntimeError):
    """A source that cannot be read at all: missing directory, unreadable root."""


@dataclass
class RawBatch:
    """What a source offers for one partition, before row validation.

    ``records`` holds candidate rows (possibly bad); ``rejects`` holds what
    could not even become a row (undecodable bytes, malformed lines, unusable
    files), already in quarantine form.
    """

    records: pd.DataFrame
    rejects: pd.DataFrame = field(default_factory=empty_rejects)


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

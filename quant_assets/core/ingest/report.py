"""What one partition's ingest did: the counts the raw assets' checks and metadata are made of."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from quant_assets.core.ingest.sources.base import Notice
from quant_assets.core.ingest.validate import STEP_FLAG_COLUMNS


@dataclass
class IngestReport:
    dataset: str
    partition: dt.date
    records_read: int = 0  # source records the partition owns, good or bad
    rows_offered: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    rows_excluded: int = 0  # quarantined with a reason in EXCLUDED_REASONS (valid, left out on purpose)
    rows_written: int = 0
    quarantine_written: int = 0
    tickers: int = 0
    first_event: pd.Timestamp | None = None
    last_event: pd.Timestamp | None = None
    reasons: Counter = field(default_factory=Counter)
    notices: list[Notice] = field(default_factory=list)
    step_flags: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STEP_FLAG_COLUMNS))
    preview: pd.DataFrame = field(default_factory=pd.DataFrame)
    schema: list[tuple[str, str]] = field(default_factory=list)
    unchanged: bool = False  # the same delivery as a receipt records: nothing read from the lake, nothing written

    @property
    def rows_damaged(self) -> int:
        return self.rows_quarantined - self.rows_excluded

    @property
    def bad_share(self) -> float:
        """Damaged records quarantined / records read (a whole-file reject counts as one record of each)."""
        damaged = self.rows_damaged
        return damaged / max(self.records_read, damaged) if damaged else 0.0

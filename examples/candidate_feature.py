"""An example candidate feature for ``quant-assets research feature`` (README, "The research loop").

A candidate is written exactly as the library writes its features (quant_assets/core/features/library.py): a
function of the panel (input field -> frame of rows: the lookback's sessions, oldest first; columns: tickers)
returning the last session's value per ticker, and a ``FeatureDef`` naming it with its family, inputs, lookback
and availability lag. Registering it means adding it to the library, where it becomes a storage unit of its own,
and backfilling its family: only the new feature is computed and stored (README, "Registering it").
"""

from __future__ import annotations

import pandas as pd

from quant_assets.core.features.definitions import FeatureDef
from quant_assets.core.ingest.sources.base import PRICE_LAG


def intraday_reversal(panel, window: int) -> pd.Series:
    """Minus the mean intraday return (close / open - 1) of the last ``window`` sessions: names that rose during
    the day are expected to give some of it back."""
    return -(panel["close"] / panel["open"] - 1).iloc[-window:].mean()


INTRADAY_REVERSAL = FeatureDef(
    name="intraday_reversal_3",
    family="price",
    fn=intraday_reversal,
    description="minus the mean close-over-open return of the last 3 sessions",
    inputs=("open", "close"),
    lookback=3,
    lag=PRICE_LAG,
    owner="team:quant-research",
    params={"window": 3},
)

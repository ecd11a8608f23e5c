"""Market and alternative-data adapters behind one interface, and the factory that picks them."""

from __future__ import annotations

from pathlib import Path

from quant_assets.core.ingest.sources.base import AltSource, Notice, PriceSource, RawBatch, SourceError, ticker_of
from quant_assets.core.ingest.sources.stocknet_tweets import StockNetTweets
from quant_assets.core.ingest.sources.synthetic import SyntheticMarket
from quant_assets.core.ingest.sources.yahoo_csv import YahooCsvPrices

SOURCE_KINDS = ("synthetic", "stocknet")


def stocknet_universe(root: Path) -> frozenset[str] | None:
    """Symbols listed in StockNet's ``StockTable`` (the declared universe), if present.

    The universe is configuration: a symbol that is not a valid ticker name is refused with its line,
    rather than becoming a name that reaches file paths and the lake.
    """
    table = root / "StockTable"
    if not table.is_file():
        return None
    try:
        text = table.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read the universe {table}: {exc}") from exc
    symbols = set()
    for number, line in enumerate(text.splitlines()[1:], start=2):
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1].strip():
            symbol = ticker_of(parts[1].strip().lstrip("$"))
            if symbol is None:
                raise SourceError(f"{table}:{number}: symbol {parts[1].strip()!r} is not a valid ticker name")
            symbols.add(symbol)
    return frozenset(symbols)


def make_sources(
    kind: str,
    *,
    seed: int = 42,
    n_tickers: int = 200,
    regime_change: str | None = None,
    stocknet_dir: str | None = None,
) -> tuple[PriceSource, AltSource]:
    """The (prices, alternative data) pair for a configured source kind."""
    if kind == "synthetic":
        kwargs = {"regime_change": regime_change} if regime_change else {}
        market = SyntheticMarket(seed=seed, n_tickers=n_tickers, **kwargs)
        return market, market
    if kind == "stocknet":
        if not stocknet_dir:
            raise SourceError("source 'stocknet' needs stocknet_dir (QUANT_STOCKNET_DIR)")
        root = Path(stocknet_dir).expanduser().resolve()
        if not root.is_dir():
            raise SourceError(f"StockNet directory not found: {root}")
        universe = stocknet_universe(root)
        return (
            YahooCsvPrices(root / "price" / "raw", universe),
            StockNetTweets(root / "tweet" / "preprocessed", universe),
        )
    raise SourceError(f"unknown source kind {kind!r}; expected one of {SOURCE_KINDS}")


__all__ = [
    "AltSource",
    "Notice",
    "PriceSource",
    "RawBatch",
    "SourceError",
    "StockNetTweets",
    "SyntheticMarket",
    "YahooCsvPrices",
    "make_sources",
    "stocknet_universe",
]

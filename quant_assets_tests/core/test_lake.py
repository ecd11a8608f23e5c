"""Idempotent, append-only storage; restatements; the live clock."""

import datetime as dt
import hashlib

import pandas as pd
import pytest

from quant_assets.core import lake
from quant_assets.core.ingest import NotYetAvailable, ingest_alt, ingest_prices
from quant_assets.core.sources import SyntheticMarket, YahooCsvPrices

DAY = dt.date(2024, 3, 4)
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def _files(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_rematerialising_the_same_partition_changes_nothing(lake_root):
    market = SyntheticMarket(seed=5, n_tickers=30)
    first = (ingest_prices(market, DAY, lake_root), ingest_alt(market, DAY, lake_root))
    before = _files(lake_root)
    again = (ingest_prices(market, DAY, lake_root), ingest_alt(market, DAY, lake_root))
    assert [r.rows_written for r in first] == [30, 90]
    assert [r.rows_written for r in again] == [0, 0]
    assert _files(lake_root) == before
    assert len(lake.read_partition(lake_root, "raw_prices", DAY)) == 30
    assert not list(lake_root.rglob(".tmp-*"))


def test_a_fresh_lake_gets_byte_identical_files(tmp_path):
    market = SyntheticMarket(seed=5, n_tickers=30)
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        ingest_prices(market, DAY, root)
    assert _files(a) == _files(b)


def _write_csv(directory, rows):
    directory.mkdir(exist_ok=True)
    (directory / "AAA.csv").write_text(HEADER + "".join(r + "\n" for r in rows))


def test_a_restated_bar_is_a_new_row_and_the_old_one_stays(tmp_path, lake_root):
    src = tmp_path / "csv"
    _write_csv(src, ["2024-03-04,10.0,11.0,9.5,10.5,10.5,1000", "2024-03-05,10.5,11.5,10.0,11.0,11.0,1200"])
    prices = YahooCsvPrices(src)
    ingest_prices(prices, DAY, lake_root)
    correction_time = pd.Timestamp("2024-03-06 12:00", tz="UTC")
    _write_csv(src, ["2024-03-04,10.0,11.0,9.5,10.7,10.7,1000", "2024-03-05,10.5,11.5,10.0,11.0,11.0,1200"])
    report = ingest_prices(YahooCsvPrices(src), DAY, lake_root, now=correction_time)
    assert report.rows_written == 1
    stored = lake.read_partition(lake_root, "raw_prices", DAY).sort_values("ingest_time")
    assert stored["close"].tolist() == [10.5, 10.7]
    assert stored["ingest_time"].tolist() == [pd.Timestamp("2024-03-04 21:15", tz="UTC"), correction_time]
    assert lake.latest_versions(stored, ["ticker", "event_time"])["close"].tolist() == [10.7]
    # Offering the corrected value again adds nothing.
    assert ingest_prices(YahooCsvPrices(src), DAY, lake_root, now=correction_time).rows_written == 0


def test_live_clock_refuses_data_before_it_is_available(lake_root):
    market = SyntheticMarket(seed=5, n_tickers=3)
    too_early = pd.Timestamp("2024-03-04 21:10", tz="UTC")  # close 21:00 + 15 min lag
    with pytest.raises(NotYetAvailable, match="not available until 2024-03-04T21:15"):
        ingest_prices(market, DAY, lake_root, clock="live", now=too_early)
    on_time = pd.Timestamp("2024-03-04 21:20", tz="UTC")
    ingest_prices(market, DAY, lake_root, clock="live", now=on_time)
    stored = lake.read_partition(lake_root, "raw_prices", DAY)
    assert (stored["ingest_time"] == on_time).all()

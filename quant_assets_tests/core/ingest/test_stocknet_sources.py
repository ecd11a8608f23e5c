"""The Yahoo CSV and StockNet tweet adapters on the real StockNet files.

Expected figures were read off the files with grep (see each comment), not
from the adapters.
"""

import datetime as dt

import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.ingest.lexicon import score_tokens
from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
from quant_assets.core.ingest.sources import make_sources, stocknet_universe
from quant_assets.core.storage import lake


@pytest.fixture(scope="module")
def stocknet(stocknet_dir):
    return make_sources("stocknet", stocknet_dir=str(stocknet_dir))


def test_universe_comes_from_stocktable(stocknet_dir):
    universe = stocknet_universe(stocknet_dir)
    assert len(universe) == 88 and {"AAPL", "RDS-B", "BRK-A", "XOM"} <= universe


def test_one_day_of_prices_by_value(stocknet, lake_root):
    prices, _ = stocknet
    report = ingest_prices(prices, dt.date(2014, 1, 2), lake_root)
    # grep -l '^2014-01-02,' price/raw/*.csv | wc -l -> 67 (AGFS, BABA, GMRE start later)
    assert (report.rows_clean, report.rows_quarantined, report.tickers) == (67, 0, 67)
    stored = lake.read_partition(lake_root, "raw_prices", dt.date(2014, 1, 2)).set_index("ticker")
    assert not {"AGFS", "BABA", "GMRE"} & set(stored.index)
    aapl = stored.loc["AAPL"]  # 2014-01-02,79.382858,79.575714,78.860001,79.018570,73.522530,58671200
    assert (aapl["open"], aapl["high"], aapl["low"], aapl["close"]) == (79.382858, 79.575714, 78.860001, 79.01857)
    assert aapl["adj_close"] == 73.52253 and aapl["volume"] == 58671200
    assert aapl["source_file"] == "AAPL.csv" and aapl["source_line"] == 335
    assert aapl["event_time"] == pd.Timestamp("2014-01-02 21:00", tz="UTC")
    assert aapl["ingest_time"] == pd.Timestamp("2014-01-02 21:15", tz="UTC")


def test_a_whole_year_of_one_ticker(stocknet):
    prices, _ = stocknet
    days = sessions.sessions_between("2015-01-01", "2015-12-31")
    rows = [prices.prices(d).records for d in days]
    msft = pd.concat(rows).query("ticker == 'MSFT'")
    assert len(days) == 252 and len(msft) == 252  # grep -c '^2015-' MSFT.csv -> 252
    june15 = msft[msft["date"] == "2015-06-15"].iloc[0]
    assert june15["close"] == "45.480000" and june15["volume"] == "33254500"


def test_tweets_aggregate_per_utc_day_across_files(stocknet, lake_root):
    _, tweets = stocknet
    ingest_alt(tweets, dt.date(2014, 1, 10), lake_root)
    ingest_alt(tweets, dt.date(2014, 1, 13), lake_root)
    fri = lake.read_partition(lake_root, "alt_data", dt.date(2014, 1, 10))
    mon = lake.read_partition(lake_root, "alt_data", dt.date(2014, 1, 13))
    aapl_fri = fri[fri["ticker"] == "AAPL"].set_index("day")["tweet_count"]
    aapl_mon = mon[mon["ticker"] == "AAPL"].set_index("day")["tweet_count"]
    # file AAPL/2014-01-10: 25 tweets of Jan 10; file 2014-01-11: 1 of Jan 10 + 6 of Jan 11;
    # 2014-01-12: 4 of Jan 12; 2014-01-13: 14 of Jan 13; 2014-01-14: 2 of Jan 13 + 22 of Jan 14.
    assert aapl_fri.to_dict() == {dt.date(2014, 1, 10): 26}
    assert aapl_mon.to_dict() == {dt.date(2014, 1, 11): 6, dt.date(2014, 1, 12): 4, dt.date(2014, 1, 13): 16}
    day13 = mon[(mon["ticker"] == "AAPL") & (mon["day"] == dt.date(2014, 1, 13))].iloc[0]
    assert day13["source_file"] == "AAPL/2014-01-13;AAPL/2014-01-14"
    assert day13["event_time"] == pd.Timestamp("2014-01-14 00:00", tz="UTC")
    assert day13["ingest_time"] == pd.Timestamp("2014-01-14 00:30", tz="UTC")
    assert 0 < day13["unique_users"] <= 16 and -1 <= day13["sentiment"] <= 1


def test_unique_users_and_tweet_count_on_a_plain_day(stocknet, lake_root):
    _, tweets = stocknet
    ingest_alt(tweets, dt.date(2014, 1, 6), lake_root)
    stored = lake.read_partition(lake_root, "alt_data", dt.date(2014, 1, 6))
    row = stored[(stored["ticker"] == "AAPL") & (stored["day"] == dt.date(2014, 1, 6))].iloc[0]
    # grep -c '' AAPL/2014-01-06 -> 23, all created Jan 06; 21 distinct user_id_str; file 01-07 has none of Jan 06
    assert (row["tweet_count"], row["unique_users"]) == (23, 21)


def test_lexicon_score():
    assert score_tokens(["$", "aapl", "bullish", "calls", "but", "weak", "guidance"]) == (2, 1, 1 / 3)
    assert score_tokens(["URL", "AT_USER"]) == (0, 0, 0.0)
    assert score_tokens(["Crash", "SELL"]) == (0, 2, -1.0)

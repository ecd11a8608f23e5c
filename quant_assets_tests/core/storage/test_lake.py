"""Idempotent, append-only storage; restatements; the live clock."""

import datetime as dt
import hashlib

import pandas as pd
import pytest

from quant_assets.core.ingest.pipeline import NotYetAvailable, ingest_alt, ingest_prices
from quant_assets.core.ingest.sources import SyntheticMarket, YahooCsvPrices
from quant_assets.core.storage import lake

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


def test_rejects_without_line_or_raw_text_never_hide_each_other(lake_root):
    from quant_assets.core.ingest.pipeline import QUARANTINE_SCHEMA
    from quant_assets.core.ingest.validate import make_rejects

    def reject(ticker, detail):
        records = pd.DataFrame(
            {"ticker": [ticker], "source_file": ["synthetic"], "source_line": [pd.NA], "raw": [pd.NA]}
        )
        return make_rejects(records, "implausible_step", detail)

    first = lake.append_quarantine(lake_root, "raw_prices", DAY, reject("AAA", "x1000"), QUARANTINE_SCHEMA)
    other_name = lake.append_quarantine(lake_root, "raw_prices", DAY, reject("BBB", "x1000"), QUARANTINE_SCHEMA)
    other_detail = lake.append_quarantine(lake_root, "raw_prices", DAY, reject("AAA", "x0.001"), QUARANTINE_SCHEMA)
    again = lake.append_quarantine(lake_root, "raw_prices", DAY, reject("AAA", "x1000"), QUARANTINE_SCHEMA)
    assert [r.rows_written for r in (first, other_name, other_detail, again)] == [1, 1, 1, 0]
    stored = lake.read_partition(lake_root, "quarantine/raw_prices", DAY)
    assert sorted(zip(stored["ticker"], stored["detail"], strict=True)) == [
        ("AAA", "x0.001"),
        ("AAA", "x1000"),
        ("BBB", "x1000"),
    ]


def test_a_backfill_checks_steps_against_the_bars_known_when_the_session_became_available(tmp_path, lake_root):
    src = tmp_path / "csv"
    _write_csv(src, ["2024-03-04,10.0,11.0,9.5,10.5,10.5,1000"])
    ingest_prices(YahooCsvPrices(src), DAY, lake_root)
    # A later restatement of 03-04 to a 100x price (a units error in the correction), then 03-05 is backfilled.
    _write_csv(src, ["2024-03-04,1000,1100,950,1050,1050,1000", "2024-03-05,10.5,11.5,10.0,11.0,11.0,1200"])
    later = pd.Timestamp("2024-03-20 12:00", tz="UTC")
    ingest_prices(YahooCsvPrices(src), DAY, lake_root, now=later)
    report = ingest_prices(YahooCsvPrices(src), dt.date(2024, 3, 5), lake_root, now=later)
    # Compared with 03-04 as known at 03-05's close + 15 min (10.5), not with the restatement (1050).
    assert (report.rows_clean, report.rows_quarantined) == (1, 0)


@pytest.mark.parametrize("dataset", ["../../X", "a/../../b", "..", "/abs", "a//b", "a/."])
def test_a_dataset_name_cannot_leave_the_lake(tmp_path, dataset):
    with pytest.raises(ValueError, match="invalid name"):
        lake.partition_dir(tmp_path, dataset, dt.date(2024, 1, 2))
    assert lake.partition_dir(tmp_path, "quarantine/raw_prices", dt.date(2024, 1, 2)) == (
        tmp_path / "quarantine" / "raw_prices" / "date=2024-01-02"
    )

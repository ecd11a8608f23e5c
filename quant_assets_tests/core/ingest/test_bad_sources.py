"""Bad source files and directories, cut files, absurd values and times, checked by value.

The companion of ``test_bad_inputs`` (whose helpers and calendar this reuses): there one bad line, here
one bad file, link, name or directory entry. Each case asserts the quarantine reason (or the notice)
and the exact rows that still land in the lake, and the records each partition read.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest

from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
from quant_assets.core.ingest.sources import (
    Notice,
    SourceError,
    StockNetTweets,
    SyntheticMarket,
    YahooCsvPrices,
    stocknet_universe,
    yahoo_csv,
)
from quant_assets.core.storage import lake
from quant_assets_tests.core.ingest.helpers import (
    AAA_AGG,
    AAA_GOOD,
    APR02,
    BBB_AGG,
    BBB_GOOD,
    SESSIONS,
    TWEET_SESSION,
    assert_aggregates,
    clean_rows,
    good,
    ingest_all_prices,
    quarantined,
    stored_prices,
    tweet,
    write_csv,
    write_tweets,
)

# ---------------------------------------------------------------- price files


def _neighbours(price_dir: Path) -> set[tuple]:
    """AAA and BBB, one good bar per session: the rows every case must keep."""
    write_csv(price_dir / "AAA.csv", good(*SESSIONS))
    write_csv(price_dir / "BBB.csv", good(*SESSIONS))
    return clean_rows("AAA", good(*SESSIONS)) | clean_rows("BBB", good(*SESSIONS))


def _outside_file(tmp_path: Path) -> Path:
    target = tmp_path / "elsewhere" / "CCC.csv"
    write_csv(target, good(*SESSIONS))
    return target


BROKEN_PRICE_FILES = {
    "symlink_loop": (lambda d, tmp: os.symlink("CCC.csv", d / "CCC.csv"), "unreadable_file", "Too many levels"),
    "dangling_symlink": (
        lambda d, tmp: os.symlink("gone.csv", d / "CCC.csv"),
        "unreadable_file",
        "No such file or directory",
    ),
    "a_directory": (lambda d, tmp: (d / "CCC.csv").mkdir(), "unreadable_file", "is a directory"),
    "a_fifo_that_would_block": (lambda d, tmp: os.mkfifo(d / "CCC.csv"), "unreadable_file", "not a regular file"),
    "link_outside_the_source": (
        lambda d, tmp: os.symlink(_outside_file(tmp), d / "CCC.csv"),
        "link_outside_source",
        "outside the source root",
    ),
}


@pytest.mark.parametrize(("make", "reason", "detail"), BROKEN_PRICE_FILES.values(), ids=BROKEN_PRICE_FILES.keys())
def test_an_unusable_price_file_is_quarantined_in_every_partition(tmp_path, lake_root, make, reason, detail):
    price_dir = tmp_path / "price"
    keep = _neighbours(price_dir)
    make(price_dir, tmp_path)

    reports = ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    q = quarantined(lake_root, "raw_prices", SESSIONS)
    assert q[["session", "ticker", "source_file", "reason"]].values.tolist() == [
        [s, "CCC", "CCC.csv", reason] for s in SESSIONS
    ]
    assert q["source_line"].isna().all() and all(detail in d and "CCC.csv" in d for d in q["detail"])
    assert stored_prices(lake_root) == keep  # nothing of an outside file is read
    assert all((r.records_read, r.rows_clean, r.bad_share) == (3, 2, 1 / 3) for r in reports.values())


def test_a_link_inside_the_source_is_read(tmp_path, lake_root):
    price_dir = tmp_path / "price"
    keep = _neighbours(price_dir)
    os.symlink("AAA.csv", price_dir / "AAB.csv")

    ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    assert quarantined(lake_root, "raw_prices", SESSIONS).empty
    aab = {(s, "AAB", "AAB.csv", *rest) for s, _, _, *rest in clean_rows("AAA", good(*SESSIONS))}
    assert stored_prices(lake_root) == keep | aab


def test_any_parser_failure_costs_only_its_file(tmp_path, lake_root, monkeypatch):
    """The class, not the examples: whatever a file's parse raises is that file's reject, named."""
    price_dir = tmp_path / "price"
    keep = _neighbours(price_dir)
    write_csv(price_dir / "CCC.csv", [*good(*SESSIONS[:2]), "BOOM"])
    split = yahoo_csv._split_line

    def fragile(i, line, cut):
        if line == b"BOOM":
            raise ValueError("parser bug on this line")
        return split(i, line, cut)

    monkeypatch.setattr(yahoo_csv, "_split_line", fragile)
    ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    q = quarantined(lake_root, "raw_prices", SESSIONS)
    assert set(q["reason"]) == {"parse_error"} and q["session"].tolist() == SESSIONS
    assert all(d.endswith("CCC.csv: ValueError: parser bug on this line") for d in q["detail"])
    assert stored_prices(lake_root) == keep


def test_a_file_cut_inside_its_last_field_is_suspect_until_complete(tmp_path, lake_root):
    """A volume of 2,316,500 cut to 23 has all seven fields; only the missing final newline tells."""
    price_dir = tmp_path / "price"
    lines = good(*SESSIONS[:-1])
    cut = f"{APR02},10.0,11.0,9.0,10.5,10.25,23"
    write_csv(price_dir / "AAA.csv", [*lines, cut], final_newline=False)

    reports = ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    q = quarantined(lake_root, "raw_prices", SESSIONS)
    assert q[["session", "source_line", "reason", "raw"]].values.tolist() == [[APR02, 7, "no_final_newline", cut]]
    assert "may have been cut inside its last field" in q.loc[0, "detail"]
    assert stored_prices(lake_root) == clean_rows("AAA", lines)
    assert (reports[APR02].records_read, reports[APR02].rows_clean) == (1, 0)

    with open(price_dir / "AAA.csv", "ab") as fh:  # the writer finishes the file
        fh.write(b"16500\n")
    report = ingest_prices(YahooCsvPrices(price_dir), dt.date.fromisoformat(APR02), lake_root)
    assert (report.rows_written, report.rows_quarantined) == (1, 0)
    stored = lake.read_partition(lake_root, "raw_prices", dt.date.fromisoformat(APR02))
    assert stored["volume"].tolist() == [2316500]


def test_missing_and_unexpected_price_files_are_notices(tmp_path, lake_root):
    price_dir = tmp_path / "price"
    keep = _neighbours(price_dir)
    write_csv(price_dir / "AMZN.CSV", good(*SESSIONS))
    (price_dir / "notes.txt").write_text("not data\n")
    (price_dir / "archive").mkdir()
    os.close(os.open(os.fsencode(price_dir) + b"/\xff.csv", os.O_CREAT | os.O_WRONLY))  # undecodable name

    reports = ingest_all_prices(YahooCsvPrices(price_dir, universe=frozenset({"AAA", "BBB", "AMZN"})), lake_root)

    shown = f"not a <TICKER>.csv file in {price_dir}; not read"
    expected = [
        Notice("unexpected_file", "AMZN.CSV", shown),
        Notice("unexpected_file", "archive", shown),
        Notice("unexpected_file", "notes.txt", shown),
        Notice("unexpected_file", "\\xff.csv", shown),
        Notice("missing_file", "AMZN", f"in the universe but no AMZN.csv in {price_dir}"),
    ]
    assert all(r.notices == expected for r in reports.values())
    assert quarantined(lake_root, "raw_prices", SESSIONS).empty
    assert stored_prices(lake_root) == keep
    assert all((r.records_read, r.bad_share) == (2, 0.0) for r in reports.values())


def test_undecodable_bytes_in_paths_never_reach_a_parquet_writer(tmp_path, lake_root):
    base = Path(os.fsdecode(os.fsencode(tmp_path) + b"/data-\xff"))
    price_dir, tweet_dir = base / "prices", base / "tweets"
    write_csv(price_dir / "AAA.csv", good(*SESSIONS))
    (price_dir / "BBB.csv").write_text("Date;Open\n")
    write_tweets(tweet_dir / "AAA" / "2024-03-26", AAA_GOOD)
    (tweet_dir / "BBB" / "2024-03-26").mkdir(parents=True)

    prices = ingest_prices(YahooCsvPrices(price_dir), TWEET_SESSION, lake_root)
    tweets = ingest_alt(StockNetTweets(tweet_dir), TWEET_SESSION, lake_root)

    day = [TWEET_SESSION.isoformat()]
    q = pd.concat([quarantined(lake_root, "raw_prices", day), quarantined(lake_root, "alt_data", day)])
    assert q["reason"].tolist() == ["bad_header", "unreadable_file"]
    assert "data-\\xff/prices/BBB.csv: expected header" in q["detail"].iloc[0]
    assert f"cannot read {tmp_path}/data-\\xff/tweets/BBB/2024-03-26: is a directory" == q["detail"].iloc[1]
    stored = lake.read_partition(lake_root, "raw_prices", TWEET_SESSION)
    assert stored["ticker"].tolist() == ["AAA"]
    assert stored["source"].tolist() == [f"yahoo_csv({tmp_path}/data-\\xff/prices)"]
    assert_aggregates(lake_root, TWEET_SESSION, {("AAA", "2024-03-26"): AAA_AGG})
    assert (prices.rows_clean, tweets.rows_clean) == (1, 1)


def test_a_universe_symbol_that_is_no_ticker_name_is_refused_with_its_line(tmp_path):
    (tmp_path / "StockTable").write_text("Sector\tSymbol\tCompany\nTech\t$AAPL\tApple\nTech\t$../../etc\tEvil\n")
    with pytest.raises(SourceError, match=r"StockTable:3: symbol '\$\.\./\.\./etc' is not a valid ticker name"):
        stocknet_universe(tmp_path)


# ---------------------------------------------------------------- tweet trees


def test_unusable_tweet_entries_are_reported_and_the_rest_aggregates(tmp_path, lake_root):
    root = tmp_path / "tweets"
    write_tweets(root / "AAA" / "2024-03-26", AAA_GOOD)
    (root / "AAA" / "2024-03-26").write_bytes(b"\xef\xbb\xbf" + (root / "AAA" / "2024-03-26").read_bytes())  # BOM
    write_tweets(root / "BBB" / "2024-03-26", BBB_GOOD)
    (root / "CCC" / "2024-03-26").mkdir(parents=True)  # a day-file that is a directory
    (root / "CCC" / "2024-03-27").mkdir()  # the next partition's: not reported here
    (root / "DDD").mkdir()
    os.symlink("2024-03-26", root / "DDD" / "2024-03-26")  # a loop
    outside = tmp_path / "elsewhere"
    write_tweets(outside / "2024-03-26", BBB_GOOD)
    os.symlink(outside, root / "EEE")  # a ticker directory leaving the root
    (root / "FFF").mkdir()
    os.symlink(outside / "2024-03-26", root / "FFF" / "2024-03-26")  # a day-file leaving the root
    (root / "README").write_text("not tweets\n")
    os.mkdir(os.fsencode(root) + b"/\xff")
    universe = frozenset({"AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG"})

    report = ingest_alt(StockNetTweets(root, universe), TWEET_SESSION, lake_root)

    q = quarantined(lake_root, "alt_data", [TWEET_SESSION.isoformat()])
    got = sorted(zip(q["ticker"], q["source_file"], q["reason"], q["detail"], strict=True))
    assert [g[:3] for g in got] == [
        ("CCC", "CCC/2024-03-26", "unreadable_file"),
        ("DDD", "DDD/2024-03-26", "unreadable_file"),
        ("EEE", "EEE", "link_outside_source"),
        ("FFF", "FFF/2024-03-26", "link_outside_source"),
    ]
    assert "is a directory" in got[0][3] and "Too many levels of symbolic links" in got[1][3]
    assert f"links to {outside}, outside the source root" in got[2][3] and "outside the source root" in got[3][3]
    assert q["source_line"].isna().all()
    assert [(n.code, n.subject) for n in report.notices] == [
        ("unexpected_file", "README"),
        ("unexpected_file", "\\xff"),
        ("missing_file", "GGG"),
    ]
    # The BOM no longer costs AAA its first tweet; nothing of the outside files is read.
    assert_aggregates(lake_root, TWEET_SESSION, {("AAA", "2024-03-26"): AAA_AGG, ("BBB", "2024-03-26"): BBB_AGG})
    assert (report.records_read, report.rows_quarantined, report.bad_share) == (8, 4, 0.5)


def test_tweets_of_tickers_outside_the_universe_count_one_by_one(tmp_path, lake_root):
    root = tmp_path / "tweets"
    write_tweets(root / "AAA" / "2024-03-26", AAA_GOOD)
    write_tweets(root / "ZZZ" / "2024-03-26", AAA_GOOD[:2])

    report = ingest_alt(StockNetTweets(root, frozenset({"AAA"})), TWEET_SESSION, lake_root)

    q = quarantined(lake_root, "alt_data", [TWEET_SESSION.isoformat()])
    assert q[["ticker", "source_line", "reason"]].values.tolist() == [
        ["ZZZ", 1, "unknown_ticker"],
        ["ZZZ", 2, "unknown_ticker"],
    ]
    assert (report.records_read, report.rows_quarantined, report.bad_share) == (5, 2, 2 / 5)


def test_late_deliveries_are_excluded_not_damage(tmp_path, lake_root):
    """StockNet's 2014-11-14 files hold the backlog of Nov 9-10: valid tweets, days late."""
    root = tmp_path / "tweets"
    late = [tweet(created_at=f"Sat Mar 23 1{i}:00:00 +0000 2024", user=f"u{i}") for i in range(4)]
    write_tweets(root / "AAA" / "2024-03-26", [*late, "{"])

    report = ingest_alt(StockNetTweets(root), TWEET_SESSION, lake_root)

    assert report.reasons == {"created_long_before_file_date": 4, "malformed_json": 1}
    assert (report.records_read, report.rows_quarantined, report.rows_excluded) == (5, 5, 4)
    assert report.bad_share == 1 / 5  # only the broken line is damage
    assert lake.read_partition(lake_root, "alt_data", TWEET_SESSION).empty  # never visible before their file


# ---------------------------------------------------------------- time


def test_backfill_quarantines_a_bar_not_yet_available_instead_of_stamping_the_future(lake_root):
    market = SyntheticMarket(seed=5, n_tickers=3)
    day = dt.date(2024, 3, 4)  # close 21:00 UTC, known at 21:15
    early = pd.Timestamp("2024-03-04 20:00", tz="UTC")

    report = ingest_prices(market, day, lake_root, now=early)

    q = lake.read_partition(lake_root, "quarantine/raw_prices", day)
    assert (report.rows_clean, report.rows_quarantined, report.reasons) == (0, 3, {"not_yet_available": 3})
    assert set(q["detail"]) == {"available at 2024-03-04T21:15:00+00:00: offered before it could be known"}
    assert lake.read_partition(lake_root, "raw_prices", day).empty
    later = ingest_prices(market, day, lake_root, now=pd.Timestamp("2024-03-05", tz="UTC"))
    stored = lake.read_partition(lake_root, "raw_prices", day)
    assert later.rows_written == 3 and (stored["ingest_time"] == pd.Timestamp("2024-03-04 21:15", tz="UTC")).all()


def test_backfill_keeps_the_weekend_and_quarantines_the_day_still_running(lake_root):
    market = SyntheticMarket(seed=5, n_tickers=3)
    monday = dt.date(2024, 3, 4)  # owns Sat 03-02, Sun 03-03, Mon 03-04

    report = ingest_alt(market, monday, lake_root, now=pd.Timestamp("2024-03-04 12:00", tz="UTC"))

    stored = lake.read_partition(lake_root, "alt_data", monday)
    assert sorted(set(stored["day"])) == [dt.date(2024, 3, 2), dt.date(2024, 3, 3)]
    assert (report.rows_clean, report.reasons) == (6, {"not_yet_available": 3})

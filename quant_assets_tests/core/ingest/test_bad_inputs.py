"""A corpus of bad inputs for the ingest path, checked by value.

Every case builds its files in ``tmp_path``, ingests them into a fresh lake
and asserts two things: the bad record is quarantined once, in the partition
that owns it, with the expected reason, file and line (or a clear error is
raised), and every valid record around it still lands in the lake with its
exact values.

Prices cover the sessions of 2024-03-25..2024-04-02: Good Friday (03-29) and
the weekend fold into Monday 04-01. Tweets use session Tue 2024-03-26, which
owns the calendar day 03-26 and also reads the 03-27 file for late tweets.
"""

from __future__ import annotations

import datetime as dt

import pytest

from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
from quant_assets.core.ingest.sources import SourceError, StockNetTweets, YahooCsvPrices
from quant_assets_tests.core.ingest.helpers import (
    AAA_AGG,
    AAA_GOOD,
    APR01,
    APR02,
    AT,
    BBB_AGG,
    BBB_GOOD,
    GOOD_FRIDAY,
    HEADER,
    MAR25,
    MAR26,
    MAR27,
    MAR28,
    MISSING,
    SATURDAY,
    SESSIONS,
    TWEET_SESSION,
    Bad,
    assert_aggregates,
    bar,
    clean_rows,
    good,
    ingest_all_prices,
    quarantined,
    stored_alt,
    stored_prices,
    tweet,
    write_csv,
    write_tweets,
)

# ---------------------------------------------------------------- prices


# Each case is the data lines of AAA.csv (line 2 onward); ``Bad`` marks the lines to quarantine.
PRICE_LINE_CASES = {
    "text_in_price_column": [
        *good(MAR25, MAR26),
        Bad(f"{MAR27},10.0,eleven,9.0,10.5,10.25,1000", "not_a_number", MAR27, "high=eleven"),
        *good(MAR28, APR01, APR02),
    ],
    "nan_is_not_a_price": [
        *good(MAR25, MAR26),
        Bad(f"{MAR27},10.0,11.0,9.0,NaN,10.25,1000", "not_a_number", MAR27, "close=NaN"),
        *good(MAR28, APR01, APR02),
    ],
    "negative_price": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, lo=-9.0), "non_positive_price", MAR27, "min price -9.0"),
        *good(MAR28, APR01, APR02),
    ],
    "zero_price": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, o=0.0), "non_positive_price", MAR27, "min price 0.0"),
        *good(MAR28, APR01, APR02),
    ],
    "high_below_low": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, o=10.0, h=9.0, lo=11.0, c=10.0), "ohlc_inconsistent", MAR27, "10.0/9.0/11.0/10.0"),
        *good(MAR28, APR01, APR02),
    ],
    "close_above_high": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, c=12.0), "ohlc_inconsistent", MAR27, "open/high/low/close = 10.0/11.0/9.0/12.0"),
        *good(MAR28, APR01, APR02),
    ],
    "blank_volume": [
        *good(MAR25, MAR26),
        Bad(f"{MAR27},10.0,11.0,9.0,10.5,10.25,", "missing_value", MAR27, "volume is empty"),
        *good(MAR28, APR01, APR02),
    ],
    "negative_volume": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, v=-1000), "negative_volume", MAR27, "volume=-1000.0"),
        *good(MAR28, APR01, APR02),
    ],
    "fractional_volume": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, v=1000.5), "fractional_volume", MAR27, "volume=1000.5"),
        *good(MAR28, APR01, APR02),
    ],
    "volume_overflows_int64": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, v="1e30"), "volume_out_of_range", MAR27, "does not fit in int64"),
        *good(MAR28, APR01, APR02),
    ],
    "extra_field": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27) + ",oops", "wrong_field_count", MAR27, "8 fields, expected 7"),
        *good(MAR28, APR01, APR02),
    ],
    "non_utf8_bytes_in_one_line": [
        *good(MAR25, MAR26),
        Bad(f"{MAR27},10.0,11.0,9.0,10.5,10.25,1".encode() + b"\xa0000", "not_utf8", MAR27, "byte 37: invalid"),
        *good(MAR28, APR01, APR02),
    ],
    "exact_duplicate_keeps_first_copy": [
        *good(MAR25, MAR26, MAR27),
        Bad(good(MAR25, MAR26, MAR27)[2], "duplicate_row", MAR27, "exact repeat"),
        *good(MAR28, APR01, APR02),
    ],
    "conflicting_duplicates_all_quarantined": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, c=10.5), "duplicate_key_conflict", MAR27, "same ticker/date_parsed with different values"),
        Bad(bar(MAR27, c=10.75), "duplicate_key_conflict", MAR27, "same ticker/date_parsed with different values"),
        *good(MAR28, APR01, APR02),
    ],
    "holiday_goes_to_next_session": [
        *good(MAR25, MAR26, MAR27, MAR28),
        Bad(bar(GOOD_FRIDAY), "not_a_trading_day", APR01, "2024-03-29 is not an NYSE session"),
        *good(APR01, APR02),
    ],
    "saturday_goes_to_next_session": [
        *good(MAR25, MAR26, MAR27, MAR28),
        Bad(bar(SATURDAY), "not_a_trading_day", APR01, "2024-03-30 is not an NYSE session"),
        *good(APR01, APR02),
    ],
    "unreadable_date_goes_with_next_readable_line": [
        *good(MAR25, MAR26),
        Bad(bar("27/03/2024"), "bad_date", MAR28, "date=27/03/2024"),
        *good(MAR28, APR01, APR02),
    ],
    "impossible_date_goes_with_next_readable_line": [
        *good(MAR25, MAR26),
        Bad(bar("2024-02-30"), "bad_date", MAR27, "date=2024-02-30"),
        *good(MAR27, MAR28, APR01, APR02),
    ],
    "year_typo_outside_calendar_is_not_lost": [
        *good(MAR25, MAR26),
        Bad(bar("2204-03-27"), "not_a_trading_day", MAR28, "2204-03-27 is not an NYSE session"),
        *good(MAR28, APR01, APR02),
    ],
    "unreadable_date_on_last_line_goes_with_previous": [
        *good(MAR25, MAR26, MAR27, MAR28, APR01, APR02),
        Bad(bar("April 3"), "bad_date", APR02, "date=April 3"),
    ],
    # Finite but absurd values: bounds (PriceLimits: 1e7 per price, 1e11 shares).
    "finite_but_absurd_price": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, h=1e308), "implausible_price", MAR27, "max price 1e+308 above 1e+07"),
        *good(MAR28, APR01, APR02),
    ],
    "absurd_volume": [
        *good(MAR25, MAR26),
        Bad(bar(MAR27, v=200_000_000_000), "implausible_volume", MAR27, "volume=200000000000.0 above 1e+11"),
        *good(MAR28, APR01, APR02),
    ],
    # A units error for one day: 1000x the neighbours, reverting the next day. The next day is checked
    # against the last stored bar (03-26), so it passes.
    "one_day_1000x_jump_that_reverts": [
        *good(MAR25, MAR26),
        Bad(
            bar(MAR27, o=10000.0, h=11000.0, lo=9000.0, c=10500.0, adj=10250.0),
            "implausible_step",
            MAR27,
            "adj_close 10250.0 vs 10.25 on 2024-03-26: x1000 (limit 10x either way)",
        ),
        *good(MAR28, APR01, APR02),
    ],
}


@pytest.mark.parametrize("lines", PRICE_LINE_CASES.values(), ids=PRICE_LINE_CASES.keys())
def test_bad_price_line_is_quarantined_and_neighbours_kept(tmp_path, lake_root, lines):
    price_dir = tmp_path / "price"
    write_csv(price_dir / "AAA.csv", lines)
    bbb = good(*SESSIONS)
    write_csv(price_dir / "BBB.csv", bbb)

    reports = ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    bad = [(n, x) for n, x in enumerate(lines, start=2) if isinstance(x, Bad)]
    q = quarantined(lake_root, "raw_prices", SESSIONS)
    got = sorted(zip(q["session"], q["ticker"], q["source_file"], q["source_line"], q["reason"], strict=True))
    assert got == sorted((b.session, "AAA", "AAA.csv", n, b.reason) for n, b in bad)
    by_line = q.set_index("source_line")
    for n, b in bad:
        assert b.detail in by_line.loc[n, "detail"], (n, by_line.loc[n, "detail"])
        assert by_line.loc[n, "raw"] == (b.text.decode("utf-8", "replace") if isinstance(b.text, bytes) else b.text)

    assert stored_prices(lake_root) == clean_rows("AAA", lines) | clean_rows("BBB", bbb)
    assert sum(r.rows_quarantined for r in reports.values()) == len(bad)
    assert sum(r.rows_clean for r in reports.values()) == len(clean_rows("AAA", lines)) + len(bbb)


def test_truncated_last_line_without_newline(tmp_path, lake_root):
    price_dir = tmp_path / "price"
    lines = good(MAR25, MAR26, MAR27, MAR28, APR01)
    write_csv(price_dir / "AAA.csv", [*lines, f"{APR02},10.0,11"], final_newline=False)
    write_csv(price_dir / "BBB.csv", good(*SESSIONS))

    reports = ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    q = quarantined(lake_root, "raw_prices", SESSIONS)
    assert q[["session", "ticker", "source_file", "source_line", "reason", "detail", "raw"]].values.tolist() == [
        [APR02, "AAA", "AAA.csv", 7, "wrong_field_count", "3 fields, expected 7", f"{APR02},10.0,11"]
    ]
    assert stored_prices(lake_root) == clean_rows("AAA", lines) | clean_rows("BBB", good(*SESSIONS))
    assert reports[APR02].rows_clean == 1 and reports[APR02].reasons == {"wrong_field_count": 1}


def test_truncated_inside_the_date_goes_with_the_previous_line(tmp_path, lake_root):
    price_dir = tmp_path / "price"
    lines = good(*SESSIONS)
    write_csv(price_dir / "AAA.csv", [*lines, "2024-04-0"], final_newline=False)

    ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    q = quarantined(lake_root, "raw_prices", SESSIONS)
    assert q[["session", "source_line", "reason", "raw"]].values.tolist() == [
        [APR02, 8, "wrong_field_count", "2024-04-0"]
    ]
    assert stored_prices(lake_root) == clean_rows("AAA", lines)


WHOLE_FILE_CASES = {
    "wrong_header": (HEADER.replace("Adj Close,", ""), b"", "bad_header", "expected header"),
    "header_in_other_order": ("Date,Close,Open,High,Low,Adj Close,Volume", b"", "bad_header", "expected header"),
    "empty_file": (None, b"", "empty_file", "is empty"),
    "whitespace_only_file": (None, b"  \n\n", "empty_file", "is empty"),
    "no_line_has_a_readable_date": (
        HEADER,
        b"27/03/2024,10,11,9,10.5,10.25,1000\n",
        "no_readable_dates",
        "none of its 1",
    ),
}


@pytest.mark.parametrize(("header", "body", "reason", "detail"), WHOLE_FILE_CASES.values(), ids=WHOLE_FILE_CASES.keys())
def test_bad_file_is_rejected_whole_and_other_tickers_ingest(tmp_path, lake_root, header, body, reason, detail):
    price_dir = tmp_path / "price"
    path = price_dir / "AAA.csv"
    price_dir.mkdir()
    if header is None:
        path.write_bytes(body)
    else:
        path.write_bytes(header.encode() + b"\n" + (body or "\n".join(good(*SESSIONS)).encode() + b"\n"))
    bbb = good(*SESSIONS)
    write_csv(price_dir / "BBB.csv", bbb)

    reports = ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    q = quarantined(lake_root, "raw_prices", SESSIONS)
    # A whole-file problem has no line and is reported in every partition.
    assert q["session"].tolist() == SESSIONS
    assert set(q["ticker"]) == {"AAA"} and set(q["source_file"]) == {"AAA.csv"} and set(q["reason"]) == {reason}
    assert q["source_line"].isna().all()
    assert all(detail in d and str(path) in d for d in q["detail"])
    assert stored_prices(lake_root) == clean_rows("BBB", bbb)
    assert all(r.rows_clean == 1 and r.reasons == {reason: 1} for r in reports.values())


def test_header_only_file_is_neither_rows_nor_rejects(tmp_path, lake_root):
    price_dir = tmp_path / "price"
    write_csv(price_dir / "AAA.csv", [])
    write_csv(price_dir / "BBB.csv", good(*SESSIONS))

    ingest_all_prices(YahooCsvPrices(price_dir), lake_root)

    assert quarantined(lake_root, "raw_prices", SESSIONS).empty
    assert stored_prices(lake_root) == clean_rows("BBB", good(*SESSIONS))


def test_file_outside_the_universe_is_quarantined_as_unknown_ticker(tmp_path, lake_root):
    price_dir = tmp_path / "price"
    for ticker in ("AAA", "BBB", "ZZZ"):
        write_csv(price_dir / f"{ticker}.csv", good(*SESSIONS))

    reports = ingest_all_prices(YahooCsvPrices(price_dir, universe=frozenset({"AAA", "BBB"})), lake_root)

    q = quarantined(lake_root, "raw_prices", SESSIONS)
    assert sorted(zip(q["session"], q["ticker"], q["source_line"], q["reason"], q["detail"], strict=True)) == [
        (s, "ZZZ", n, "unknown_ticker", "ZZZ") for n, s in enumerate(SESSIONS, start=2)
    ]
    assert stored_prices(lake_root) == clean_rows("AAA", good(*SESSIONS)) | clean_rows("BBB", good(*SESSIONS))
    assert all(r.tickers == 2 for r in reports.values())


@pytest.mark.parametrize("layout", ["missing", "a_file", "no_csv_files"])
def test_unusable_price_directory_raises_source_error_naming_it(tmp_path, lake_root, layout):
    price_dir = tmp_path / "price"
    if layout == "a_file":
        price_dir.write_text(HEADER + "\n")
    elif layout == "no_csv_files":
        price_dir.mkdir()
        (price_dir / "AAA.txt").write_text(HEADER + "\n" + bar(MAR25) + "\n")
    message = "no \\*.csv files in" if layout == "no_csv_files" else "not found or not a directory"

    with pytest.raises(SourceError, match=message) as err:
        ingest_prices(YahooCsvPrices(price_dir), dt.date.fromisoformat(MAR25), lake_root)

    assert str(price_dir) in str(err.value)
    assert not any(lake_root.iterdir())  # nothing half-written


# ---------------------------------------------------------------- tweets

TWEET_LINE_CASES = {
    "malformed_json": ('{"text": ["aapl"], "created_at": "' + AT, "malformed_json", "Unterminated string"),
    "json_but_not_an_object": ('["aapl", "buy"]', "malformed_json", "line is not a JSON object"),
    "no_created_at": (tweet(created_at=MISSING), "missing_timestamp", "tweet has no created_at"),
    "blank_created_at": (tweet(created_at="  "), "missing_timestamp", "tweet has no created_at"),
    "unparseable_created_at": (tweet(created_at="2024-03-26 15:00"), "bad_timestamp", "created_at=2024-03-26 15:00"),
    "created_at_not_a_string": (tweet(created_at=["Tue"]), "bad_timestamp", "created_at="),
    "no_user": (tweet(user=MISSING), "missing_user", "tweet has no user_id_str"),
    "user_is_an_object": (tweet(user={"id": "u3"}), "bad_user", "not a string or integer"),
    "text_is_a_string": (tweet(text="aapl bullish"), "bad_text", "text is not a list of tokens"),
    "text_has_a_number": (tweet(text=["aapl", 7]), "bad_text", "text is not a list of tokens"),
    "no_text": (tweet(text=MISSING), "bad_text", "text is not a list of tokens"),
    "created_after_file_date": (
        tweet(created_at="Wed Mar 27 09:00:00 +0000 2024"),
        "created_after_file_date",
        "created 2024-03-27 in file for 2024-03-26",
    ),
    "created_days_before_file_date": (
        tweet(created_at="Sun Mar 24 09:00:00 +0000 2024"),
        "created_long_before_file_date",
        "created 2024-03-24 in file for 2024-03-26",
    ),
    "duplicate_tweet": (AAA_GOOD[0], "duplicate_tweet", "same ticker, time, user and text"),
    "non_utf8_bytes": (tweet().encode()[:-2] + b'\xff"}', "not_utf8", "invalid start byte"),
    # JSON escapes of lone UTF-16 surrogates decode to strings no Parquet writer accepts.
    "lone_surrogate_in_created_at": (
        tweet(created_at=AT + "\ud800"),
        "invalid_unicode",
        "created_at holds a lone UTF-16 surrogate",
    ),
    "lone_surrogate_in_a_token": (tweet(text=("aapl", "\udc80")), "invalid_unicode", "text holds a lone UTF-16"),
}


@pytest.mark.parametrize(("line", "reason", "detail"), TWEET_LINE_CASES.values(), ids=TWEET_LINE_CASES.keys())
def test_bad_tweet_line_is_quarantined_and_neighbours_kept(tmp_path, lake_root, line, reason, detail):
    tweet_dir = tmp_path / "tweets"
    write_tweets(tweet_dir / "AAA" / "2024-03-26", [AAA_GOOD[0], line, *AAA_GOOD[1:]])  # the bad one is line 2
    write_tweets(tweet_dir / "BBB" / "2024-03-26", BBB_GOOD)

    report = ingest_alt(StockNetTweets(tweet_dir), TWEET_SESSION, lake_root)

    q = quarantined(lake_root, "alt_data", [TWEET_SESSION.isoformat()])
    assert q[["ticker", "source_file", "source_line", "reason"]].values.tolist() == [
        ["AAA", "AAA/2024-03-26", 2, reason]
    ]
    assert detail in q.loc[0, "detail"]
    raw = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    assert q.loc[0, "raw"] == raw
    assert_aggregates(lake_root, TWEET_SESSION, {("AAA", "2024-03-26"): AAA_AGG, ("BBB", "2024-03-26"): BBB_AGG})
    assert (report.rows_clean, report.rows_quarantined, report.reasons) == (2, 1, {reason: 1})


LONG_LINE_CASES = {
    # json.loads raises RecursionError here, which is no ValueError: it used to fail the whole partition.
    "nested_100000_deep": ("[" * 100_000 + "]" * 100_000, "nesting_too_deep", "recursion limit"),
    "number_beyond_the_int_limit": ('{"n": ' + "9" * 5000 + "}", "malformed_json", "ValueError: Exceeds the limit"),
}


@pytest.mark.parametrize(("line", "reason", "detail"), LONG_LINE_CASES.values(), ids=LONG_LINE_CASES.keys())
def test_any_parser_failure_quarantines_the_line_only(tmp_path, lake_root, line, reason, detail):
    tweet_dir = tmp_path / "tweets"
    write_tweets(tweet_dir / "AAA" / "2024-03-26", [AAA_GOOD[0], line, *AAA_GOOD[1:]])
    write_tweets(tweet_dir / "BBB" / "2024-03-26", BBB_GOOD)

    report = ingest_alt(StockNetTweets(tweet_dir), TWEET_SESSION, lake_root)

    q = quarantined(lake_root, "alt_data", [TWEET_SESSION.isoformat()])
    assert q[["ticker", "source_file", "source_line", "reason"]].values.tolist() == [
        ["AAA", "AAA/2024-03-26", 2, reason]
    ]
    assert detail in q.loc[0, "detail"] and q.loc[0, "raw"] == line[:500]  # the raw preview
    assert_aggregates(lake_root, TWEET_SESSION, {("AAA", "2024-03-26"): AAA_AGG, ("BBB", "2024-03-26"): BBB_AGG})
    assert (report.records_read, report.rows_quarantined, report.bad_share) == (5, 1, 1 / 5)


def test_integer_user_id_is_the_same_user_as_its_string(tmp_path, lake_root):
    tweet_dir = tmp_path / "tweets"
    write_tweets(tweet_dir / "AAA" / "2024-03-26", [tweet(user="123"), tweet(("aapl", "crash"), user=123)])

    ingest_alt(StockNetTweets(tweet_dir), TWEET_SESSION, lake_root)

    assert quarantined(lake_root, "alt_data", [TWEET_SESSION.isoformat()]).empty
    assert stored_alt(lake_root, TWEET_SESSION)[("AAA", "2024-03-26")]["unique_users"] == 1


def test_tweet_file_with_only_bad_lines_leaves_other_tickers(tmp_path, lake_root):
    tweet_dir = tmp_path / "tweets"
    write_tweets(tweet_dir / "AAA" / "2024-03-26", [b"\xff\xfe", "{", tweet(user=MISSING)])
    write_tweets(tweet_dir / "BBB" / "2024-03-26", BBB_GOOD)

    report = ingest_alt(StockNetTweets(tweet_dir), TWEET_SESSION, lake_root)

    q = quarantined(lake_root, "alt_data", [TWEET_SESSION.isoformat()])
    assert sorted(zip(q["source_line"], q["reason"], strict=True)) == [
        (1, "not_utf8"),
        (2, "malformed_json"),
        (3, "missing_user"),
    ]
    assert_aggregates(lake_root, TWEET_SESSION, {("BBB", "2024-03-26"): BBB_AGG})
    assert report.rows_clean == 1


def test_bad_lines_are_reported_by_the_partition_owning_the_file_date(tmp_path, lake_root):
    """The 03-26 partition reads the 03-27 file for late tweets but leaves its bad lines to 03-27."""
    tweet_dir = tmp_path / "tweets"
    write_tweets(tweet_dir / "AAA" / "2024-03-26", AAA_GOOD)
    write_tweets(
        tweet_dir / "AAA" / "2024-03-27",
        [
            tweet(("aapl", "rally"), "Tue Mar 26 23:30:00 +0000 2024", "u3"),  # late evening of 03-26
            "not json",
            tweet(("aapl", "fell"), "Thu Mar 28 01:00:00 +0000 2024", "u4"),  # after its file date
            tweet(("aapl",), "Wed Mar 27 12:00:00 +0000 2024", "u5"),
        ],
    )
    days = [TWEET_SESSION, dt.date(2024, 3, 27)]
    reports = [ingest_alt(StockNetTweets(tweet_dir), s, lake_root) for s in days]

    q = quarantined(lake_root, "alt_data", [s.isoformat() for s in days])
    assert sorted(zip(q["session"], q["source_file"], q["source_line"], q["reason"], strict=True)) == [
        ("2024-03-27", "AAA/2024-03-27", 2, "malformed_json"),
        ("2024-03-27", "AAA/2024-03-27", 3, "created_after_file_date"),
    ]
    late = {"tweet_count": 4, "unique_users": 3, "pos_words": 4, "neg_words": 1, "sentiment": 0.5}
    assert_aggregates(lake_root, days[0], {("AAA", "2024-03-26"): late})
    own = {"tweet_count": 1, "unique_users": 1, "pos_words": 0, "neg_words": 0, "sentiment": 0.0}
    assert_aggregates(lake_root, days[1], {("AAA", "2024-03-27"): own})
    assert [r.rows_quarantined for r in reports] == [0, 2]


def test_weekend_tweet_files_fold_into_monday(tmp_path, lake_root):
    tweet_dir = tmp_path / "tweets"
    write_tweets(tweet_dir / "AAA" / "2024-03-23", [tweet(created_at="Sat Mar 23 10:00:00 +0000 2024"), "{"])
    write_tweets(tweet_dir / "AAA" / "2024-03-24", [tweet(("aapl", "crash"), "Sun Mar 24 10:00:00 +0000 2024")])
    monday = dt.date(2024, 3, 25)

    ingest_alt(StockNetTweets(tweet_dir), monday, lake_root)

    q = quarantined(lake_root, "alt_data", [monday.isoformat()])
    assert q[["source_file", "source_line", "reason"]].values.tolist() == [["AAA/2024-03-23", 2, "malformed_json"]]
    sat = {"tweet_count": 1, "unique_users": 1, "pos_words": 2, "neg_words": 0, "sentiment": 1.0}
    sun = {"tweet_count": 1, "unique_users": 1, "pos_words": 0, "neg_words": 1, "sentiment": -1.0}
    assert_aggregates(lake_root, monday, {("AAA", "2024-03-23"): sat, ("AAA", "2024-03-24"): sun})


def test_tweets_outside_the_universe_are_quarantined_as_unknown_ticker(tmp_path, lake_root):
    tweet_dir = tmp_path / "tweets"
    write_tweets(tweet_dir / "AAA" / "2024-03-26", AAA_GOOD)
    write_tweets(tweet_dir / "ZZZ" / "2024-03-26", BBB_GOOD)

    ingest_alt(StockNetTweets(tweet_dir, universe=frozenset({"AAA"})), TWEET_SESSION, lake_root)

    q = quarantined(lake_root, "alt_data", [TWEET_SESSION.isoformat()])
    assert q[["ticker", "source_file", "reason", "detail"]].values.tolist() == [
        ["ZZZ", "ZZZ/2024-03-26", "unknown_ticker", "ZZZ"]
    ]
    assert_aggregates(lake_root, TWEET_SESSION, {("AAA", "2024-03-26"): AAA_AGG})


def test_missing_tweet_directory_raises_source_error_naming_it(tmp_path, lake_root):
    tweet_dir = tmp_path / "no_such_tweets"
    with pytest.raises(SourceError, match="tweet directory not found") as err:
        ingest_alt(StockNetTweets(tweet_dir), TWEET_SESSION, lake_root)
    assert str(tweet_dir) in str(err.value)
    assert not any(lake_root.iterdir())

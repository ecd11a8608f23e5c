"""A new user's mistakes each get one line that says what to do (exit code 2), never a traceback.

The checks run before any Dagster instance is needed, so these run without DAGSTER_HOME or Postgres.
"""

import datetime as dt

import pytest
from click.testing import CliRunner

from quant_assets.cli import cli
from quant_assets.core import sessions


def run(*args: str, **env: str):
    return CliRunner().invoke(cli, list(args), env={"DAGSTER_HOME": None, **env})


@pytest.mark.parametrize(
    "key, line",
    [
        (
            "2024-03-09",
            "Error: partition key 2024-03-09 is not an NYSE session (weekend or holiday); "
            "nearest sessions: 2024-03-08 (before) and 2024-03-11 (after)",
        ),
        (
            "2024-07-04",
            "Error: partition key 2024-07-04 is not an NYSE session (weekend or holiday); "
            "nearest sessions: 2024-07-03 (before) and 2024-07-05 (after)",
        ),
        (
            "2024-03-29",  # Good Friday
            "Error: partition key 2024-03-29 is not an NYSE session (weekend or holiday); "
            "nearest sessions: 2024-03-28 (before) and 2024-04-01 (after)",
        ),
    ],
)
def test_weekend_or_holiday_key_names_the_nearest_sessions(key, line):
    result = run("materialize", "raw_prices", key)
    assert result.exit_code == 2
    assert result.stderr == line + "\n"


@pytest.mark.parametrize("key", ["2024-13-45", "2024/03/04", "20240304", "yesterday"])
def test_malformed_date_says_which_and_the_expected_form(key):
    result = run("materialize", "raw_prices", key)
    assert result.exit_code == 2
    assert (
        result.stderr == f"Error: partition key {key!r} is not a valid date: write it as YYYY-MM-DD, e.g. 2024-07-01\n"
    )


def test_malformed_end_of_a_range_is_named():
    result = run("materialize", "raw_prices", "2024-07-01...2024/07/08")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: range end '2024/07/08' is not a valid date: write it as YYYY-MM-DD, e.g. 2024-07-01\n"
    )


def test_range_end_on_a_weekend_is_named():
    result = run("materialize", "raw_prices", "2024-07-01...2024-07-06")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: range end 2024-07-06 is not an NYSE session (weekend or holiday); "
        "nearest sessions: 2024-07-05 (before) and 2024-07-08 (after)\n"
    )


def test_reversed_range_says_so():
    result = run("materialize", "raw_prices,alt_data", "2024-07-08...2024-07-01")
    assert result.exit_code == 2
    assert (
        result.stderr == "Error: the range 2024-07-08...2024-07-01 is reversed: write it as 2024-07-01...2024-07-08\n"
    )


def test_reversed_backfill_range_says_so():
    result = run("backfill", "ingest_job", "2024-07-08", "2024-07-01")
    assert result.exit_code == 2
    assert result.stderr == "Error: the range 2024-07-08 2024-07-01 is reversed: write it as 2024-07-01 2024-07-08\n"


def test_a_range_with_two_dots_is_told_the_separator():
    result = run("materialize", "raw_prices", "2024-07-01..2024-07-03")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: partition key '2024-07-01..2024-07-03' is not a valid date: write it as YYYY-MM-DD, e.g. 2024-07-01 "
        "(a range is START...END, three dots)\n"
    )


def test_a_session_before_the_first_partition_is_one_line():
    result = run("materialize", "raw_prices", "2011-01-03...2024-07-01")
    assert result.exit_code == 2
    assert result.stderr == "Error: 2011-01-03 is before the first partition, 2012-09-04: the partitions start there\n"


def test_a_session_that_has_not_happened_is_one_line():
    future = sessions.next_session(dt.date.today() + dt.timedelta(days=3))
    result = run("backfill", "ingest_job", "2024-07-01", future.isoformat())
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {future} is after the last partition, ")
    assert result.stderr.endswith("(today's session): it has not happened yet\n")


def test_unknown_asset_names_the_close_ones():
    result = run("materialize", "raw_price,alt_data", "2024-07-01")
    assert result.exit_code == 2
    assert result.stderr == "Error: unknown asset or job 'raw_price': did you mean raw_prices?\n"


def test_unknown_job_names_the_close_ones():
    result = run("backfill", "ingest", "2024-07-01", "2024-07-08")
    assert result.exit_code == 2
    assert result.stderr == "Error: unknown partitioned job 'ingest': did you mean ingest_job?\n"


def test_main_names_the_option_that_is_not_a_session():
    result = run("main", "--train-end", "2024-06-29")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --train-end 2024-06-29 is not an NYSE session (weekend or holiday); "
        "nearest sessions: 2024-06-28 (before) and 2024-07-01 (after)\n"
    )


def test_main_reads_the_training_end_from_the_environment():
    result = run("main", **{"QUANT_TRAIN_END": "2024-13-01"})
    assert result.exit_code == 2
    assert (
        result.stderr
        == "Error: --train-end '2024-13-01' is not a valid date: write it as YYYY-MM-DD, e.g. 2024-07-01\n"
    )


def test_partitions_outside_the_calendar_are_one_line():
    result = run("materialize", "raw_prices", "1999-01-04")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "outside the XNYS calendar horizon" in result.stderr


def test_without_dagster_home_it_says_how_to_set_it():
    result = run("materialize", "feature_catalog")
    assert result.exit_code == 1
    assert result.stderr == "Error: DAGSTER_HOME is not set: run through ./qa, or export it (see `./qa env`)\n"

"""The Dagster layer, materialised in-process on a Postgres-backed instance."""

import datetime as dt
import json
import os

import dagster as dg
import pytest

from quant_assets.core import sessions
from quant_assets.core.storage import lake
from quant_assets.defs.partitions import trading_days
from quant_assets.defs.raw import alt_data, raw_prices
from quant_assets.defs.resources import LakeResource, MarketDataResource
from quant_assets.provenance import code_version
from quant_assets_tests.conftest import IN_CI

RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2024-03-01",
    "dagster/asset_partition_range_end": "2024-03-06",
}


def _resources(root, **market):
    return {"lake": LakeResource(root=str(root)), "market": MarketDataResource(n_tickers=20, **market)}


def _check(result, asset, name="quarantine_share"):
    evals = [
        e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(asset) and e.check_name == name
    ]
    assert len(evals) == 1
    return evals[0]


def test_partitions_are_exactly_the_nyse_sessions():
    keys = trading_days.get_partition_keys_in_range(dg.PartitionKeyRange("2024-01-02", "2024-12-31"))
    assert keys == [d.isoformat() for d in sessions.sessions_between("2024-01-01", "2024-12-31")]
    assert "2024-07-04" not in keys and "2024-03-29" not in keys


def test_definitions_load_with_metadata():
    from quant_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in ("raw_prices", "alt_data"):
        node = graph.get(dg.AssetKey(key))
        assert node.group_name == "raw"
        assert node.owners == ["team:quant-data"]
        assert {"python", "parquet"} <= set(node.kinds)
        assert node.description
    assert defs.resolve_job_def("ingest_job").partitions_def == trading_days


def test_one_partition_each_on_postgres(dagster_instance, lake_root):
    for key in ("2024-03-01", "2024-03-04"):
        result = dg.materialize(
            [raw_prices, alt_data], partition_key=key, instance=dagster_instance, resources=_resources(lake_root)
        )
        assert result.success
        meta = result.asset_materializations_for_node("raw_prices")[0].metadata
        assert meta["dagster/row_count"].value == 20 and meta["tickers"].value == 20
        assert meta["first_event_time"].value == sessions.session_close(key).isoformat()
        assert [c.name for c in meta["dagster/column_schema"].schema.columns][:3] == ["ticker", "event_time", "open"]
        alt_meta = result.asset_materializations_for_node("alt_data")[0].metadata
        assert alt_meta["dagster/row_count"].value == 20 * len(sessions.owned_calendar_days(key))
        assert _check(result, "raw_prices").passed and _check(result, "alt_data").passed
    # The history lives in Postgres: both runs are recorded there.
    assert dagster_instance.get_runs_count() == 2
    assert dagster_instance.get_materialized_partitions(dg.AssetKey("raw_prices")) == {"2024-03-01", "2024-03-04"}


def test_a_range_in_one_run_and_idempotent_rerun(dagster_instance, lake_root):
    result = dg.materialize(
        [raw_prices, alt_data], instance=dagster_instance, resources=_resources(lake_root), tags=RANGE_TAGS
    )
    assert result.success
    mats = result.asset_materializations_for_node("raw_prices")
    assert sorted(m.partition for m in mats) == ["2024-03-01", "2024-03-04", "2024-03-05", "2024-03-06"]
    assert mats[0].metadata["dagster/row_count"].value == 80
    files = sorted(p.name for p in lake_root.rglob("*.parquet"))
    assert len(files) == 8
    for dataset in ("raw_prices", "alt_data"):  # every row names the asset, the code version and this run
        rows = lake.read_frame(lake.dataset_files(lake_root, dataset), lake.PROVENANCE).drop_duplicates()
        assert rows.values.tolist() == [[dataset, code_version(), result.run_id]]
    again = dg.materialize(
        [raw_prices, alt_data], instance=dagster_instance, resources=_resources(lake_root), tags=RANGE_TAGS
    )
    rerun = again.asset_materializations_for_node("raw_prices")[0].metadata
    assert rerun["rows_written"].value == 0 and rerun["partitions_unchanged"].value == 4  # every receipt matched
    assert rerun["dagster/row_count"].value == 80  # the receipts' reports: the rows the delivery holds
    assert mats[0].metadata["partitions_unchanged"].value == 0
    assert sorted(p.name for p in lake_root.rglob("*.parquet")) == files


def _bad_csv_dir(tmp_path):
    src = tmp_path / "prices"
    src.mkdir()
    header = "Date,Open,High,Low,Close,Adj Close,Volume\n"
    (src / "GOOD.csv").write_text(header + "2024-03-04,10,11,9,10.5,10.5,100\n")
    (src / "BAD.csv").write_text(header + "2024-03-04,10,9,11,10.5,10.5,100\n")  # high < low
    return src


def test_blocking_check_fails_when_too_much_is_quarantined(dagster_instance, lake_root, tmp_path):
    from quant_assets.core.ingest.sources import YahooCsvPrices

    prices = YahooCsvPrices(_bad_csv_dir(tmp_path))

    class CsvMarket(MarketDataResource):
        def sources(self):
            return prices, prices

    result = dg.materialize(
        [raw_prices],
        partition_key="2024-03-04",
        instance=dagster_instance,
        resources={"lake": LakeResource(root=str(lake_root)), "market": CsvMarket()},
        raise_on_error=False,
    )
    check = _check(result, "raw_prices")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["worst_share"].value == 0.5
    # The good row still landed; the bad one is in quarantine with its reason.
    assert lake.read_partition(lake_root, "raw_prices", dt.date(2024, 3, 4))["ticker"].tolist() == ["GOOD"]
    q = lake.read_partition(lake_root, "quarantine/raw_prices", dt.date(2024, 3, 4))
    assert q[["ticker", "reason", "source_line"]].values.tolist() == [["BAD", "ohlc_inconsistent", 2]]
    assert q[lake.PROVENANCE].values.tolist() == [["raw_prices", code_version(), result.run_id]]


def test_a_missing_source_fails_the_run_naming_the_directory(dagster_instance, lake_root, tmp_path):
    result = dg.materialize(
        [raw_prices],
        partition_key="2024-03-04",
        instance=dagster_instance,
        resources=_resources(lake_root, kind="stocknet", stocknet_dir=str(tmp_path / "nowhere")),
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error.cause.cls_name == "SourceError"
    assert "StockNet directory not found" in error.cause.message and "nowhere" in error.cause.message


def test_on_an_external_postgres_given_by_url(lake_root, tmp_path):
    """The production path: a Postgres server given by URL (CI passes the machine's own)."""
    url = os.environ.get("QUANT_EXTERNAL_PG_URL")
    if not url:
        if IN_CI:
            pytest.fail("QUANT_EXTERNAL_PG_URL must be set under CI")
        pytest.skip("QUANT_EXTERNAL_PG_URL not set")
    from quant_assets.localpg import psycopg2_url
    from quant_assets_tests.conftest import _drop_database, _fresh_database, postgres_instance

    db_url, name = _fresh_database(psycopg2_url(url))
    try:
        with postgres_instance(db_url, tmp_path / "home") as instance:
            result = dg.materialize(
                [raw_prices, alt_data], partition_key="2024-03-04", instance=instance, resources=_resources(lake_root)
            )
            assert result.success and instance.get_runs_count() == 1
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    finally:
        _drop_database(psycopg2_url(url), name)


def _files_market(prices, tweets):
    class FilesMarket(MarketDataResource):
        def sources(self):
            return prices, tweets

    return FilesMarket()


def _tweet_line(day: str, hour: int, user: str, text=("aapl", "buy")) -> str:
    stamp = dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").strftime("%a %b %d %H:%M:%S +0000 %Y")
    return json.dumps({"text": list(text), "created_at": stamp, "user_id_str": user})


def _md_rows(value) -> list[list[str]]:
    """The body rows of a markdown table, cell by cell."""
    lines = value.value.splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_warning_checks_name_what_is_missing_flagged_or_excluded(dagster_instance, lake_root, tmp_path):
    """Notices, step flags and late deliveries are reported in non-blocking WARN checks; one duplicate
    among 35 tweets is 1/35 of what was read, under the default 5%, so the blocking check passes."""
    from quant_assets.core.ingest.sources import StockNetTweets, YahooCsvPrices

    price_dir, tweet_dir = tmp_path / "prices", tmp_path / "tweets"
    price_dir.mkdir()
    header = "Date,Open,High,Low,Close,Adj Close,Volume\n"
    (price_dir / "AAA.csv").write_text(header + "2024-03-04,10,11,9,10,10,100\n2024-03-05,16,17,15,16,16,100\n")
    (price_dir / "AMZN.CSV").write_text(header)
    (tweet_dir / "AAA").mkdir(parents=True)
    lines = [_tweet_line("2024-03-05", 10 + i % 10, f"u{i}", ("aapl", str(i))) for i in range(34)]
    late = [_tweet_line("2024-03-01", 12, "u99")]
    (tweet_dir / "AAA" / "2024-03-05").write_text("\n".join([*lines, lines[0], *late]) + "\n")
    universe = frozenset({"AAA", "MSFT"})
    market = _files_market(YahooCsvPrices(price_dir, universe), StockNetTweets(tweet_dir, universe))
    resources = {"lake": LakeResource(root=str(lake_root)), "market": market}
    tags = {"dagster/asset_partition_range_start": "2024-03-04", "dagster/asset_partition_range_end": "2024-03-05"}

    result = dg.materialize([raw_prices, alt_data], instance=dagster_instance, resources=resources, tags=tags)

    assert result.success
    assert _check(result, "raw_prices").passed and _check(result, "alt_data").passed
    assert _check(result, "alt_data").metadata["worst_share"].value == round(1 / 36, 6)  # 35 tweets + the late one
    source = _check(result, "raw_prices", "source_complete")
    assert not source.passed and source.severity == dg.AssetCheckSeverity.WARN
    assert [r[:2] for r in _md_rows(source.metadata["details"])] == [
        ["missing_file", "MSFT"],
        ["unexpected_file", "AMZN.CSV"],
    ]
    assert [r[:2] for r in _md_rows(_check(result, "alt_data", "source_complete").metadata["details"])] == [
        ["missing_file", "MSFT"]
    ]
    steps = _check(result, "raw_prices", "price_steps")
    assert not steps.passed and steps.severity == dg.AssetCheckSeverity.WARN and steps.metadata["count"].value == 1
    assert _md_rows(steps.metadata["details"]) == [
        ["AAA", "2024-03-05", "adj_close", "2024-03-04", "10", "16", "1.6", "jump"]
    ]
    excluded = _check(result, "alt_data", "excluded_records")
    assert not excluded.passed and excluded.severity == dg.AssetCheckSeverity.WARN
    assert _md_rows(excluded.metadata["details"]) == [["2024-03-05", "created_long_before_file_date", "1", "36"]]
    meta = result.asset_materializations_for_node("alt_data")[0].metadata  # the run's, over both partitions
    assert (meta["records_read"].value, meta["rows_quarantined"].value, meta["rows_excluded"].value) == (36, 2, 1)


def test_stocknet_backlog_day_and_worst_day_pass_the_default_blocking_check(dagster_instance, lake_root, stocknet_dir):
    """2014-11-14: all 27 tweets are the Nov 9-10 backlog (excluded, not damage); 2015-05-14, the worst
    2014-2015 day, has 3 duplicates among the 122 tweets of its files: 2.5% (against its 34 aggregates plus
    3, as counted before, 8.1%).

    Read off the files: ``cat tweet/preprocessed/*/2014-11-14 | grep -c .`` -> 27, created Nov 09 (21) and
    Nov 10 (6); ``cat tweet/preprocessed/*/2015-05-14 | grep -c .`` -> 122, of which 3 repeat an earlier
    line's ticker, created_at, user and text; 34 tickers have tweets created on May 14 UTC (files 05-14
    and 05-15); ``grep -l '^2014-11-14,' price/raw/*.csv | wc -l`` -> 68, ``'^2015-05-14,'`` -> 69.
    """
    resources = {
        "lake": LakeResource(root=str(lake_root)),
        "market": MarketDataResource(kind="stocknet", stocknet_dir=str(stocknet_dir)),
    }
    expected = {
        # partition: (price rows, tweet lines read, quarantined, excluded, aggregates)
        "2014-11-14": (68, 27, 27, 27, 0),
        "2015-05-14": (69, 122, 3, 0, 34),
    }
    for key, (bars, read, quarantined, excluded, aggregates) in expected.items():
        result = dg.materialize(
            [raw_prices, alt_data], partition_key=key, instance=dagster_instance, resources=resources
        )
        assert result.success
        assert _check(result, "raw_prices").passed and _check(result, "alt_data").passed
        prices = result.asset_materializations_for_node("raw_prices")[0].metadata
        assert (prices["dagster/row_count"].value, prices["records_read"].value, prices["rows_quarantined"].value) == (
            bars,
            bars,
            0,
        )
        alt = result.asset_materializations_for_node("alt_data")[0].metadata
        got = (
            alt["records_read"].value,
            alt["rows_quarantined"].value,
            alt["rows_excluded"].value,
            alt["dagster/row_count"].value,
        )
        assert got == (read, quarantined, excluded, aggregates)
        assert _check(result, "alt_data").metadata["worst_share"].value == round((quarantined - excluded) / read, 6)
        assert _check(result, "alt_data", "excluded_records").passed == (excluded == 0)
        assert _check(result, "raw_prices", "source_complete").metadata["count"].value == 18  # StockTable 88, files 70
        assert _check(result, "alt_data", "source_complete").metadata["count"].value == 19  # 69 tweet directories

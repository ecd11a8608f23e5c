"""Feature assets and the Postgres catalog, materialised on a real Postgres-backed instance."""

import dagster as dg
import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.features import catalog
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.storage import pg
from quant_assets.defs.features import alt_features, feature_catalog, price_features
from quant_assets.defs.raw import alt_data, raw_prices
from quant_assets.defs.resources import LakeResource, MarketDataResource, RegistryResource

ASSETS = [raw_prices, alt_data, price_features, alt_features]


def test_lineage_shows_which_sources_each_family_reads():
    from quant_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("price_features")).parent_keys == {dg.AssetKey("raw_prices")}
    assert graph.get(dg.AssetKey("alt_features")).parent_keys == {dg.AssetKey("alt_data")}
    assert {c.name for c in graph.get_check_keys_for_assets({dg.AssetKey("price_features")})} == {
        "no_lookahead_recompute",
        "ingest_not_before_inputs",
        "fresh",
        "files_intact",
        "null_rate",
    }


def test_catalog_registers_every_version_once(pg_db, dagster_instance):
    resources = {"registry": RegistryResource(url=pg_db)}
    first = dg.materialize([feature_catalog], instance=dagster_instance, resources=resources)
    again = dg.materialize([feature_catalog], instance=dagster_instance, resources=resources)
    meta = first.asset_materializations_for_node("feature_catalog")[0].metadata
    assert meta["newly_registered"].value == len(ALL_FEATURES) >= 25
    assert again.asset_materializations_for_node("feature_catalog")[0].metadata["newly_registered"].value == 0
    assert "| rsi_14 " in meta["catalog"].value and ALL_FEATURES["rsi_14"].version in meta["catalog"].value
    with pg.connect(pg_db) as conn:
        table = catalog.feature_catalog(conn)
    assert len(table) == len(ALL_FEATURES)
    row = table.set_index("name").loc["rsi_14"]
    assert (row["version"], row["lookback"], row["lag_seconds"]) == (ALL_FEATURES["rsi_14"].version, 15, 900)
    assert list(table.set_index("name").loc["cs_rank_ret_5", "depends_on"]) == [ALL_FEATURES["ret_5"].key]


def test_features_for_a_range_pass_their_guards_and_serve_point_in_time(dagster_instance, lake_root, pg_db):
    resources = {
        "lake": LakeResource(root=str(lake_root)),
        "market": MarketDataResource(n_tickers=15),
        "registry": RegistryResource(url=pg_db),
    }
    warmup = {"dagster/asset_partition_range_start": "2024-01-02", "dagster/asset_partition_range_end": "2024-04-01"}
    result = dg.materialize(ASSETS, instance=dagster_instance, resources=resources, tags=warmup)
    assert result.success
    evals = {(e.asset_key.path[0], e.check_name): e for e in result.get_asset_check_evaluations()}
    for family in ("price_features", "alt_features"):
        for check in ("no_lookahead_recompute", "ingest_not_before_inputs", "fresh", "files_intact"):
            assert evals[(family, check)].passed, (family, check)
        # every part the run wrote (one per session) and the only other file, the family's manifest
        assert evals[(family, "files_intact")].metadata["files_checked"].value == 62 + 1
        assert evals[(family, "no_lookahead_recompute")].metadata["rows_recomputed"].value > 100
    meta = result.asset_materializations_for_node("price_features")[0].metadata
    assert meta["dagster/row_count"].value == 15 * len(sessions.sessions_between("2024-01-02", "2024-04-01"))
    # The day after the range, served at its decision time, is the range's last day.
    store = FeatureStore(lake_root, ALL_FEATURES)
    got = store.get_latest(
        [f"SYN{i:03d}" for i in range(15)], ["ret_20", "sentiment_1"], sessions.decision_time("2024-04-02")
    )
    assert got["ret_20"].notna().all() and (got["event_time_price"] == sessions.session_close("2024-04-01")).all()
    assert (got["event_time_alt"] == pd.Timestamp("2024-04-02", tz="UTC")).all()
    # Re-running a day adds nothing.
    again = dg.materialize(ASSETS, instance=dagster_instance, resources=resources, partition_key="2024-03-01")
    assert again.asset_materializations_for_node("price_features")[0].metadata["rows_written"].value == 0


def test_a_damaged_stored_feature_file_fails_the_blocking_files_intact_check(dagster_instance, lake_root, pg_db):
    resources = {
        "lake": LakeResource(root=str(lake_root)),
        "market": MarketDataResource(n_tickers=5),
        "registry": RegistryResource(url=pg_db),
    }
    first = {"dagster/asset_partition_range_start": "2024-03-01", "dagster/asset_partition_range_end": "2024-03-08"}
    assert dg.materialize(ASSETS, instance=dagster_instance, resources=resources, tags=first).success
    victim = sorted((lake_root / "features" / "price").glob("fv=*/date=2024-03-05/part-*.parquet"))[0]
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 3] ^= 0x01  # one flipped bit inside a data page
    victim.write_bytes(bytes(blob))
    config = {"ops": {"price_features": {"config": {"verify_sample": 100}}}}
    result = dg.materialize(
        ASSETS,
        instance=dagster_instance,
        resources=resources,
        partition_key="2024-03-11",
        run_config=config,
        raise_on_error=False,
    )
    assert not result.success  # blocking: nothing downstream of a damaged store runs
    evals = {(e.asset_key.path[0], e.check_name): e for e in result.get_asset_check_evaluations()}
    check = evals[("price_features", "files_intact")]
    assert not check.passed and check.metadata["failures"].value == 1
    assert str(victim) in check.metadata["examples"].value
    assert evals[("alt_features", "files_intact")].passed

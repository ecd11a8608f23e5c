"""Feature computation: perturbation (no lookahead), restatements, hand-checked values, the guards."""

import csv
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.features import checks, compute
from quant_assets.core.features.files import write_day
from quant_assets.core.features.library import ALL_FEATURES, ALT_FAMILY, FAMILIES, PRICE_FAMILY
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import ALT_SCHEMA, PRICE_SCHEMA, PRICE_VALUES, ingest_alt, ingest_prices
from quant_assets.core.ingest.sources import SyntheticMarket, make_sources
from quant_assets.core.storage import lake

PROV = {"producer": "test", "producer_version": "sha", "run_id": "r"}
SESSIONS = sessions.sessions_between("2024-01-02", "2024-04-30")


@pytest.fixture(scope="module")
def synthetic_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    market = SyntheticMarket(seed=9, n_tickers=12)
    for day in SESSIONS:
        ingest_prices(market, day, root)
        ingest_alt(market, day, root)
    return root


def _features_for(root, days) -> dict:
    out = {}
    for family in FAMILIES.values():
        inputs = compute.load_inputs(root, family, days)
        for day in days:
            out[(family.name, day)] = compute.compute_day(family, compute.window_rows(family, inputs, day), day)
    return out


def test_library_is_large_versioned_and_declares_lookback_and_lag():
    assert len(ALL_FEATURES) >= 25
    versions = {f.key for f in ALL_FEATURES.values()}
    assert len(versions) == len(ALL_FEATURES)
    assert PRICE_FAMILY.lookback == 61 and ALT_FAMILY.lookback == 21
    assert {f.lag for f in PRICE_FAMILY.features} == {pd.Timedelta(minutes=15)}
    assert {f.lag for f in ALT_FAMILY.features} == {pd.Timedelta(minutes=30)}
    assert ALL_FEATURES["cs_rank_ret_5"].depends_on == (ALL_FEATURES["ret_5"],)


def _perturb_after(root, dst, cutoff: pd.Timestamp, rng: np.random.Generator) -> None:
    """Copy the lake, changing or deleting every input row known after ``cutoff``, and restating old bars."""
    for dataset in ("raw_prices", "alt_data"):
        for part in sorted((root / dataset).glob("date=*")):
            day = dt.date.fromisoformat(part.name[5:])
            rows = lake.read_partition(root, dataset, day)
            future = (rows["ingest_time"] > cutoff) | (rows["event_time"] > cutoff)
            kept = rows[~future | (rng.random(len(rows)) < 0.5)].copy()
            value_cols = ["close", "adj_close", "high"] if dataset == "raw_prices" else ["sentiment", "tweet_count"]
            changed = (kept["ingest_time"] > cutoff) | (kept["event_time"] > cutoff)
            for c in value_cols:
                kept.loc[changed, c] = (kept.loc[changed, c] * 2 + 1).astype(kept[c].dtype)
            # a late restatement of an old bar, arriving after the cut-off
            old = rows[~future].head(3).copy()
            old["ingest_time"] = cutoff + pd.Timedelta(hours=1)
            for c in value_cols:
                old[c] = old[c] * 3
            out = pd.concat([kept, old], ignore_index=True)
            table = lake.canonical_table(
                out.drop(columns=["date"], errors="ignore"),
                ["ticker", "event_time", "ingest_time"],
                PRICE_SCHEMA if dataset == "raw_prices" else ALT_SCHEMA,
            )
            lake.write_part(lake.partition_dir(dst, dataset, day), table)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_perturbing_the_future_leaves_the_past_identical(synthetic_lake, tmp_path, seed):
    rng = np.random.default_rng(seed)
    cut_day = SESSIONS[int(rng.integers(70, len(SESSIONS) - 5))]
    cutoff = sessions.session_close(cut_day) + pd.Timedelta(minutes=int(rng.integers(0, 24 * 60)))
    _perturb_after(synthetic_lake, tmp_path / "perturbed", cutoff, rng)
    days = SESSIONS[60:]
    original = _features_for(synthetic_lake, days)
    perturbed = _features_for(tmp_path / "perturbed", days)
    compared = 0
    for key, rows in original.items():
        past = rows[rows["ingest_time"] <= cutoff].reset_index(drop=True)
        again = perturbed[key]
        again = again[again["ingest_time"] <= cutoff].reset_index(drop=True)
        pd.testing.assert_frame_equal(past, again, check_exact=True)
        compared += len(past)
    assert compared > 200
    # the point-in-time answers at or before the cut-off, too
    answers = []
    for lake_root, feats in ((tmp_path / "a", original), (tmp_path / "b", perturbed)):
        for (family, day), rows in feats.items():
            write_day(lake_root, FAMILIES[family], day, rows, PROV)
        q = pd.DataFrame(
            [
                (t, sessions.decision_time(d))
                for d in days
                if sessions.decision_time(d) <= cutoff
                for t in ("SYN000", "SYN005", "SYN011")
            ],
            columns=["entity_key", "as_of"],
        )
        answers.append(FeatureStore(lake_root, ALL_FEATURES).get_point_in_time(q, list(ALL_FEATURES)))
    assert len(answers[0]) > 30
    pd.testing.assert_frame_equal(answers[0], answers[1], check_exact=True)
    # and the future really did change
    assert any(not rows.equals(perturbed[key]) for key, rows in original.items())


def test_a_restated_bar_gives_a_new_feature_row_and_keeps_the_old(synthetic_lake, tmp_path):
    day = SESSIONS[80]
    root = tmp_path / "lake"
    for d in SESSIONS[18:81]:
        for dataset in ("raw_prices",):
            for f in lake.partition_dir(synthetic_lake, dataset, d).glob("part-*.parquet"):
                target = lake.partition_dir(root, dataset, d) / f.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(f.read_bytes())
    before = compute.compute_day(PRICE_FAMILY, compute.load_window(root, PRICE_FAMILY, day), day)
    # restate SYN003's close two sessions ago, known at T
    fixed = SESSIONS[78]
    rows = lake.read_partition(root, "raw_prices", fixed)
    rows.loc[rows["ticker"] == "SYN003", ["close", "adj_close"]] *= 1.1
    correction = sessions.session_close(day) + pd.Timedelta(hours=3)
    lake.append_new_versions(
        root,
        "raw_prices",
        fixed,
        rows.drop(columns=["date"], errors="ignore"),
        ["ticker", "event_time"],
        PRICE_VALUES,
        correction,
        PRICE_SCHEMA,
    )
    after = compute.compute_day(PRICE_FAMILY, compute.load_window(root, PRICE_FAMILY, day), day)
    new = after[after["ingest_time"] == correction].set_index("entity_key")
    old = after[after["ingest_time"] < correction].set_index("entity_key")
    pd.testing.assert_frame_equal(old.reset_index(), before.set_index("entity_key").reset_index())
    # Only rows whose values moved get a new version: SYN003 itself, and others via cross-sectional ranks.
    assert "SYN003" in new.index and len(new) < len(old)
    assert new.loc["SYN003", "ma_gap_5"] < old.loc["SYN003", "ma_gap_5"]  # a close in its 5-day mean went up
    assert new.loc["SYN003", "ret_5"] == old.loc["SYN003", "ret_5"]  # 5-day return skips that session
    write_day(tmp_path / "fs", PRICE_FAMILY, day, after, PROV)
    fs = FeatureStore(tmp_path / "fs", ALL_FEATURES)
    q = pd.DataFrame({"entity_key": ["SYN003", "SYN003"], "as_of": [correction - pd.Timedelta(seconds=1), correction]})
    got = fs.get_point_in_time(q, ["ma_gap_5"])["ma_gap_5"].tolist()
    assert got == [old.loc["SYN003", "ma_gap_5"], new.loc["SYN003", "ma_gap_5"]]


def test_guards_pass_on_honest_rows_and_catch_cheating(synthetic_lake):
    day = SESSIONS[75]
    rows = compute.load_window(synthetic_lake, PRICE_FAMILY, day)
    out = compute.compute_day(PRICE_FAMILY, rows, day)
    assert checks.recompute_truncated(PRICE_FAMILY, rows, day, out, 12, seed=1).passed
    assert checks.ingest_not_before_inputs(PRICE_FAMILY, rows, out).passed
    assert checks.freshness(PRICE_FAMILY, day, out["event_time"].max()).passed
    assert not checks.freshness(PRICE_FAMILY, day, sessions.session_close(SESSIONS[74])).passed
    # A row stamped before its inputs were known, and a value no honest input produces.
    early = out.copy()
    early.loc[0, "ingest_time"] = early.loc[0, "event_time"] + pd.Timedelta(minutes=5)
    result = checks.ingest_not_before_inputs(PRICE_FAMILY, rows, early)
    assert not result.passed and len(result.failures) == 1
    forged = out.copy()
    forged["ret_1"] = forged["ret_1"] + 0.01
    result = checks.recompute_truncated(PRICE_FAMILY, rows, day, forged, 5, seed=1)
    assert not result.passed and "ret_1" in result.failures[0]


def test_one_day_reads_only_its_window(synthetic_lake):
    day = SESSIONS[-1]
    parts = compute.window_partitions(PRICE_FAMILY, day)
    assert len(parts) == 61 and parts[-1] == day
    alt_parts = compute.window_partitions(ALT_FAMILY, day)
    assert alt_parts[-1] == day and len(alt_parts) <= compute.partition_span(ALT_FAMILY) + 1


def _csv(stocknet_dir, ticker):
    with open(stocknet_dir / "price" / "raw" / f"{ticker}.csv") as fh:
        return {r["Date"]: r for r in csv.DictReader(fh)}


def test_hand_computed_features_on_stocknet(stocknet_dir, tmp_path):
    prices, _ = make_sources("stocknet", stocknet_dir=str(stocknet_dir))
    day = dt.date(2015, 6, 15)
    window = sessions.sessions_between(sessions.session_at(sessions.session_index(day) - 60), day)
    for d in window:
        ingest_prices(prices, d, tmp_path)
    out = compute.compute_day(PRICE_FAMILY, compute.load_window(tmp_path, PRICE_FAMILY, day), day)
    got = out.set_index("entity_key")
    for ticker in ("AAPL", "MSFT", "XOM" if (stocknet_dir / "price/raw/XOM.csv").exists() else "JNJ"):
        rows = _csv(stocknet_dir, ticker)
        adj = [float(rows[d.isoformat()]["Adj Close"]) for d in window]
        assert got.loc[ticker, "ret_5"] == pytest.approx(math.log(adj[-1] / adj[-6]), abs=1e-12)
        changes = [adj[i] - adj[i - 1] for i in range(len(adj) - 14, len(adj))]
        gain = sum(c for c in changes if c > 0) / 14
        loss = sum(-c for c in changes if c < 0) / 14
        assert got.loc[ticker, "rsi_14"] == pytest.approx(100 - 100 / (1 + gain / loss), abs=1e-9)
        bar = rows[day.isoformat()]
        o, h, lo, c = (float(bar[k]) for k in ("Open", "High", "Low", "Close"))
        assert got.loc[ticker, "kmid"] == pytest.approx((c - o) / o, abs=1e-12)
        assert got.loc[ticker, "hl_range_1"] == pytest.approx((h - lo) / c, abs=1e-12)
        assert got.loc[ticker, "ma_gap_20"] == pytest.approx(adj[-1] / (sum(adj[-20:]) / 20) - 1, abs=1e-12)
    assert got["cs_rank_ret_5"].max() == 1.0
    assert (got.loc["AAPL", "event_time"], got.loc["AAPL", "ingest_time"]) == (
        pd.Timestamp("2015-06-15 20:00", tz="UTC"),
        pd.Timestamp("2015-06-15 20:15", tz="UTC"),
    )

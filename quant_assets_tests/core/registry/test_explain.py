"""Explaining a past prediction (core/registry/explain.py) on a real registry and lake: the vector as known at
the decision time gives the stored prediction bit for bit, before and after a restatement delivered later, which
only the today's-knowledge section sees; the rows view names every stored row used, its file and raw parts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.features.library import PRICE_FAMILY
from quant_assets.core.registry import explain
from quant_assets.core.storage import pg
from quant_assets_tests.core.registry.helpers import restate_close, scored_model

DAYS = sessions.sessions_between("2024-05-01", "2024-05-08")
DAY, TICKER = dt.date(2024, 5, 6), "SYN005"
LATER = sessions.session_close(dt.date(2024, 5, 10)) + pd.Timedelta(hours=1)


def test_the_explained_prediction_is_the_stored_one_and_a_later_restatement_shows_only_as_todays_knowledge(
    feature_lake, tmp_path, pg_db
):
    root = tmp_path / "lake"
    store, node = scored_model(feature_lake, root, pg_db, ("2024-01-02", "2024-04-30"), DAYS)
    with pg.connect(pg_db) as conn:
        before = explain.explain(conn, root, store, "explained:v1", DAY, TICKER, LATER)
        assert before.node == node and before.identical and before.recomputed == before.stored
        assert len(before.then) == len(store.definitions) and before.then["value"].notna().sum() >= 10
        assert (before.then["ingest_time"] <= sessions.decision_time(DAY)).all()
        assert before.restated == [] and explain.same_bits(before.now_prediction, before.stored)
        # every name of every day it scored: recomputed bit for bit
        for day in DAYS:
            for ticker in ("SYN000", "SYN017", "SYN039"):
                assert explain.explain(conn, root, store, "explained", day, ticker, LATER).identical

        restate_close(root, sessions.previous_session(DAY), TICKER, 1.5, LATER)
        after = explain.explain(conn, root, store, "explained:v1", DAY, TICKER, LATER + pd.Timedelta(minutes=1))
        pd.testing.assert_frame_equal(after.then, before.then, check_exact=True)
        assert after.identical and explain.same_bits(after.recomputed, before.recomputed)
        assert "ret_1" in after.restated and set(after.restated) <= {f.name for f in PRICE_FAMILY.features}
        changed = after.now[after.now["feature"].isin(after.restated)]
        assert (changed["ingest_time"] == LATER).all()
        assert not explain.same_bits(after.now_prediction, after.stored)
        # known just before the restatement arrived: nothing restated yet
        early = explain.explain(conn, root, store, "explained:v1", DAY, TICKER, LATER - pd.Timedelta(seconds=1))
        assert early.restated == [] and explain.same_bits(early.now_prediction, early.stored)


def test_the_rows_view_names_each_stored_row_its_file_and_raw_parts(feature_lake, tmp_path, pg_db):
    root = tmp_path / "lake"
    store, node = scored_model(feature_lake, root, pg_db, ("2024-01-02", "2024-04-30"), DAYS)
    with pg.connect(pg_db) as conn:
        used = explain.used_rows(conn, root, store, "explained", DAY)
        one = explain.explain(conn, root, store, "explained", DAY, TICKER, LATER)
    rows = used.rows
    assert used.node == node and rows["entity_key"].nunique() == 40
    assert rows["file"].notna().all() and rows["inputs"].str.contains("/_inputs-").all()
    assert all((root / f).exists() for f in rows["file"].unique())
    assert all((root / f).exists() for f in rows["inputs"].unique())
    mine = rows[rows["entity_key"] == TICKER].set_index("feature")
    usable = one.then.dropna(subset=["value"]).set_index("feature")
    assert set(mine.index) == set(usable.index)
    assert (mine.loc[usable.index, "ingest_time"] == usable["ingest_time"]).all()
    assert (mine["version"] == usable.loc[mine.index, "version"]).all()
    for marker, parts in used.sources.items():
        assert "/_inputs-" in marker and parts and all((root / p).exists() for p in parts)
    price = rows[rows["file"].str.startswith("features/price/")]
    assert {p.split("/")[0] for m in price["inputs"].unique() for p in used.sources[m]} == {"raw_prices"}


def test_unknown_model_unscored_session_and_unscored_name_are_refused(feature_lake, tmp_path, pg_db):
    root = tmp_path / "lake"
    store, node = scored_model(feature_lake, root, pg_db, ("2024-01-02", "2024-04-30"), DAYS[:2])
    with pg.connect(pg_db) as conn:
        with pytest.raises(explain.ExplainError, match="no model 'other'"):
            explain.explain(conn, root, store, "other", DAYS[0], TICKER, LATER)
        with pytest.raises(explain.ExplainError, match=f"{node} has no stored predictions for session 2024-05-06"):
            explain.explain(conn, root, store, "explained", DAY, TICKER, LATER)
        with pytest.raises(explain.ExplainError, match=f"{node} did not score NOPE on 2024-05-01"):
            explain.explain(conn, root, store, "explained", DAYS[0], "NOPE", LATER)


@pytest.mark.timeout(1800)  # the first test to read the StockNet lake builds it (two years, both families)
def test_on_stocknet_the_explained_predictions_are_the_stored_ones(stocknet_lake, tmp_path, pg_db):
    root, days = tmp_path / "lake", sessions.sessions_between("2015-07-01", "2015-07-07")
    store, node = scored_model(stocknet_lake, root, pg_db, ("2014-04-01", "2015-06-30"), days, "stocknet")
    with pg.connect(pg_db) as conn:
        for day in days:
            names = explain.used_rows(conn, root, store, "stocknet", day).rows["entity_key"].unique()
            assert len(names) >= 60
            for ticker in names[:: len(names) // 4]:
                found = explain.explain(conn, root, store, "stocknet:v1", day, ticker, LATER)
                assert found.node == node and found.identical and found.restated == []

"""Model registry and lineage on a real Postgres: known answers on a small hand-built models."""

import datetime as dt

import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.features.library import ALL_FEATURES, FAMILIES
from quant_assets.core.monitoring import history
from quant_assets.core.registry import artifacts, champion, lineage, models, promotion
from quant_assets.core.research import snapshots
from quant_assets.core.research.training import Ensemble, TrainConfig
from quant_assets.core.storage import pg

AS_OF = dt.date(2024, 1, 2)  # the session a test's promotion is decided on


def _metrics(rank_ic: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset_type": ["test", "test", "train"],
            "metric": ["rank_ic", "ic", "rank_ic"],
            "scope": ["overall"] * 3,
            "value": [rank_ic, rank_ic / 2, 0.5],
        }
    )


def tiny_files(root):
    """A one-feature model and its out-of-sample predictions, saved as the registry saves them."""
    frame = pd.DataFrame({"date": [1] * 50 + [2] * 50, "x": range(100), "label": [i % 7 for i in range(100)]})
    model = Ensemble.fit(frame, ["x"], TrainConfig(num_boost_round=3, seeds=(1,), params={"min_data_in_leaf": 5}))
    oos = frame.assign(entity_key=frame["x"].astype(str), prediction=model.predict(frame))
    return artifacts.save_model_files(root, "m", model.to_bytes(), oos[["date", "entity_key", "prediction", "label"]])


@pytest.fixture
def tiny_model(tmp_path):
    return tiny_files(tmp_path)


def _register(conn, files, snapshot, rank_ic, code="c1"):
    return models.register_model(
        conn, "m", snapshot, {"x": "v1"}, {"p": 1}, code, ("2024-01-02", "2024-03-28"), files, _metrics(rank_ic)
    )


def _snapshot(fingerprint: str, first: str, last: str, producer: str) -> dict:
    return {
        "fingerprint": fingerprint,
        "code_version": "c1",
        "features": {"ret_1": ALL_FEATURES["ret_1"].version},
        "date_range": [first, last],
        "source_partitions": {"raw_prices": [first, sessions.session_offset(last, 1).isoformat()]},
        "producer_versions": {f"price@{FAMILIES['price'].version}": [producer]},
    }


def test_lineage_names_exactly_the_partitions_each_snapshot_read(pg_db, tiny_model):
    """Two snapshots of one feature family, one built on 2024-02, the other on 2024-03: a partition only one of
    them read reaches only its model, one neither read reaches nothing, and the first model's tree ends at its
    own last label's session (the family node they share carries no partition)."""
    early, late = _snapshot("S1", "2024-02-01", "2024-02-29", "p1"), _snapshot("S2", "2024-03-01", "2024-03-28", "p2")
    with pg.connect(pg_db) as conn:
        for manifest in (early, late):
            lineage.add_edges(conn, lineage.snapshot_edges(manifest, *snapshots.lineage_windows(manifest)))
        m1, m2 = _register(conn, tiny_model, "S1", 0.05), _register(conn, tiny_model, "S2", 0.04)
        lineage.add_edges(conn, [(m1.node, "backtest:B1")])

        only_early = snapshots.lineage_windows(early)[1]["raw_prices"][0]  # before the late one's look-back
        assert only_early < snapshots.lineage_windows(late)[1]["raw_prices"][0]
        assert lineage.blast_radius(conn, "source:raw_prices:2024-03-15") == [m2.node]
        assert lineage.blast_radius(conn, f"source:raw_prices:{only_early}") == ["backtest:B1", m1.node]
        assert lineage.blast_radius(conn, "source:raw_prices:2024-05-01") == []
        assert lineage.blast_radius(conn, "code:p1") == ["backtest:B1", m1.node]
        read = sorted(s.split(":")[2] for s in lineage.upstream(conn, m1.node)["src"] if s.startswith("source:"))
        assert read[-1] == "2024-03-01" and read[0] < "2024-02-01"  # the last label's open, a look-back before


def test_lineage_upstream_downstream_and_blast_radius(pg_db, tiny_model):
    with pg.connect(pg_db) as conn:
        lineage.add_edges(
            conn,
            [
                ("source:raw_prices:2024-01-02", "family:price@f1"),
                ("source:raw_prices:2024-01-03", "family:price@f1"),
                ("code:c0", "family:price@f1"),
                ("family:price@f1", "feature:ret_5@a"),
                ("family:price@f1", "feature:ret_1@b"),
                ("feature:ret_5@a", "snapshot:S1"),
                ("feature:ret_1@b", "snapshot:S1"),
                ("feature:ret_1@b", "snapshot:S2"),
                ("code:c1", "snapshot:S1"),
            ],
        )
        m1 = _register(conn, tiny_model, "S1", 0.05)
        m2 = _register(conn, tiny_model, "S2", 0.04, code="c2")
        lineage.add_edges(conn, [(m1.node, "backtest:B1")])
        assert (m1.version, m2.version) == (1, 2)
        up = lineage.upstream(conn, m1.node)
        assert set(up["src"]) == {
            "snapshot:S1",
            "code:c1",
            "feature:ret_5@a",
            "feature:ret_1@b",
            "family:price@f1",
            "source:raw_prices:2024-01-02",
            "source:raw_prices:2024-01-03",
            "code:c0",
        }
        assert lineage.blast_radius(conn, "feature:ret_5@a") == ["backtest:B1", "model:m:v1"]
        assert lineage.blast_radius(conn, "feature:ret_1@b") == ["backtest:B1", "model:m:v1", "model:m:v2"]
        assert lineage.blast_radius(conn, "source:raw_prices:2024-01-02") == [
            "backtest:B1",
            "model:m:v1",
            "model:m:v2",
        ]
        assert lineage.blast_radius(conn, "code:c2") == ["model:m:v2"]
        assert lineage.blast_radius(conn, "code:c1") == ["backtest:B1", "model:m:v1"]
        assert lineage.node_exists(conn, "feature:ret_5@a") and not lineage.node_exists(conn, "feature:ret_5")
        assert models.model(conn, "m") == m2 and models.model(conn, "m:v1") == m1
        with pytest.raises(LookupError):
            models.model(conn, "nope")


def test_decisions_set_statuses_and_the_fallback_order(pg_db, tiny_model):
    with pg.connect(pg_db) as conn:
        bad = _register(conn, tiny_model, "S", -0.01)
        promotion.record(conn, bad, "rejected", "net Sharpe -0.4 is not > margin 0 (first champion)", as_of=AS_OF)
        first = _register(conn, tiny_model, "S", 0.03)
        promotion.record(conn, first, "promoted", "first champion", as_of=AS_OF)
        weaker = _register(conn, tiny_model, "S", 0.025)
        better = _register(conn, tiny_model, "S", 0.04)
        assert champion.shadows(conn, "m") == [weaker, better]
        promotion.record(conn, weaker, "rejected", "net Sharpe 0.8 is not > champion v2 1.1 + margin 0", as_of=AS_OF)
        promotion.record(conn, better, "promoted", "net Sharpe 1.4 > champion v2 1.1 + margin 0", as_of=AS_OF)
        assert models.champions(conn, "m") == [better, first] and champion.shadows(conn, "m") == []
        assert history.promotions(conn)["decision"].tolist() == ["rejected", "promoted", "rejected", "promoted"]
        with conn.cursor() as cur:
            cur.execute("SELECT version, status FROM quant.models ORDER BY version")
            assert cur.fetchall() == [(1, "rejected"), (2, "retired"), (3, "rejected"), (4, "champion")]
            cur.execute("SELECT count(*) FROM quant.model_promotions")
            assert cur.fetchone()[0] == 4


def test_tampered_or_missing_artifact_refuses_to_load(pg_db, tiny_model):
    with pg.connect(pg_db) as conn:
        ref = _register(conn, tiny_model, "S", 0.03)
        assert artifacts.load_model(conn, ref).features == ["x"]
        artifact = tiny_model.artifact.path
        blob = artifact.read_bytes()
        artifact.write_bytes(blob.replace(b'"x"', b'"y"', 1))
        with pytest.raises(artifacts.ArtifactTampered, match="fails verification"):
            artifacts.load_model(conn, ref)
        artifact.unlink()
        with pytest.raises(artifacts.ArtifactTampered, match="unreadable"):
            artifacts.load_model(conn, ref)


DAYS = [d.isoformat() for d in sessions.sessions_between("2024-06-03", "2024-06-07")]


def _trading_day_graph(conn) -> None:
    """One model's prediction, book, drift and backtest nodes over a week, from the edge builders the assets use:
    feature partitions of "price/fv=u" reading two raw partitions each, each prediction day the partitions before
    it in its window (its own listed too, and left out), books and drift rows on their reads."""
    raw = sessions.sessions_between("2024-05-30", "2024-06-07")
    for i, day in enumerate(raw[2:], start=2):
        pair = raw[i - 1 : i + 1]
        edges = lineage.feature_partition_edges("price/fv=u", day, {"ret_1": "a"}, "raw_prices", pair, "p")
        lineage.add_edges(conn, edges)
    lineage.add_edges(conn, [("snapshot:S1", "model:m:v1"), ("source:raw_prices:2024-05-01", "snapshot:S1")])
    for day in DAYS:
        window = [p for p in raw[2:] if str(p) <= day][-3:]
        read = [f"features/price/fv=u/date={p}/part-{i}.parquet" for i, p in enumerate(window)]
        lineage.add_edges(conn, lineage.prediction_edges("model:m:v1", dt.date.fromisoformat(day), "c", read))
        parts = [f"predictions/date={day}/part-1.parquet", f"raw_prices/date={day}/part-2.parquet"]
        lineage.add_edges(conn, lineage.book_edges(dt.date.fromisoformat(day), "model:m:v1", parts))
    scored = lineage.children(conn, "model:m:v1", "prediction")
    parts = [f"predictions/date={d}/part-9.parquet" for d in ("2024-05-31", *DAYS[:2])]  # 05-31: no node of m:v1
    lineage.add_edges(conn, lineage.window_edges("drift:m:v1:2024-06-05", "model:m:v1", parts, scored))
    lineage.add_edges(conn, [("prediction:m:v1:2024-06-04", "backtest:B"), ("model:m:v1", "backtest:B")])


def test_downstream_by_kind_reaches_the_trading_day_and_folds_its_dates(pg_db):
    from quant_assets.core.registry.lineage_view import render_affected, render_upstream

    with pg.connect(pg_db) as conn:
        _trading_day_graph(conn)
        # raw 06-05 is read by the feature partitions of 06-05 and 06-06, which the predictions of 06-06 and 06-07
        # answer from (a day's own partition is not an edge), and by the book of 06-05
        hit = lineage.affected(conn, "source:raw_prices:2024-06-05")
        assert hit == {
            "model": [],
            "prediction": ["prediction:m:v1:2024-06-06", "prediction:m:v1:2024-06-07"],
            "book": ["book:2024-06-05", "book:2024-06-06", "book:2024-06-07"],
            "backtest": [],
            "drift": [],
        }
        assert lineage.affected(conn, "source:raw_prices:2024-06-03")["drift"] == ["drift:m:v1:2024-06-05"]
        everything = lineage.affected(conn, "source:raw_prices:2024-05-01")  # the snapshot's: the whole model
        assert everything["prediction"] == [f"prediction:m:v1:{d}" for d in DAYS]
        assert everything["book"] == [f"book:{d}" for d in DAYS] and everything["backtest"] == ["backtest:B"]
        drift_in = set(lineage.upstream(conn, "drift:m:v1:2024-06-05").query("depth == 1")["src"])
        assert drift_in == {"prediction:m:v1:2024-06-03", "prediction:m:v1:2024-06-04"}
        assert lineage.blast_radius(conn, "code:p") == ["backtest:B"]  # the features' producer: via 06-04's read
        text = render_affected("source:raw_prices:2024-05-01", everything)
        tree = render_upstream("prediction:m:v1:2024-06-07", lineage.upstream(conn, "prediction:m:v1:2024-06-07"))
        near = lineage.similar(conn, "prediction:m:v1:2099-01-01")
        assert near == ("prediction:m:v1:", 5, f"prediction:m:v1:{DAYS[0]}", f"prediction:m:v1:{DAYS[-1]}")
        assert lineage.similar(conn, "features:price/fv=x:2024-06-03")[:2] == ("features:", 5)
        assert lineage.similar(conn, "x") == ("x", 0, None, None)
    assert text.startswith("Downstream of source:raw_prices:2024-05-01:\n  models (1):\n    model:m:v1\n")
    assert "  prediction days (5):\n    prediction:m:v1: 5 on 2024-06-03..2024-06-07\n" in text
    assert "  book sessions (5):\n    book: 5 on 2024-06-03..2024-06-07\n  backtests (1):\n    backtest:B\n" in text
    assert text.endswith("  drift rows (1):\n    drift:m:v1: 1 on 2024-06-05")
    assert "└── features:price/fv=u:2024-06-05..2024-06-06 (2 partitions)\n" in tree  # not the day's own
    assert "    └── source:raw_prices:2024-06-04..2024-06-06 (3 partitions)" in tree

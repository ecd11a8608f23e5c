"""Replay (core/registry/replay.py) on a real Postgres and Parquet lake: a freshly trained model replays identical,
artifact by artifact; a restatement delivered after its as-of changes nothing, nor do sessions scored after a
backtest; a changed feature definition is named as the snapshot's difference; unknown targets are refused saying what
to give. (A tampered recorded environment: quant_assets_tests/cli/test_replay.py.)"""

from __future__ import annotations

import dataclasses

import pytest

from quant_assets.core import environment
from quant_assets.core.features.library import FAMILIES, PRICE_FAMILY
from quant_assets.core.registry import artifacts, champion, models, replay
from quant_assets.core.storage import pg
from quant_assets_tests.core.registry.helpers import SCORED, base_lake, registered, restate, score_more


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return base_lake(tmp_path_factory)


def _replay(root, url, tmp_path, target, **kwargs) -> replay.Report:
    with pg.connect(url) as conn:
        return replay.replay(conn, root, tmp_path / "scratch", target, **kwargs)


def report_manifest(root, url, ref) -> dict:
    with pg.connect(url) as conn:
        return champion.snapshot_of(conn, root, ref).manifest


def test_a_fresh_model_and_its_backtest_replay_identical(base, tmp_path, pg_db):
    root = tmp_path / "lake"
    ref, backtest = registered(base, root, pg_db)
    report = _replay(root, pg_db, tmp_path, ref.node)
    with pg.connect(pg_db) as conn:
        files = artifacts.registered_files(conn, ref)
    table = report.table().set_index("artifact")
    assert list(table.index) == [
        "snapshot fingerprint",
        "artifact sha256",
        "out-of-sample predictions sha256",
        "predictions",
        f"{backtest} metrics",
    ]
    assert (table["result"] == "identical").all() and (table["recorded"] == table["replayed"]).all()
    assert table.loc["artifact sha256", "recorded"] == files.artifact.sha256
    assert table.loc["predictions", "replayed"] == f"{len(SCORED)} days, {len(SCORED) * 10} rows"
    assert report.environment == [] and report.identical
    with pg.connect(pg_db) as conn:
        recorded = replay.recorded_environment(
            conn, ref, report_manifest(root, pg_db, ref), replay.resolve(conn, ref.node)[1]
        )
    assert set(recorded) == {
        "snapshot manifest",
        "model",
        "training key",
        f"backtest {backtest.removeprefix('backtest:')}",
    }
    assert recorded["model"] == recorded["snapshot manifest"] == environment.recorded()
    assert "2 folds after 15 sessions, 10 rounds, seeds [1], parameters {'min_data_in_leaf': 20}" in report.notes[0]
    assert "matches its training key" in report.notes[0]
    assert report.text().endswith("Result: IDENTICAL")


def test_a_restatement_delivered_after_the_as_of_leaves_the_replay_identical(base, tmp_path, pg_db):
    root = tmp_path / "lake"
    ref, backtest = registered(base, root, pg_db)
    restate(root, "2024-02-01", "SYN003", "2024-06-03 14:00")  # inside the snapshot's window, known long after
    score_more(root, pg_db, "2024-02-20", "2024-02-21")  # after the backtest: it is replayed on the sessions it held
    report = _replay(root, pg_db, tmp_path, f"backtest:{backtest.removeprefix('backtest:')}")
    assert report.model == ref.node and report.identical, report.text()
    assert report.artifacts[-2].replayed == f"{len(SCORED) + 2} days, {(len(SCORED) + 2) * 10} rows"
    metrics = report.artifacts[-1]
    assert metrics.name == f"{backtest} metrics" and metrics.replayed.endswith(" (15 sessions)")
    scratch = tmp_path / "scratch" / "raw_prices" / "date=2024-02-01"
    assert len(list(scratch.glob("part-*.parquet"))) == 1  # the restatement's part was not copied


def test_a_changed_feature_function_is_named_as_the_snapshot_difference(base, tmp_path, pg_db):
    root = tmp_path / "lake"
    ref, _ = registered(base, root, pg_db)
    changed = tuple(
        dataclasses.replace(f, params={"window": 4}) if f.name == "ma_gap_5" else f for f in PRICE_FAMILY.features
    )
    families = {**FAMILIES, "price": dataclasses.replace(PRICE_FAMILY, features=changed)}
    report = _replay(root, pg_db, tmp_path, ref.node, families=families)
    snapshot = report.artifacts[0]
    assert snapshot.name == "snapshot fingerprint" and not snapshot.identical and not report.identical
    old, new = FAMILIES["price"].features, changed
    version = {f.name: f.version for f in old}["ma_gap_5"], {f.name: f.version for f in new}["ma_gap_5"]
    assert snapshot.why[0] == f"feature versions differ: ma_gap_5 (recorded {version[0]}, replayed {version[1]})"
    assert snapshot.why[1] == "manifest fields differ: source_partitions"  # the price family's version is new too
    assert snapshot.why[2].startswith("rows differ: ") and snapshot.why[2].endswith("with other values (ma_gap_5)")
    assert "Result: DIFFERS" in report.text()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("model:nobody:v1", "no model 'nobody:v1' in the registry"),
        ("backtest:nothing", "no backtest 'nothing' in the registry"),
        ("snapshot:abc", "cannot replay 'snapshot:abc': give model:<name>:vN or backtest:<id>"),
        ("model:", "cannot replay 'model:'"),
    ],
)
def test_unknown_targets_are_refused_saying_what_to_give(pg_db, tmp_path, target, message):
    with pg.connect(pg_db) as conn, pytest.raises(replay.ReplayError, match=message):
        replay.replay(conn, tmp_path, tmp_path / "scratch", target)


def test_a_sweeps_backtest_is_refused_it_has_no_model(pg_db, tmp_path):
    with pg.connect(pg_db) as conn:
        models.record_backtest(conn, "sweep:abc", "sweep", "f" * 64, {}, {"best": "x"})
        with pytest.raises(replay.ReplayError, match="backtest:sweep:abc is a sweep over a snapshot, not a model's"):
            replay.replay(conn, tmp_path, tmp_path / "scratch", "backtest:sweep:abc")

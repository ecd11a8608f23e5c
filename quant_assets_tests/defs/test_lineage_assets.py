"""Lineage to the trading day on a real instance and Postgres: the feature, predictions, book and backtest assets
write their edges, a bad raw partition's blast radius reaches exactly what read it, a prediction day's upstream is
its window's feature partitions and theirs, and the UI shows a model's upstream and every version's downstream."""

from __future__ import annotations

import shutil

import dagster as dg

from quant_assets.core import sessions
from quant_assets.core.features import compute, staleness
from quant_assets.core.features.files import day_names, partition_day
from quant_assets.core.features.library import FAMILIES
from quant_assets.core.registry import lineage
from quant_assets.core.research import snapshots
from quant_assets.core.storage import lake, pg
from quant_assets.defs.backtests import champion_backtest
from quant_assets.defs.features import alt_features, price_features
from quant_assets.defs.lineage import model_lineage
from quant_assets.defs.models import predictions, trained_model, training_snapshot
from quant_assets.defs.promotion import promotion_decision
from quant_assets.defs.resources import AlertPolicy, LakeResource, RegistryResource
from quant_assets.defs.trading import live_book
from quant_assets_tests.run_configs import PROMOTED_RUN_CONFIG

FEATURES = ("2024-05-20", "2024-06-14")  # features computed by the assets (their edges written); earlier: copied
SCORED = ("2024-06-03", "2024-06-14")  # the champion's prediction days and book sessions
MODEL = "model:equity_lgbm:v1"


def _range(first: str, last: str) -> dict:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def _run(tmp_path, feature_lake, pg_db, dagster_instance):
    """The synthetic lake's raw data and its features before FEATURES; the features of FEATURES, snapshot, model,
    promotion, predictions, book, backtest and the lineage table by the assets. Returns the lake root and the
    training's and lineage table's results."""
    root = tmp_path / "lake"
    shutil.copytree(feature_lake, root, ignore=_later_features)
    resources = {"lake": LakeResource(root=str(root)), "registry": RegistryResource(url=pg_db),
                 "alert_policy": AlertPolicy()}  # fmt: skip
    run = lambda assets, **kw: dg.materialize(assets, instance=dagster_instance, resources=resources, **kw)  # noqa: E731
    assert run([price_features, alt_features], tags=_range(*FEATURES)).success
    trained = run([training_snapshot, trained_model, promotion_decision], run_config=PROMOTED_RUN_CONFIG)
    daily = run([predictions, live_book], tags=_range(*SCORED))
    backtested = run([champion_backtest])
    shown = run([model_lineage], partition_key=SCORED[1])
    assert trained.success and daily.success and backtested.success and shown.success
    return root, trained, shown


def _later_features(directory: str, names: list[str]) -> list[str]:
    """What not to copy: snapshots, models, compactions, and the feature partitions from FEATURES' first day."""
    late = [n for n in names if "/features/" in directory and n.startswith("date=") and n >= f"date={FEATURES[0]}"]
    return late + [n for n in names if n in ("snapshots", "models", "_compacted")]


def _window_partitions(root, day) -> dict[str, set[str]]:
    """Each feature directory's partitions with parts in ``day``'s point-in-time window before the day itself,
    listed from the lake: what the prediction of ``day`` may answer from."""
    first = staleness.earliest_partition(day)
    out = {}
    for family in ("price", "alt"):
        for directory in (root / "features" / family).glob("fv=*"):
            names = day_names(directory, {first.isoformat()[:7], day.isoformat()[:7]})
            days = {partition_day(n) for n in names if first.isoformat() <= partition_day(n) < day.isoformat()}
            out[f"{family}/{directory.name}"] = days
    return out


def test_lineage_reaches_the_trading_day_and_the_ui_shows_it(tmp_path, feature_lake, pg_db, dagster_instance):
    root, trained, shown = _run(tmp_path, feature_lake, pg_db, dagster_instance)
    days = [d.isoformat() for d in sessions.sessions_between(*SCORED)]
    manifest = snapshots.read(trained.output_for_node("training_snapshot")).manifest
    window = snapshots.lineage_windows(manifest)[1]
    read = snapshots.stored_partitions(root, window)["raw_prices"]  # the window's days the lake holds
    with pg.connect(pg_db) as conn:
        # a partition the snapshot read: its model, every prediction day and book session, the backtest
        hit = lineage.affected(conn, f"source:raw_prices:{read[0]}")
        backtests = hit["backtest"]
        assert hit["model"] == [MODEL] and len(backtests) == 1 and backtests[0].startswith("backtest:equity_lgbm:v1:")
        assert hit["prediction"] == [f"prediction:equity_lgbm:v1:{d}" for d in days]
        assert hit["book"] == [f"book:{d}" for d in days]
        # the backtest read the stored prediction days (its live part)
        into_backtest = set(lineage.upstream(conn, backtests[0]).query("depth == 1")["src"])
        assert {f"prediction:equity_lgbm:v1:{d}" for d in days} <= into_backtest
        # the last scored day's prices: read by that day's feature partition (no prediction answers from it: a
        # day's own partition holds events after its decision time) and by the book that realises with them
        missed = lineage.affected(conn, f"source:raw_prices:{SCORED[1]}")
        assert SCORED[1] not in read
        assert (missed["model"], missed["prediction"], missed["backtest"]) == ([], [], [])
        assert missed["book"] == [f"book:{SCORED[1]}"]
        _assert_prediction_upstream(conn, root, sessions.as_date(days[2]))
    _assert_ui(trained, shown, manifest, days)


def _assert_prediction_upstream(conn, root, day) -> None:
    """The prediction's parents: its model, the code that scored it and exactly its window's feature partitions;
    each of those: its unit's feature versions, the raw partitions of its window and its code version."""
    node = f"prediction:equity_lgbm:v1:{day}"
    up = lineage.upstream(conn, node)
    parents = set(up[up["dst"] == node]["src"])
    expected = {lineage.features_node(d, p) for d, days in _window_partitions(root, day).items() for p in days}
    assert MODEL in parents and sum(p.startswith("code:") for p in parents) == 1
    assert {p for p in parents if p.startswith("features:")} == expected and len(expected) > 4
    for partition in sorted(expected)[:3] + sorted(expected)[-3:]:
        family = FAMILIES[partition.removeprefix("features:").split("/")[0]]
        on = sessions.as_date(partition.rsplit(":", 1)[1])
        window = compute.window_partitions(family, on)
        raw = {p.isoformat() for p in window if lake.partition_files(lake.partition_dir(root, family.source, p))}
        into = set(up[up["dst"] == partition]["src"])
        assert {s.rsplit(":", 1)[1] for s in into if s.startswith("source:")} == raw
        assert {s for s in into if s.startswith("feature:")} == {f"feature:{f.key}" for f in family.features}
        assert sum(s.startswith("code:") for s in into) == 1


def _assert_ui(trained, shown, manifest: dict, days: list[str]) -> None:
    """trained_model's upstream table and model_lineage's downstream table."""
    table = trained.asset_materializations_for_node("trained_model")[0].metadata["lineage"].value
    rows = [(r.data["kind"], r.data["node"], r.data["detail"]) for r in table.records]
    assert rows[0][:2] == ("snapshot", f"snapshot:{manifest['fingerprint']}")
    assert {n for k, n, _ in rows if k == "feature"} == {f"feature:{n}@{v}" for n, v in manifest["features"].items()}
    assert [k for k, _, _ in rows].count("code") == 1
    assert {n: d for k, n, d in rows if k == "environment"} == manifest["environment"]
    meta = shown.asset_materializations_for_node("model_lineage")[0].metadata
    (row,) = [r.data for r in meta["downstream"].value.records]
    assert meta["models"].value == 1 and row["model"] == MODEL and row["state"] == "live"
    assert (row["prediction_days"], row["prediction_span"]) == (len(days), f"{days[0]}..{days[-1]}")
    assert (row["book_sessions"], row["book_span"]) == (len(days), f"{days[0]}..{days[-1]}")
    assert row["drift_rows"] == 0 and row["backtests"].startswith("equity_lgbm:v1:")

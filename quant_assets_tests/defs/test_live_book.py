"""live_book on a real instance and Postgres: each session traded from the one before under the champion's state,
the P&L equal to the backtest engine's on the same predictions and labels to the last bit, a pause flat from the
session after it was decided, a traded session never rewritten and a gap refused."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.monitoring import history
from quant_assets.core.registry import artifacts, models, promotion, states
from quant_assets.core.research import backtest, scoring, snapshots
from quant_assets.core.storage import lake, pg
from quant_assets.defs.resources import AlertPolicy, LakeResource, RegistryResource
from quant_assets.defs.trading import live_book
from quant_assets.provenance import code_version

RULE, COSTS = backtest.PortfolioRule("long_short", quantile=0.2), backtest.Costs()


@pytest.fixture
def book_setup(scored_lake, pg_db, dagster_instance, tmp_path):
    """scored_lake's predictions of model:equity_lgbm:v1, that model the champion from 2024-01-03."""
    root = scored_lake[0]
    files = artifacts.save_model_files(tmp_path, "equity_lgbm", b"{}", pd.DataFrame({"date": [1], "entity_key": ["A"]}))
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.05]})
    with pg.connect(pg_db) as conn:
        ref = models.register_model(conn, "equity_lgbm", "S", {}, {}, "c", ("2023-10-02", "2024-01-02"), files, metrics)
        promotion.record(conn, ref, "promoted", "first champion", as_of=dt.date(2024, 1, 2))
    resources = {"lake": LakeResource(root=str(root)), "registry": RegistryResource(url=pg_db),
                 "alert_policy": AlertPolicy()}  # fmt: skip

    def run(first: str, last: str):
        keys = [d.isoformat() for d in sessions.sessions_between(first, last)]
        selection = dg.AssetSelection.assets(live_book)
        job = dg.define_asset_job("book", selection, partitions_def=live_book.partitions_def).resolve(
            asset_graph=dg.Definitions(assets=[live_book], resources=resources).resolve_asset_graph()
        )
        tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        return job.execute_in_process(instance=dagster_instance, resources=resources, tags=tags, raise_on_error=False)

    return root, pg_db, ref, run


def _book_rows(url: str) -> pd.DataFrame:
    with pg.connect(url) as conn:
        from quant_assets.core.trading import live

        return live.history(conn).set_index("date")


def _backtest(root, days: list[dt.date], exposure: pd.Series) -> pd.DataFrame:
    """The backtest engine on the same predictions and the labels each day's book realised with."""
    frames = []
    for day in days:
        preds = lake.read_partition(root, scoring.DATASET, day)
        labels = snapshots.labels(root, [day], 1, known_by_close(sessions.next_session(day)))
        mine = preds.assign(date=day)[["date", "entity_key", "prediction"]]  # one model scored here
        frames.append(mine.merge(labels[["entity_key", "label"]], on="entity_key", how="left"))
    frame = pd.concat(frames, ignore_index=True)
    return backtest.run(frame, RULE, COSTS, exposure).daily


def test_the_live_book_trades_in_order_acts_on_the_state_and_equals_the_backtest(book_setup):
    root, url, ref, run = book_setup
    first = run("2024-05-01", "2024-05-10")
    assert first.success
    rows = _book_rows(url)
    days = sessions.sessions_between("2024-05-01", "2024-05-10")
    assert list(rows.index) == days and set(rows["state"]) == {"live"}, rows
    assert rows["net"].iloc[:-1].notna().all(), rows
    assert pd.isna(rows["net"].iloc[-1])  # 05-10's label matures at 05-13's open: not yet
    # each session's partition carries its own figures (the last observation of a partition: after its P&L)
    observed = {o.partition: o.metadata for o in first.asset_observations_for_node("live_book")}
    assert sorted(observed) == [d.isoformat() for d in days]
    for day in days[:-1]:
        assert observed[day.isoformat()]["net"].value == rows.loc[day, "net"]
    assert "net" not in observed[days[-1].isoformat()] and observed[days[-1].isoformat()]["exposure"].value == 1.0
    expected = _backtest(root, days[:-1], pd.Series(1.0, index=days[:-1]))
    for column in ("net", "turnover", "cost"):
        got = rows[column].iloc[:-1].to_numpy(dtype=float)
        assert got.tobytes() == expected[column].to_numpy().tobytes(), column

    # paused on 05-13's information: live on 05-13, flat from 05-14 (everything sold that day), still recorded
    with pg.connect(url) as conn:
        states.record(conn, ref, states.Decision("2024-05-13", "live", "paused", "ic_negative"), "sensor:s")
    assert run("2024-05-13", "2024-05-15").success
    rows = _book_rows(url)
    assert rows.loc[dt.date(2024, 5, 13), "state"] == "live" and rows.loc[dt.date(2024, 5, 14), "state"] == "paused"
    assert (rows.loc[dt.date(2024, 5, 14) :, "n_names"] == 0).all() and rows.loc[dt.date(2024, 5, 15), "turnover"] == 0
    days = sessions.sessions_between("2024-05-01", "2024-05-14")
    exposure = pd.Series([0.0 if d >= dt.date(2024, 5, 14) else 1.0 for d in days], index=days)
    expected = _backtest(root, days, exposure)
    assert (
        rows["net"].loc[: dt.date(2024, 5, 14)].to_numpy(dtype=float).tobytes() == expected["net"].to_numpy().tobytes()
    )

    assert run("2024-05-13", "2024-05-13").success  # the same session again: the same record, nothing new
    gap = run("2024-05-20", "2024-05-20")
    assert not gap.success and "the book's last session is 2024-05-15, not 2024-05-17" in str(gap.all_events)
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE quant.model_states SET effective = '2024-05-13' WHERE to_state = 'paused'")
    rewrite = run("2024-05-13", "2024-05-13")  # a state changed after the fact does not rewrite what was traded
    assert not rewrite.success and "a traded session is never rewritten" in str(rewrite.all_events)
    assert np.isfinite(rows["net"].loc[: dt.date(2024, 5, 14)]).all()


def _drift_row(day: str, ic: float) -> dict:
    """A drift row of model:equity_lgbm:v1 whose only critical signal, when ``ic`` < 0, is ic_negative."""
    critical = ic < 0
    levels = {"ic": "ok", "ic_negative": "critical" if critical else "ok", "psi": "ok", "sharpe": "ok"}
    return {
        "date": sessions.as_date(day),
        "model": "model:equity_lgbm:v1",
        "prediction_date": sessions.previous_session(day),
        "n_names": 40,
        "ic": ic,
        "rank_ic": ic,
        "ic_mean_5": 0.05,
        "psi": {},
        "levels": levels,
        "level": "critical" if critical else "ok",
        "actions": ["pause"] if critical else [],
        "reasons": {"ic_negative": "IC < 0 for 3 sessions"} if critical else {},
    }


def test_a_backfill_of_the_book_acts_on_each_drift_row_from_the_next_session(book_setup):
    """The book settles the champion's state from the drift rows before each session it trades, as the sensor
    would have between daily runs: a pause called for by 05-06's row is recorded once (by the run), the book is
    flat from 05-07 on, the drift rows stay; a missing drift row of the session before stops the book."""
    root, url, ref, run = book_setup
    days = sessions.sessions_between("2024-05-01", "2024-05-10")
    with pg.connect(url) as conn:
        # rows through 05-09: 05-10's drift has not run yet
        history.upsert(conn, [_drift_row(d.isoformat(), -0.1 if d >= dt.date(2024, 5, 6) else 0.05) for d in days[:-1]])
    result = run("2024-05-01", "2024-05-10")
    assert result.success
    rows = _book_rows(url)
    assert list(rows.loc[: dt.date(2024, 5, 6), "state"].unique()) == ["live"]
    assert (rows.loc[dt.date(2024, 5, 7) :, "state"] == "paused").all()
    assert (rows.loc[dt.date(2024, 5, 7) :, "n_names"] == 0).all() and (
        rows.loc[: dt.date(2024, 5, 6), "n_names"] > 0
    ).all()
    with pg.connect(url) as conn:
        changes = states.transitions(conn, "equity_lgbm")
        assert len(history.read(conn)) == len(days) - 1  # a paused model keeps its drift rows
    assert changes[["from_state", "to_state", "as_of", "effective", "rule", "actor"]].values.tolist()[1:] == [
        ["live", "paused", dt.date(2024, 5, 6), dt.date(2024, 5, 7), "ic_negative", f"run:{result.run_id}"]
    ]
    # 05-13 with no drift row of 05-10: refused until drift_metrics has run for it
    missing = run("2024-05-13", "2024-05-13")
    assert not missing.success and "has no drift row for 2024-05-10 (its last is 2024-05-09)" in str(missing.all_events)


def test_a_rerun_of_traded_sessions_gives_the_same_metadata_and_observations(book_setup):
    """The second run rebuilds every session from its row: the same materialisation metadata (but the count of
    unchanged sessions) and the same observations, partition by partition."""
    _, url, _, run = book_setup
    first, second = run("2024-05-01", "2024-05-08"), run("2024-05-01", "2024-05-08")
    assert first.success and second.success

    def seen(result):
        materialised = [m.metadata for m in result.asset_materializations_for_node("live_book")]
        observed = [(o.partition, o.metadata) for o in result.asset_observations_for_node("live_book")]
        return materialised, observed

    (before, observed), (after, again) = seen(first), seen(second)
    assert [m.pop("sessions_unchanged").value for m in before] == [0] * 6
    assert [m.pop("sessions_unchanged").value for m in after] == [6] * 6
    assert after == before and again == observed
    with pg.connect(url) as conn, conn.cursor() as cur:  # each session names the run and code that traded it
        cur.execute("SELECT DISTINCT run_id, code_version FROM quant.live_book")
        assert cur.fetchall() == [(first.run_id, code_version())]
    assert ["net" in m for _, m in observed] == [True] * 5 + [False]  # 05-08's P&L has not matured yet

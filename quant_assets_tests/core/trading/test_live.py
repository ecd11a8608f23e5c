"""The live book's inputs fingerprint on real Postgres and Parquet: a rerun over sessions whose inputs have not
changed reads nothing and writes nothing (proved by making every part it could read unreadable), a changed
predictions part trades its session again and is refused if the positions would differ, and a session whose
inputs changed without changing what it trades (another model's predictions, a row from before rows had a
fingerprint) is verified and gets the new fingerprint, its figures untouched."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.monitoring.actions import ActionPolicy
from quant_assets.core.registry import artifacts, models, promotion
from quant_assets.core.research import backtest, scoring
from quant_assets.core.storage import lake, pg
from quant_assets.core.trading import live

RULE, COSTS = backtest.PortfolioRule("long_short", quantile=0.2), backtest.Costs()
DAYS = sessions.sessions_between("2024-05-01", "2024-05-10")


@pytest.fixture
def book(scored_lake, pg_db, tmp_path):
    """A lake of scored_lake's predictions and prices of DAYS (and the sessions around them) alone, its model the
    champion from 2024-01-03; returns (root, url, trade): ``trade(days)`` trades them in order, committing each."""
    source, root = scored_lake[0], tmp_path / "lake"
    around = [sessions.previous_session(DAYS[0]), *DAYS, sessions.next_session(DAYS[-1])]
    for dataset in (scoring.DATASET, live.PRICES):
        for day in around:
            if (partition := lake.partition_dir(source, dataset, day)).exists():  # no predictions before May
                shutil.copytree(partition, lake.partition_dir(root, dataset, day))
    files = artifacts.save_model_files(tmp_path, "equity_lgbm", b"{}", pd.DataFrame({"date": [1], "entity_key": ["A"]}))
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.05]})
    with pg.connect(pg_db) as conn:
        ref = models.register_model(conn, "equity_lgbm", "S", {}, {}, "c", ("2023-10-02", "2024-01-02"), files, metrics)
        promotion.record(conn, ref, "promoted", "first champion", as_of=dt.date(2024, 1, 2))

    def trade(days: list[dt.date]) -> list[live.Session]:
        parts, out = live.input_parts(root, days), []
        with pg.connect(pg_db) as conn:
            for day in days:
                out.append(
                    live.trade_session(conn, root, "equity_lgbm", day, RULE, COSTS, ActionPolicy().exposure, parts)
                )
                conn.commit()
        return out

    return root, pg_db, trade


def _rows(url: str) -> list[dict]:
    """Every stored column of every row, times, fingerprints and producers included."""
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM quant.live_book ORDER BY date")
        return [dict(zip([c.name for c in cur.description], r, strict=True)) for r in cur.fetchall()]


def _but_inputs(rows: list[dict]) -> list[dict]:
    """``_rows`` without the fingerprint column."""
    return [{k: v for k, v in r.items() if k != "inputs"} for r in rows]


def _inputs(url: str) -> dict[dt.date, str | None]:
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT date, inputs FROM quant.live_book")
        return dict(cur.fetchall())


def test_a_rerun_over_unchanged_sessions_reads_and_writes_nothing(book):
    root, url, trade = book
    first = trade(DAYS)
    assert not any(s.unchanged for s in first) and first[1].realised["date"] == "2024-05-01"
    rows, book_parts = _rows(url), sorted(lake.dataset_files(root, live.DATASET))
    assert all(r is not None for r in _inputs(url).values()) and len(rows) == len(DAYS)
    for dataset in (scoring.DATASET, live.PRICES, live.DATASET):  # same names, unreadable content
        for part in lake.dataset_files(root, dataset):
            part.write_bytes(b"not parquet")
    again = trade(DAYS)
    assert all(s.unchanged for s in again)
    assert [dataclasses.replace(s, unchanged=False) for s in again] == first  # figures, paths, realised P&L
    assert _rows(url) == rows and sorted(lake.dataset_files(root, live.DATASET)) == book_parts


def test_changed_inputs_trade_the_session_again_verified_or_refused(book):
    root, url, trade = book
    first = trade(DAYS)
    fingerprints = _inputs(url)
    rows = _rows(url)
    # another model's predictions on 05-06 and a row without a fingerprint (05-08): both verified, same figures
    other = scoring.stored(root, "model:equity_lgbm:v1", [DAYS[3]])[DAYS[3]]
    when = sessions.decision_time(DAYS[3])
    scoring.write_day(root, DAYS[3], other.assign(model="model:other:v1", event_time=when, ingest_time=when))
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE quant.live_book SET inputs = NULL WHERE date = %s", (DAYS[5],))
    again = trade(DAYS)
    assert [s.date for s in again if not s.unchanged] == [DAYS[3], DAYS[5]]
    assert [dataclasses.replace(s, unchanged=False) for s in again] == first
    now = _inputs(url)
    assert now[DAYS[3]] != fingerprints[DAYS[3]] and {**now, DAYS[3]: fingerprints[DAYS[3]]} == fingerprints
    assert _but_inputs(_rows(url)) == _but_inputs(rows)  # only the 05-06 fingerprint moved
    # a restated predictions part of 05-08 (reversed scores): traded again, and refused as a rewrite
    mine = scoring.stored(root, "model:equity_lgbm:v1", [DAYS[5]])[DAYS[5]]
    when = sessions.decision_time(DAYS[5])
    restated = mine.assign(model="model:equity_lgbm:v1", prediction=-mine["prediction"], event_time=when)
    scoring.write_day(root, DAYS[5], restated.assign(ingest_time=when))
    with pytest.raises(live.BookError, match="2024-05-08: already traded as .* a traded session is never rewritten"):
        trade(DAYS)
    assert _but_inputs(_rows(url)) == _but_inputs(rows) and _inputs(url)[DAYS[5]] == now[DAYS[5]]


def test_a_session_records_the_run_and_code_version_that_traded_it_and_keeps_them_when_verified(book):
    root, url, _ = book
    days, exposure = DAYS[:2], ActionPolicy().exposure
    parts = live.input_parts(root, days)

    def trade(run: str, code: str) -> list[live.Session]:
        with pg.connect(url) as conn:
            out = [live.trade_session(conn, root, "equity_lgbm", d, RULE, COSTS, exposure, parts, run, code)
                   for d in days]  # fmt: skip
            conn.cursor().execute("UPDATE quant.live_book SET inputs = NULL")  # the next run verifies them again
        return out

    first = trade("run-1", "sha-one")
    positions = sorted(lake.dataset_files(root, live.DATASET))
    again = trade("run-2", "sha-two-dirty")

    assert not any(s.unchanged for s in first + again) and again == first
    rows = _rows(url)
    assert [(r["date"], r["run_id"], r["code_version"]) for r in rows] == [(d, "run-1", "sha-one") for d in days]
    assert sorted(lake.dataset_files(root, live.DATASET)) == positions  # what was traded alone: the same bytes
    assert [r["positions"] for r in rows] == [str(p) for p in positions]

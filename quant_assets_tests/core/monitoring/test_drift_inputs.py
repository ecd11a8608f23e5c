"""A rerun of drift rows over unchanged inputs computes nothing; a changed input recomputes exactly the days that read
it (real lake, real Postgres)."""

import datetime as dt
import json
import shutil

import pandas as pd
import pyarrow as pa
import pytest

from quant_assets.core import sessions
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import PRICE_SCHEMA
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.monitoring import drift, history, window
from quant_assets.core.monitoring.alerts import AlertConfig
from quant_assets.core.monitoring.profiles import ModelProfile
from quant_assets.core.registry import artifacts, models
from quant_assets.core.research import backtest, scoring
from quant_assets.core.storage import lake, pg
from quant_assets_tests.conftest import MODEL_NODE

DAYS = sessions.sessions_between("2024-06-03", "2024-06-14")  # 10 sessions
ALERTS, COSTS = AlertConfig(), backtest.Costs()  # the defaults


@pytest.fixture
def monitored(scored_lake, pg_db, tmp_path):
    """A copy of the scored lake (the test adds parts to it) and a registry holding its model with the model's
    drift profile (as the first drift run stores it: the artifact itself is not needed)."""
    root, snap, model = scored_lake
    copy = tmp_path / "lake"
    shutil.copytree(root, copy)
    files = artifacts.save_model_files(tmp_path, "equity_lgbm", b"{}", pd.DataFrame({"date": [1], "entity_key": ["A"]}))
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.05]})
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        ref = models.register_model(conn, "equity_lgbm", "S", {}, {}, "c", ("2024-01-02", "2024-04-30"), files, metrics)
        profile = ModelProfile.of(MODEL_NODE, snap, model).to_json()
        cur.execute("INSERT INTO quant.model_profiles (model_id, profile) VALUES (%s, %s)", (ref.model_id, profile))
    return copy, pg_db


def _run(root, url, days=DAYS, alerts=ALERTS, costs=COSTS) -> window.DriftRun:
    """drift_rows over ``days`` with its computed rows stored, as the asset does."""
    store = FeatureStore(root, ALL_FEATURES)
    with pg.connect(url) as conn:
        run = window.drift_rows(conn, root, store, "equity_lgbm", days, alerts, costs, drift.LIVE_RULE)
        history.upsert(conn, run.fresh)
    assert not run.errors
    return run


def _text(rows: list[dict]) -> str:
    """Rows as text, to the last bit and in key order."""
    return json.dumps(rows, default=str)


def _computed(run: window.DriftRun) -> list[dt.date]:
    return [r["date"] for r in run.fresh]


def _stored(url) -> pd.DataFrame:
    with pg.connect(url) as conn:
        return history.read(conn)


def _sql(url, statement: str) -> None:
    with pg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement)


def _restate_open(root, day: dt.date, when: pd.Timestamp) -> None:
    """Every bar of ``day`` restated (open x 1.3), the new versions stored at ``when``."""
    bars = lake.latest_versions(lake.read_partition(root, "raw_prices", day), ["ticker"])
    restated = bars.assign(open=bars["open"] * 1.3)
    key = ["ticker", "event_time"]
    assert lake.append_new_versions(root, "raw_prices", day, restated, key, ["open"], when, PRICE_SCHEMA).rows_written


def _late_feature_file(root, day: dt.date) -> None:
    """A late version of one price feature row of ``day``: a new part in the feature directory's partition."""
    (partition,) = (root / "features" / "price").glob(f"fv=*/date={day.isoformat()}")
    table = lake.read_part(lake.partition_files(partition)[0])
    late = table.slice(0, 1).to_pandas()
    late["ingest_time"] += pd.Timedelta(days=365)
    lake.write_part(partition, pa.Table.from_pandas(late, schema=table.schema, preserve_index=False))


def test_a_rerun_reads_unchanged_days_back_and_computes_what_a_new_part_touches(monitored):
    root, url = monitored
    first = _run(root, url)
    assert _computed(first) == DAYS and all(r["inputs"] for r in first.rows)
    stored = _stored(url)

    # The same days again: nothing computed, nothing written, the same rows (keys in the same order).
    again = _run(root, url)
    assert again.fresh == [] and again.unchanged == len(DAYS)
    assert _text(again.rows) == _text(first.rows)
    assert _stored(url).to_json() == stored.to_json()  # seq and computed_at unchanged: no row was replaced
    # ...read from storage: a stored value is what the rerun returns.
    _sql(url, "UPDATE quant.drift_metrics SET n_names = n_names + 1000 WHERE date = '2024-06-06'")
    assert [r["date"] for r in _run(root, url).rows if r["n_names"] > 1000] == [DAYS[3]]
    _sql(url, "UPDATE quant.drift_metrics SET n_names = n_names - 1000 WHERE date = '2024-06-06'")

    # A restated bar of 06-10, stored an hour after 06-10's close + lag: the days whose windows hold 06-10 are
    # computed again. 06-10's row did not know it and stays the same; 06-11's labels of 06-10 change.
    _restate_open(root, DAYS[5], known_by_close(DAYS[5]) + pd.Timedelta(hours=1))
    restated = _run(root, url)
    assert _computed(restated) == DAYS[5:]
    before, after = ({r["date"]: r for r in run.rows} for run in (first, restated))
    assert _text([{**after[DAYS[5]], "inputs": None}]) == _text([{**before[DAYS[5]], "inputs": None}])
    assert after[DAYS[6]]["ic_mean_5"] != before[DAYS[6]]["ic_mean_5"]
    assert _computed(_run(root, url)) == []

    # Another model's prediction of 06-13 (a new predictions part), a late feature file of 06-12.
    other = scoring.stored(root, MODEL_NODE, [DAYS[8]])[DAYS[8]].head(1).assign(model="model:other:v1")
    when = sessions.decision_time(DAYS[8])
    scoring.write_day(root, DAYS[8], other.assign(event_time=when, ingest_time=when))
    assert _computed(_run(root, url)) == DAYS[8:]
    _late_feature_file(root, DAYS[7])
    assert _computed(_run(root, url)) == DAYS[7:]

    # Days whose fingerprint was lost, apart: computed again (in one range), their rows the same.
    kept = _run(root, url).rows
    _sql(url, "UPDATE quant.drift_metrics SET inputs = NULL WHERE date IN ('2024-06-03', '2024-06-14')")
    lost = _run(root, url)
    assert _computed(lost) == [DAYS[0], DAYS[-1]] and _text(lost.rows) == _text(kept)


def test_another_alert_policy_or_other_costs_compute_the_days_again(monitored):
    root, url = monitored
    days = DAYS[-1:]
    first = _run(root, url, days)
    assert _computed(first) == days and _computed(_run(root, url, days)) == []
    assert _computed(_run(root, url, days, alerts=AlertConfig(psi_critical=0.2))) == days
    costly = _run(root, url, days, costs=backtest.Costs(cost_bps=50.0))
    assert _computed(costly) == days
    assert costly.rows[-1]["net_return"] != first.rows[-1]["net_return"]
    assert _computed(_run(root, url, days)) == days  # back to the first settings: the stored rows are the costly ones


def test_days_far_apart_are_computed_in_ranges_of_their_own():
    """A range spans every session between its days; days more than a window apart get a range each."""
    days = [sessions.as_date(d) for d in ("2024-06-03", "2024-06-05", "2024-06-06", "2024-06-28")]
    assert window._runs(days, 5) == [days[:3], days[3:]]
    assert window._runs(days, 20) == [days]

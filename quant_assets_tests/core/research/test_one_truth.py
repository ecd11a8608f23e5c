"""One truth for training and serving: the snapshot holds exactly the inputs scoring gives the model, a
drift row is the same however it is computed, and an alternative-data outage degrades scoring instead of
stopping it.

The lake is ``gappy_lake`` (conftest): a synthetic market with holes in its tweets, as real data has.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.features import staleness
from quant_assets.core.features.library import ALL_FEATURES, ALT_FAMILY
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.monitoring.window import DriftRange, ModelProfile
from quant_assets.core.research import scoring, snapshots
from quant_assets.core.research.training import Ensemble, TrainConfig
from quant_assets_tests.conftest import QUIET, SILENT, SPARSE

TRAIN = ("2024-03-01", "2024-05-24")
SCORED = ("2024-05-28", "2024-06-28")
NODE = "model:gappy:v1"
FEATURES = list(ALL_FEATURES)


@pytest.fixture(scope="module")
def gappy(gappy_lake, tmp_path_factory):
    """The gappy lake with a snapshot of TRAIN, a small model on it, and its predictions for SCORED."""
    root = tmp_path_factory.mktemp("gappy") / "lake"
    shutil.copytree(gappy_lake, root)
    store = FeatureStore(root, ALL_FEATURES)
    data, manifest = snapshots.build(root, store, *TRAIN, TRAIN[1], FEATURES)
    snap = snapshots.read(snapshots.write(root, data, manifest)[0])
    model = Ensemble.fit(snap.data, FEATURES, TrainConfig(num_boost_round=20, seeds=(1,)))
    for day in sessions.sessions_between(*SCORED):
        scoring.write_day(root, day, scoring.score_day(store, model, NODE, day, snap.manifest["universe"]))
    return root, store, snap, model


def bits(frame: pd.DataFrame) -> np.ndarray:
    """Float values as raw bits: equal arrays are equal to the last bit, NaN included."""
    return frame.to_numpy(dtype="float64").view("uint64")


def test_the_snapshot_holds_exactly_what_scoring_gives_the_model(gappy):
    root, store, snap, _ = gappy
    data = snap.data.set_index(["date", "entity_key"])
    compared = 0
    for day, rows in data.groupby(level="date"):
        served = scoring.scoring_frame(store, FEATURES, day, snap.manifest["universe"]).set_index("entity_key")
        trained = rows.droplevel("date")
        assert set(trained.index) <= set(served.index), day  # every trained name is scored (labels aside)
        assert np.array_equal(bits(trained[FEATURES]), bits(served.loc[trained.index, FEATURES])), day
        compared += len(trained)
    assert compared == len(snap.data) > 1000
    alt = [f.name for f in ALT_FAMILY.features]
    after_outage = data.xs(dt.date(2024, 4, 15), level="date")[alt]  # newest tweets 5 sessions old: missing
    assert after_outage.isna().all().all()
    assert data.xs(dt.date(2024, 4, 12), level="date")[alt].notna().any(axis=1).all()  # 4 sessions: still usable
    quiet = data.xs(QUIET[0], level="entity_key")["sentiment_5"]
    assert quiet.loc[dt.date(2024, 3, 18)] != quiet.loc[dt.date(2024, 3, 18)]  # NaN: 2 weeks without tweets
    assert quiet.loc[dt.date(2024, 3, 8)] == quiet.loc[dt.date(2024, 3, 8)]  # 4 sessions quiet: last values
    silent = data.xs(SILENT[0], level="entity_key")["sentiment_5"]
    assert silent.loc[dt.date(2024, 5, 1) :].isna().all() and silent.loc[: dt.date(2024, 4, 19)].notna().any()


def test_on_stocknet_the_snapshot_holds_exactly_what_scoring_gives_the_model(stocknet_lake):
    """Real tweets are sparse (many names go days without one) and 2014-11-10..13 has no files at all."""
    store = FeatureStore(stocknet_lake, ALL_FEATURES)
    data, manifest = snapshots.build(stocknet_lake, store, "2014-09-02", "2015-02-27", "2015-02-27", FEATURES)
    by_date = data.set_index(["date", "entity_key"])
    dates = sorted(set(by_date.index.get_level_values("date")))
    picked = dates[::6] + [d for d in dates if dt.date(2014, 11, 10) <= d <= dt.date(2014, 11, 21)]
    alt = [f.name for f in ALT_FAMILY.features]
    missing_alt = 0
    for day in sorted(set(picked)):
        served = scoring.scoring_frame(store, FEATURES, day, manifest["universe"]).set_index("entity_key")
        trained = by_date.xs(day, level="date")
        assert set(trained.index) <= set(served.index), day
        assert np.array_equal(bits(trained[FEATURES]), bits(served.loc[trained.index, FEATURES])), day
        missing_alt += int(trained[alt].isna().all(axis=1).sum())
    assert len(picked) > 25 and missing_alt > 0  # sparse names and the gap do leave alternative data missing


def test_stale_alternative_data_is_missing_in_training_not_carried_forward(gappy):
    root, store, snap, _ = gappy
    sparse = snap.data[snap.data["entity_key"] == SPARSE].set_index("date")
    assert sparse["sentiment_1"].notna().mean() > 0.9  # every third day is within the 4-session limit
    outage_days = [d for d in sparse.index if dt.date(2024, 4, 15) <= d <= dt.date(2024, 4, 16)]
    assert outage_days and sparse.loc[outage_days, "sentiment_1"].isna().all()


def test_an_alternative_data_outage_degrades_scoring_and_says_how_long(gappy):
    root, store, snap, model = gappy
    universe = snap.manifest["universe"]
    day = dt.date(2024, 4, 15)  # newest tweet aggregate: Fri 04-05's, five sessions before the previous session
    frame = scoring.scoring_frame(store, FEATURES, day, universe)
    scored = scoring.score_day(store, model, NODE, day, universe)
    assert len(scored) == len(universe) == len(frame) and np.isfinite(scored["prediction"]).all()
    gaps = staleness.gaps(frame, day, store.families(FEATURES), store.newest_partitions(FEATURES, day))
    assert [(g.family, g.missing_share, g.newest_age, g.outage) for g in gaps] == [("alt", 1.0, 5, True)]
    assert "alt features missing for 100% of names (newest value 5 session(s) old" in gaps[0].describe(day)
    normal_day = dt.date(2024, 4, 5)
    frame = scoring.scoring_frame(store, FEATURES, normal_day, universe)
    normal = staleness.gaps(frame, normal_day, store.families(FEATURES), store.newest_partitions(FEATURES, normal_day))
    assert [(g.missing_share, g.newest_age, g.outage) for g in normal] == [(0.0, 0, False)]


def _row(root, store, snap, model, days, day) -> str:
    profile = ModelProfile.of(NODE, snap, model)
    return json.dumps(DriftRange(root, store, profile, days).row(day), default=str, sort_keys=True)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_drift_row_is_the_same_alone_and_inside_any_range(gappy, seed):
    root, store, snap, model = gappy
    days = sessions.sessions_between("2024-06-03", SCORED[1])
    rng = random.Random(seed)
    start = rng.randrange(1, len(days) - 6)  # a range that starts mid-history
    days = days[start : start + rng.randrange(4, 7)]
    profile = ModelProfile.of(NODE, snap, model)
    together = DriftRange(root, store, profile, days)
    for day in rng.sample(days, 3) + [days[0]]:
        alone = _row(root, store, snap, model, [day], day)
        assert json.dumps(together.row(day), default=str, sort_keys=True) == alone, day
    wider = DriftRange(root, store, profile, days)
    assert json.dumps(wider.row(days[-1]), default=str, sort_keys=True) == _row(
        root, store, snap, model, [days[-1]], days[-1]
    )

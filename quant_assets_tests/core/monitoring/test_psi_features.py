"""PSI on the synthetic market's real features (feature store, training snapshot), in a drift row and its table."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import schema, sessions
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.monitoring import alerts, drift, history
from quant_assets.core.monitoring.profiles import ModelProfile
from quant_assets.core.monitoring.window import DriftRange
from quant_assets.core.storage import pg
from quant_assets_tests.conftest import MODEL_NODE
from quant_assets_tests.core.monitoring.helpers import psi_independent, tie_aware_bins_independent


def test_feature_psi_against_the_snapshot_is_closedness_free_and_matches_an_independent_implementation(scored_lake):
    root, snap, _ = scored_lake
    store = FeatureStore(root, ALL_FEATURES)
    windows = [
        sessions.sessions_between(*span) for span in (("2024-05-01", "2024-05-07"), ("2024-06-24", "2024-06-28"))
    ]
    pooled = [
        pd.concat([store.get_latest(snap.manifest["universe"], snap.features, sessions.decision_time(d)) for d in days])
        for days in windows
    ]
    for f in snap.features:
        ref = snap.data[f].to_numpy(dtype=float)
        cuts = tie_aware_bins_independent(ref)
        np.testing.assert_allclose(drift.PsiReference.of(ref).cuts, cuts, rtol=1e-15)
        for sample in pooled:
            act = sample[f].to_numpy(dtype=float)
            assert not np.isin(act, cuts).any(), f  # the market's values never land on a cut...
            value = drift.psi(ref, act)
            for right in (True, False):  # ...so either closedness gives the same PSI
                assert value == pytest.approx(psi_independent(ref, act, right, cuts), rel=1e-9, abs=1e-12), f
    # The cross-sectional ranks (k/40) hold 2.5% each: not atoms, cut between grid points into 10 bins.
    assert drift.PsiReference.of(snap.data["cs_rank_ret_5"]).bins == 10


def test_a_feature_without_reference_values_has_no_psi_and_the_row_is_computed(scored_lake):
    root, snap, model = scored_lake
    day = sessions.as_date("2024-06-03")
    blank = dataclasses.replace(snap, data=snap.data.assign(vol_20=np.nan))
    profile = ModelProfile.of(MODEL_NODE, blank, model)  # raised for the whole model before
    assert profile.feature_refs["vol_20"].reason == f"the reference has no finite values (of {len(snap.data)})"
    row = DriftRange(root, FeatureStore(root, ALL_FEATURES), profile, [day]).row(day)
    assert "vol_20" not in row["psi"] and len(row["psi"]) == len(model.features) - 1
    assert row["psi_mean"] == pytest.approx(np.mean(list(row["psi"].values())), abs=1e-5)
    # The no-drift level of the mean is the mean of the other features' levels at the pooled sample's size.
    assert row["psi_n"] == 200  # 40 names x 5 sessions
    levels = [profile.feature_refs[f].noise(200, 0.99) for f in row["psi"]]
    assert row["psi_noise"] == pytest.approx(np.mean(levels), rel=1e-12)
    full = DriftRange(root, FeatureStore(root, ALL_FEATURES), ModelProfile.of(MODEL_NODE, snap, model), [day]).row(day)
    assert {k: v for k, v in full["psi"].items() if k != "vol_20"} == row["psi"]
    # The day's PSI level is the alert matrix's rule with that level: a band only above it.
    band = alerts.psi_band(row["psi_mean"], row["psi_noise"], cfg=alerts.AlertConfig())
    assert {"stable": "ok", "watch": "warning", "act": "critical"}[band] == row["levels"]["psi"]


def test_a_drift_table_made_before_the_psi_sample_columns_gets_them(pg_db, monkeypatch):
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE quant.drift_metrics DROP COLUMN psi_n, DROP COLUMN psi_noise")
        cur.execute("DROP TABLE quant.schema_version")  # as a database from before the schema had versions
        cur.execute(
            """INSERT INTO quant.drift_metrics (date, model, prediction_date, n_names, psi, levels, level, actions,
               reasons) VALUES ('2024-06-03', 'model:m:v1', '2024-05-31', 40, '{}', '{}', 'ok', '{}', '{}')"""
        )
    with pg.connect(pg_db) as conn:  # the next migration (a resource's setup) adds them
        assert len(schema.migrate(conn)) == len(schema.STEPS)
    with pg.connect(pg_db) as conn:  # the old row reads with no sample
        old = history.read(conn).iloc[0]
        assert old["psi_n"] is None and old["psi_noise"] is None
        with conn.cursor() as reader:  # an open reader of the table no longer holds up a later connection's DDL
            reader.execute("SELECT count(*) FROM quant.drift_metrics")
            monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=5s")  # waiting on the reader: fail, not hang
            with pg.connect(pg_db) as other, other.cursor() as cur:
                assert schema.migrate(other) == []
                cur.execute("SELECT 1")

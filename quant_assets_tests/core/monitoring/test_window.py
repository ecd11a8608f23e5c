"""Daily drift rows from a real lake: values by hand, order independence, and no dependence on the future."""

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from quant_assets.core import sessions
from quant_assets.core.features.library import ALL_FEATURES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import PRICE_SCHEMA
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.monitoring import alerts, drift
from quant_assets.core.monitoring.profiles import ModelProfile
from quant_assets.core.monitoring.window import DriftInputError, DriftRange, monitored_models
from quant_assets.core.research import scoring, snapshots
from quant_assets.core.storage import lake
from quant_assets_tests.conftest import MODEL_NODE, SCORED_DAYS


def _range(root, snap, model, days) -> DriftRange:
    return DriftRange(root, FeatureStore(root, ALL_FEATURES), ModelProfile.of(MODEL_NODE, snap, model), days)


def _same(a: dict, b: dict) -> bool:
    """Equal to the last bit, NaN/None included."""
    return json.dumps(a, default=str, sort_keys=True) == json.dumps(b, default=str, sort_keys=True)


def _adj_open(root, day) -> pd.Series:
    px = lake.latest_versions(lake.read_partition(root, "raw_prices", day), ["ticker"]).set_index("ticker")
    return px["open"] * px["adj_close"] / px["close"]


def test_a_drift_row_by_hand(scored_lake):
    root, snap, model = scored_lake
    day = sessions.as_date("2024-06-03")
    row = _range(root, snap, model, [day]).row(day)
    matured = sessions.as_date("2024-05-31")
    assert (row["date"], row["model"], row["prediction_date"], row["n_names"]) == (day, MODEL_NODE, matured, 40)
    preds = lake.read_partition(root, scoring.DATASET, matured).set_index("entity_key")["prediction"]
    label = (_adj_open(root, day) / _adj_open(root, matured) - 1).reindex(preds.index)
    assert row["ic"] == pytest.approx(np.corrcoef(preds, label)[0, 1], abs=1e-12)
    assert row["rank_ic"] == pytest.approx(preds.rank().corr(label.rank()), abs=1e-12)
    # Feature PSI: the five sessions' cross-sections at their decision times against the snapshot.
    store = FeatureStore(root, ALL_FEATURES)
    pooled = pd.concat(
        [
            store.get_latest(snap.manifest["universe"], ["vol_20"], sessions.decision_time(d))
            for d in sessions.sessions_between("2024-05-28", day)
        ]
    )
    assert row["psi"]["vol_20"] == pytest.approx(drift.psi(snap.data["vol_20"], pooled["vol_20"]), abs=1e-6)
    assert row["psi_mean"] == pytest.approx(np.mean(list(row["psi"].values())), abs=1e-5)
    assert row["psi_max"] == pytest.approx(max(row["psi"].values()), abs=1e-6)
    assert row["psi"][row["psi_max_feature"]] == pytest.approx(row["psi_max"], abs=1e-6)
    scored = pd.concat(
        [lake.read_partition(root, scoring.DATASET, d) for d in sessions.sessions_between("2024-05-28", day)]
    )
    assert row["prediction_psi"] == pytest.approx(drift.psi(model.predict(snap.data), scored["prediction"]))
    assert set(row["levels"]) == {"ic", "ic_negative", "psi", "sharpe"} and row["level"] in alerts.LEVELS


def test_a_missing_bar_leaves_its_labels_out_rather_than_stretching_them():
    def bar(name, day, adj_open):
        return (name, sessions.session_close(day), adj_open)

    px = pd.DataFrame(
        [bar("A", "2024-06-03", 10.0), bar("A", "2024-06-05", 11.0), bar("A", "2024-06-06", 12.1)],
        columns=["entity_key", "event_time", "adj_open"],
    )
    days = [sessions.as_date(d) for d in ("2024-06-03", "2024-06-04", "2024-06-05")]
    out = snapshots.forward_returns(px, days, 1)
    # 06-04 has no bar: neither 06-03 -> 06-04 nor 06-04 -> 06-05 is known, and 06-03 -> 06-05 is not a label.
    assert out["date"].tolist() == [sessions.as_date("2024-06-05")]
    assert out["label"].iloc[0] == pytest.approx(12.1 / 11.0 - 1)


def test_rows_do_not_depend_on_the_range_they_were_computed_in(scored_lake):
    root, snap, model = scored_lake
    days = sessions.sessions_between(*SCORED_DAYS)
    together = {r["date"]: r for r in (lambda rng: [rng.row(d) for d in days])(_range(root, snap, model, days))}
    assert len(together) == len(days)
    # A fresh process computing one day alone (a restart, or a daemon backfill run per partition) agrees.
    for day in (days[0], days[7], days[-1]):
        assert _same(_range(root, snap, model, [day]).row(day), together[day])
    late = [r for d, r in together.items() if d >= sessions.as_date("2024-06-10")]
    assert all(r["sharpe_20"] is not None for r in late)  # 20 matured sessions by then


def _perturb_after(root, cut) -> None:
    """Change every input known after the cut's close: later prices scaled, later predictions and features gone,
    and a restated bar for a day before the cut that arrives after it."""
    for day in sessions.sessions_between(sessions.next_session(cut), SCORED_DAYS[1]):
        for f in lake.partition_dir(root, "raw_prices", day).glob("part-*.parquet"):
            t = pq.read_table(f).to_pandas()
            t[["open", "high", "low", "close", "adj_close"]] *= 1.1
            f.unlink()  # replaced by the changed rows, under their own content-addressed name
            lake.write_part(f.parent, lake.canonical_table(t, ["ticker"], PRICE_SCHEMA))
        shutil.rmtree(lake.partition_dir(root, scoring.DATASET, day), ignore_errors=True)
        for fam in (root / "features").iterdir():
            for d in fam.glob(f"fv=*/date={day.isoformat()}"):
                shutil.rmtree(d)
    earlier = sessions.previous_session(cut)
    bars = lake.latest_versions(lake.read_partition(root, "raw_prices", earlier), ["ticker"])
    restated = bars.assign(open=bars["open"] * 1.3)
    late = known_by_close(cut) + pd.Timedelta(hours=1)
    res = lake.append_new_versions(
        root, "raw_prices", earlier, restated, ["ticker", "event_time"], ["open"], late, PRICE_SCHEMA
    )
    assert res.rows_written == len(bars)


@pytest.mark.parametrize("cut", ["2024-05-20", "2024-06-12"])
def test_changing_the_future_leaves_past_rows_identical(scored_lake, tmp_path, cut):
    root, snap, model = scored_lake
    cut = sessions.as_date(cut)
    days = sessions.sessions_between(SCORED_DAYS[0], cut)
    before = _range(root, snap, model, days)
    original = [before.row(d) for d in days]
    after_cut = sessions.next_session(cut)
    original_next = _range(root, snap, model, [after_cut]).row(after_cut)

    copy = tmp_path / "lake"
    shutil.copytree(root, copy)
    _perturb_after(copy, cut)
    again = _range(copy, snap, model, days)
    assert all(_same(a, again.row(d)) for a, d in zip(original, days, strict=True))
    # The perturbation is real: the next day, which may see it, changes.
    assert not _same(original_next, _range(copy, snap, model, [after_cut]).row(after_cut))


def test_a_day_without_predictions_or_prices_is_an_error_not_a_row(scored_lake, tmp_path):
    root, snap, model = scored_lake
    early = sessions.as_date("2024-03-01")
    unscored = _range(root, snap, model, [early])
    with pytest.raises(DriftInputError, match="scored neither 2024-03-01 nor 2024-02-29: nothing to monitor"):
        unscored.row(early)
    assert "prices" not in vars(unscored) and "_psi" not in vars(unscored)  # known from the predictions alone
    copy = tmp_path / "lake"
    shutil.copytree(root, copy)
    day = sessions.as_date("2024-06-04")
    shutil.rmtree(lake.partition_dir(copy, "raw_prices", day))
    later = sessions.session_offset(day, 2)
    rng = _range(copy, snap, model, [day, later])
    with pytest.raises(DriftInputError, match="raw_prices missing"):
        rng.row(day)
    row = rng.row(later)  # two sessions on, the missing bar only blanks the window days whose label needs it
    assert row["n_names"] == 40 and row["ic"] is not None


def test_monitored_models_are_those_that_scored_inside_the_windows_read(tmp_path):
    """A model whose predictions matured inside the look-back window is monitored; one that scored only before
    it, or another model name, is not; versions sort by number (v10 after v9)."""
    days = sessions.sessions_between("2024-03-01", "2024-03-29")
    scored = {
        "model:m:v1": days[:2],  # before the window of a 5-session look-back ending 2024-03-28
        "model:m:v9": days[-10:-8],
        "model:m:v10": days[-1:],
        "model:other:v1": days[-3:],
    }
    for node, on in scored.items():
        for day in on:
            when = sessions.decision_time(day)
            frame = pd.DataFrame(
                {"entity_key": ["A"], "event_time": [when], "model": [node], "prediction": [0.1], "ingest_time": [when]}
            )
            scoring.write_day(tmp_path, day, frame)
    assert monitored_models(tmp_path, days[-2:], 5, "m") == ["model:m:v9", "model:m:v10"]
    assert monitored_models(tmp_path, days[-2:], 5, "nobody") == []

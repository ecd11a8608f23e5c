"""A range of days computed at once (``compute.compute_days``, what backfills and research candidates run) is, day by
day and bit for bit, what the per-day pandas computation gave: on a synthetic lake with restatements and late bars,
and on random bitemporal inputs (a property test). The reference below is that computation as it was written
before the range path (filter, ``lake.latest_versions``, pivot, compare), kept here as the obviously correct one."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quant_assets.core import sessions
from quant_assets.core.features import compute
from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.library import FAMILIES
from quant_assets.core.ingest.pipeline import PRICE_SCHEMA, PRICE_VALUES, ingest_alt, ingest_prices
from quant_assets.core.ingest.sources import SyntheticMarket
from quant_assets.core.ingest.sources.base import PRICE_LAG
from quant_assets.core.research import candidate
from quant_assets.core.storage import lake
from quant_assets.core.storage.equality import nan_equal
from quant_assets.paths import PROJECT_ROOT

SESSIONS = sessions.sessions_between("2024-01-02", "2024-05-31")
KEY = ["ticker", "event_time", "ingest_time"]


def reference_at(family: FeatureFamily, rows: pd.DataFrame, day: dt.date, as_of: pd.Timestamp) -> pd.DataFrame:
    visible = rows[(rows["ingest_time"] <= as_of) & (rows["day"] <= day)]
    present = visible.loc[visible["event_time"] == compute.target_event_time(family, day), "ticker"].unique()
    if len(present) == 0:
        return pd.DataFrame(columns=[f.name for f in family.features])
    latest = lake.latest_versions(visible, ["ticker", "event_time"])
    wide = latest.pivot(index="day", columns="ticker", values=list(family.fields))
    wide = wide.reindex(compute.window_axis(family, day)).rename_axis("day")
    panel = {field: wide[field].astype("float64") for field in family.fields}
    computed: dict[str, pd.Series] = {}
    for feature in family.ordered():
        computed[feature.name] = feature.compute({**panel, **computed})
    out = pd.DataFrame(computed)[[f.name for f in family.features]]
    return out.loc[sorted(present)].astype("float64")


def reference_day(family: FeatureFamily, rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    target = compute.target_event_time(family, day)
    own = rows.loc[rows["event_time"] == target, "ingest_time"]
    later = rows.loc[(rows["ingest_time"] > own.min()) & (rows["day"] <= day), "ingest_time"] if len(own) else []
    times = [] if own.empty else [own.min(), *sorted(later.unique())]
    emitted, out = None, []
    for t in times:
        values = reference_at(family, rows, day, t)
        if emitted is not None:
            common = values.index.intersection(emitted.index)
            unchanged = pd.Index(common[nan_equal(values.loc[common], emitted.loc[common]).all(axis=1)])
            emitted = pd.concat([emitted.drop(common), values])
            values = values.drop(unchanged)
        else:
            emitted = values
        if not values.empty:
            out.append(values.rename_axis("entity_key").reset_index().assign(event_time=target, ingest_time=t))
    names = compute.META + [f.name for f in family.features]
    return pd.concat(out, ignore_index=True)[names] if out else pd.DataFrame(columns=names)


def _assert_range_is_the_reference(family: FeatureFamily, inputs: pd.DataFrame, days: list[dt.date]) -> int:
    """``compute_days`` against the reference on each day's window, and ``compute_day`` (the one-day case) too;
    the number of rows compared."""
    compared = 0
    for day, got in zip(days, compute.compute_days(family, inputs, days), strict=True):
        window = compute.window_rows(family, inputs, day)
        expected = reference_day(family, window, day)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        pd.testing.assert_frame_equal(compute.compute_day(family, window, day), expected, check_exact=True)
        compared += len(got)
    return compared


@pytest.fixture(scope="module")
def restated_lake(tmp_path_factory):
    """Synthetic prices and tweets, then restatements (several versions of a bar, one after the next session's
    bar arrived) and late bars (a name's bar first delivered a day late)."""
    root = tmp_path_factory.mktemp("restated")
    market = SyntheticMarket(seed=5, n_tickers=8)
    for day in SESSIONS:
        ingest_prices(market, day, root)
        ingest_alt(market, day, root)
    for k, day in enumerate(SESSIONS[30::9]):
        rows = lake.read_partition(root, "raw_prices", day).drop(columns=["date"], errors="ignore")
        for part in lake.partition_files(lake.partition_dir(root, "raw_prices", day)):
            part.unlink()
        late = rows["ticker"] == f"SYN00{k % 8}"
        lake.write_part(
            lake.partition_dir(root, "raw_prices", day), lake.canonical_table(rows[~late], KEY, PRICE_SCHEMA)
        )
        rows.loc[late, "ingest_time"] += pd.Timedelta(hours=26)  # after the next session's bars
        for hours, scale in ((0, 1.0), (2, 1.01), (30, 0.98), (75, 1.03)):
            restated = rows.copy()
            restated.loc[restated["ticker"].isin(["SYN001", "SYN004"]), ["close", "adj_close", "open"]] *= scale
            when = sessions.session_close(day) + pd.Timedelta(hours=hours)
            lake.append_new_versions(root, "raw_prices", day, restated, ["ticker", "event_time"], PRICE_VALUES, when,
                                     PRICE_SCHEMA)  # fmt: skip
    return root


def cs_rank_close(panel) -> pd.Series:
    """Cross-sectional without declaring it (no ``depends_on``): computed side by side, it would rank the days
    together."""
    return panel["close"].iloc[-1].rank(pct=True)


def weekday_scaled(panel) -> pd.Series:
    """Column by column, but reads its panel's dates."""
    return panel["close"].iloc[-1] * panel["close"].index[-1].weekday()


def _candidate(name: str) -> FeatureFamily:
    if name == "example":
        return candidate.research_family(
            candidate.load(f"{PROJECT_ROOT / 'examples' / 'candidate_feature.py'}:INTRADAY_REVERSAL")
        )
    fn = {"cs_rank": cs_rank_close, "dated": weekday_scaled}[name]
    return candidate.research_family(FeatureDef(name, "price", fn, "", ("close",), 2, PRICE_LAG))


@pytest.mark.parametrize("family", ["price", "alt", "example", "cs_rank", "dated"])
def test_a_range_is_each_day_as_the_per_day_reference_computed_it(restated_lake, family):
    fam = FAMILIES[family] if family in FAMILIES else _candidate(family)
    days = SESSIONS[62:] if fam.source == "raw_prices" else SESSIONS[20:]
    inputs = compute.load_inputs(restated_lake, fam, days)
    assert _assert_range_is_the_reference(fam, inputs, days) >= 8 * len(days)
    if fam.source == "raw_prices":  # the restatements and late bars are there, and gave rows of their own
        assert inputs.duplicated(["ticker", "event_time"]).sum() > 20
        rows = pd.concat(compute.compute_days(fam, inputs, days))
        assert (rows["ingest_time"] > rows["event_time"] + pd.Timedelta(hours=20)).sum() > 20


def test_a_family_computed_column_by_column_is_computed_side_by_side(restated_lake, monkeypatch):
    """The example candidate's blocks (a day as known at a time) take few calls, not one each; the cross-sectional
    one's each its own (the test above: both give the reference's rows)."""
    calls = []
    original = compute._at
    monkeypatch.setattr(compute, "_at", lambda *a: calls.append(1) or original(*a))
    days = SESSIONS[62:]
    alone = {}
    for name in ("example", "cs_rank"):
        calls.clear()
        fam = _candidate(name)
        frames = list(compute.compute_days(fam, compute.load_inputs(restated_lake, fam, days), days))
        alone[name] = (len(calls), sum(frame["ingest_time"].nunique() for frame in frames))
    assert alone["example"][0] == 2 and alone["example"][1] > len(days)  # the first and last block, verified
    assert alone["cs_rank"][0] >= alone["cs_rank"][1] > len(days)


@pytest.mark.parametrize("family", ["example", "price"])
def test_a_range_held_a_few_days_at_a_time_gives_the_same_rows(restated_lake, monkeypatch, family):
    fam = FAMILIES[family] if family in FAMILIES else _candidate(family)
    days = SESSIONS[62:]
    inputs = compute.load_inputs(restated_lake, fam, days)
    whole = list(compute.compute_days(fam, inputs, days))
    monkeypatch.setattr(compute, "RANGE_DAYS", 9)
    for one, chunked in zip(whole, compute.compute_days(fam, inputs, days), strict=True):
        pd.testing.assert_frame_equal(one, chunked, check_exact=True)


def toy_mean(panel, window: int) -> pd.Series:
    return (panel["close"] * panel["volume"]).iloc[-window:].mean()


def toy_dated(panel) -> pd.Series:
    """Reads its panel's dates (the weekday of the last row), as a function may."""
    return panel["close"].iloc[-1] * 0 + panel["close"].index[-1].weekday()


MEAN = FeatureDef("toy_mean", "price", toy_mean, "", ("close", "volume"), 3, PRICE_LAG, params={"window": 3})
DATED = FeatureDef("toy_dated", "price", toy_dated, "", ("close",), 1, PRICE_LAG)
RANK = FeatureDef("toy_rank", "price", lambda p: p["toy_mean"].rank(pct=True), "", ("close",), 3, PRICE_LAG,
                  depends_on=(MEAN,))  # fmt: skip
TOY = FeatureFamily("toy", "raw_prices", ("close", "volume"), (MEAN, DATED, RANK), "")
COLUMNWISE = FeatureFamily("toy_columnwise", "raw_prices", ("close", "volume"), (MEAN,), "")  # computed side by side
TOY_DAYS = sessions.sessions_between("2024-03-01", "2024-03-14")

bars = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C", "D"]),
        st.integers(0, len(TOY_DAYS) - 1),  # the bar's session
        st.integers(0, 4000),  # minutes after the earliest it can be known (late bars, restatements)
        st.sampled_from([1.0, 2.0, 2.5, np.nan]),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=50,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bars=bars)
def test_random_bitemporal_inputs_give_the_reference_rows(tmp_path_factory, bars):
    root = tmp_path_factory.mktemp("toy")
    frame = pd.DataFrame(
        [
            (
                t,
                sessions.session_close(TOY_DAYS[i]),
                sessions.session_close(TOY_DAYS[i]) + PRICE_LAG + pd.Timedelta(minutes=m),
                c,
                v,
            )  # fmt: skip
            for t, i, m, c, v in bars
        ],
        columns=["ticker", "event_time", "ingest_time", "close", "volume"],
    ).drop_duplicates(KEY)
    frame = frame.assign(open=1.0, high=3.0, low=0.5, adj_close=frame["close"], source="t", source_file="f",
                         source_line=0)  # fmt: skip
    for event, part in frame.groupby("event_time"):
        day = event.tz_convert(sessions.EXCHANGE_TZ).date()
        table = lake.canonical_table(lake.stamp(part, None), KEY, PRICE_SCHEMA)
        lake.write_part(lake.partition_dir(root, "raw_prices", day), table)
    for family in (TOY, COLUMNWISE):
        _assert_range_is_the_reference(family, compute.load_inputs(root, family, TOY_DAYS), TOY_DAYS)

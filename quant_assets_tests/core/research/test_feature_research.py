"""Feature research without a backfill: a library feature as a candidate is its stored values, nothing known after a
time changes a figure of before it, a peeking candidate is caught, and every bad input is one clear error."""

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest

from quant_assets.core import sessions
from quant_assets.core.features import staleness
from quant_assets.core.features.definitions import FeatureDef
from quant_assets.core.features.library import ALL_FEATURES, FAMILIES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import PRICE_SCHEMA, PRICE_VALUES
from quant_assets.core.ingest.sources.base import PRICE_LAG, known_by_close
from quant_assets.core.research import candidate, feature_research
from quant_assets.core.research.candidate import CandidateError
from quant_assets.core.storage import lake
from quant_assets.paths import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "candidate_feature.py"
WINDOW = ("2024-02-01", "2024-04-30")


def _stored_at_decision(root, name: str, universe: pd.DataFrame) -> np.ndarray:
    """The stored feature as a training snapshot reads it at each (date, name)'s decision time."""
    store = FeatureStore(root, ALL_FEATURES)
    as_of = universe["date"].map(sessions.decision_time)
    pit = store.get_point_in_time(pd.DataFrame({"entity_key": universe["entity_key"], "as_of": as_of}), [name])
    pit, usable = staleness.apply(pit, list(universe["date"]), store.families([name]))
    return np.where(usable, pit[name].to_numpy(), np.nan)


@pytest.mark.parametrize("name", ["vol_20", "cs_rank_sentiment_1"])
def test_a_library_feature_as_candidate_is_its_stored_values(feature_lake, name):
    report = feature_research.evaluate(feature_lake, ALL_FEATURES[name], *WINDOW)
    values = report.universe["value"].to_numpy()
    assert report.universe["value"].notna().sum() > 1000
    np.testing.assert_array_equal(values, _stored_at_decision(feature_lake, name, report.universe))
    # the bitemporal rows too: those the backfill stored for the days the candidate computed
    family = FAMILIES[ALL_FEATURES[name].family]
    stored = FeatureStore(feature_lake, ALL_FEATURES).feature_events(family.name)
    stored = stored[(stored["feature_name"] == name) & stored["event_time"].isin(report.rows["event_time"])]
    key = ["entity_key", "event_time", "ingest_time"]
    mine = report.rows.sort_values(key, ignore_index=True)
    theirs = stored.sort_values(key, ignore_index=True)
    np.testing.assert_array_equal(mine["value"].to_numpy(), theirs["value"].to_numpy(dtype=float))
    assert (mine[key].astype(str).to_numpy() == theirs[key].astype(str).to_numpy()).all()
    assert report.correlations.loc[name, "rank_corr"] == pytest.approx(1.0, abs=1e-12)
    assert report.correlations.loc[name, "days"] == len(report.values)
    assert report.lookahead_passed and report.guards["no_lookahead_recompute"].checked > 0
    assert set(report.ic.columns) == {1, 5, 10, 20} and report.ic[1].notna().sum() >= len(report.values) - 1


def _perturbed_copy(src, dst, cutoff: pd.Timestamp) -> None:
    """raw_prices of ``src`` where every bar known after ``cutoff`` is changed, plus a restatement of old bars
    delivered after it (a later ingest_time); old versions stay, as in the lake."""
    for part in sorted((src / "raw_prices").glob("date=*")):
        day = dt.date.fromisoformat(part.name[5:])
        rows = lake.read_partition(src, "raw_prices", day).drop(columns=["date"], errors="ignore")
        future = rows["ingest_time"] > cutoff
        for column in ("open", "close", "adj_close", "high"):
            rows.loc[future, column] = rows.loc[future, column] * 1.5 + 1
        lake.write_part(lake.partition_dir(dst, "raw_prices", day), lake.canonical_table(
            rows, ["ticker", "event_time", "ingest_time"], PRICE_SCHEMA))  # fmt: skip
        if sessions.session_close(day) < cutoff - pd.Timedelta(days=20) and day.day % 3 == 0:
            restated = rows[~future].copy()
            restated[["open", "close", "adj_close"]] *= 1.07
            late = cutoff + pd.Timedelta(hours=2)
            lake.append_new_versions(dst, "raw_prices", day, restated, ["ticker", "event_time"], PRICE_VALUES, late,
                                     PRICE_SCHEMA)  # fmt: skip


def test_changing_what_is_known_after_a_time_changes_no_figure_of_before_it(feature_lake, tmp_path):
    cut_day = dt.date(2024, 3, 28)
    cutoff = sessions.session_close(cut_day) + pd.Timedelta(hours=1)
    original, perturbed = tmp_path / "original", tmp_path / "perturbed"
    shutil.copytree(feature_lake / "raw_prices", original / "raw_prices")
    _perturbed_copy(feature_lake, perturbed, cutoff)
    feature = ALL_FEATURES["ret_5"]
    a, b = (feature_research.evaluate(root, feature, *WINDOW, guard_days=3) for root in (original, perturbed))
    known = a.universe["date"].map(sessions.decision_time) <= cutoff
    assert known.sum() > 1000 and (~known).sum() > 500
    np.testing.assert_array_equal(a.universe.loc[known, "value"], b.universe.loc[known, "value"])
    early_a = a.rows[a.rows["ingest_time"] <= cutoff].reset_index(drop=True)
    early_b = b.rows[b.rows["ingest_time"] <= cutoff].reset_index(drop=True)
    pd.testing.assert_frame_equal(early_a, early_b, check_exact=True)
    assert len(b.rows) > len(a.rows)  # the restatements gave rows of their own, after the cut-off
    for h in a.ic.columns:
        matured = [d for d in a.ic.index if known_by_close(sessions.session_offset(d, h)) <= cutoff]
        assert len(matured) >= 20
        np.testing.assert_array_equal(a.ic.loc[matured, h].to_numpy(), b.ic.loc[matured, h].to_numpy())
        np.testing.assert_array_equal(a.rank_ic.loc[matured, h].to_numpy(), b.rank_ic.loc[matured, h].to_numpy())
    # and the perturbation did change what came after
    later = [d for d in a.ic.index if d > cut_day + dt.timedelta(days=3)]
    assert not np.array_equal(a.ic.loc[later, 1].to_numpy(), b.ic.loc[later, 1].to_numpy())
    assert not np.array_equal(a.universe.loc[~known, "value"], b.universe.loc[~known, "value"])


def _peeking_candidate(root) -> FeatureDef:
    """Reads its rows' dates and looks up the label it will be judged against: tomorrow's open-to-open return."""
    bars = lake.read_partitions(root, "raw_prices", sessions.sessions_between("2023-10-02", "2024-06-28"))
    px = pd.concat(bars.values(), ignore_index=True)
    px["session"] = px["event_time"].dt.tz_convert(sessions.EXCHANGE_TZ).dt.date
    adj_open = (px["open"] * px["adj_close"] / px["close"]).set_axis(
        pd.MultiIndex.from_frame(px[["session", "ticker"]])
    )
    table = adj_open.unstack()

    def peek(panel) -> pd.Series:
        day = panel["adj_close"].index[-1]
        t1, t2 = sessions.next_session(day), sessions.session_offset(day, 2)
        if t2 not in table.index:
            return pd.Series(np.nan, index=panel["adj_close"].columns)
        return (table.loc[t2] / table.loc[t1] - 1).reindex(panel["adj_close"].columns)

    return FeatureDef("peek", "price", peek, "tomorrow's label, looked up by date", ("adj_close",), 1, PRICE_LAG)


def test_a_candidate_that_looks_up_the_future_by_date_is_caught(feature_lake):
    report = feature_research.evaluate(feature_lake, _peeking_candidate(feature_lake), *WINDOW, guard_days=5)
    assert report.ic_summary().loc[1, "rank_ic_mean"] > 0.99  # the figures alone would be perfect
    assert not report.lookahead_passed
    blind = report.guards["date_blind_recompute"]
    assert not blind.passed and blind.checked > 0 and "recomputing raised" in blind.failures[0]
    # recomputing from inputs cut at each row's time cannot see it: the function never reads them
    assert report.guards["no_lookahead_recompute"].passed


def test_a_candidate_is_loaded_from_a_file_or_a_module(tmp_path, monkeypatch):
    from_file = candidate.load(f"{EXAMPLE}:INTRADAY_REVERSAL")
    assert from_file.name == "intraday_reversal_3" and len(from_file.version) == 12
    (tmp_path / "my_candidates.py").write_text(EXAMPLE.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    from_module = candidate.load("my_candidates:INTRADAY_REVERSAL")
    assert from_module.version == from_file.version  # the same code, the same version
    assert candidate.research_family(from_file).fields == ("open", "close")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no/such/file.py:X", "candidate file .*no/such/file.py does not exist"),
        ("no_such_module_xyz:X", "candidate module no_such_module_xyz cannot be imported"),
        (f"{EXAMPLE}:NOPE", "has no NOPE; it defines the FeatureDef\\(s\\) INTRADAY_REVERSAL"),
        (f"{EXAMPLE}:intraday_reversal", "is a function, not a FeatureDef"),
        (str(EXAMPLE), "write it as path/to/file.py:NAME or package.module:NAME"),
    ],
)
def test_a_bad_candidate_name_is_one_clear_error(spec, message):
    with pytest.raises(CandidateError, match=message):
        candidate.load(spec)


def test_a_candidate_file_that_fails_to_import_names_the_error(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('half written')\n")
    with pytest.raises(CandidateError, match="failed to import: RuntimeError\\('half written'\\)"):
        candidate.load(f"{tmp_path / 'broken.py'}:X")


def _with(**changes) -> FeatureDef:
    base = ALL_FEATURES["ret_5"]
    return FeatureDef(**{**{f: getattr(base, f) for f in ("name", "family", "fn", "description", "inputs",
                                                          "lookback", "lag", "params")}, **changes})  # fmt: skip


@pytest.mark.parametrize(
    "feature, message",
    [
        (_with(inputs=("tweet_count",)), "inputs \\['tweet_count'\\] are not fields of its family price's source"),
        (_with(inputs=()), "are not fields of its family price's source raw_prices"),
        (_with(family="fundamentals"), "family 'fundamentals' is not one of price, alt"),
        (_with(lookback=0), "lookback must be a whole number of rows >= 1"),
    ],
)
def test_a_candidate_whose_declaration_does_not_fit_its_source_is_refused(feature, message):
    with pytest.raises(CandidateError, match=message):
        candidate.research_family(feature)


def test_a_function_reading_an_undeclared_field_or_beyond_its_lookback_names_the_day(feature_lake):
    undeclared = _with(inputs=("volume",))  # ret_5 reads adj_close
    with pytest.raises(CandidateError, match="ret_5 failed on 2024-01-31: KeyError"):
        feature_research.evaluate(feature_lake, undeclared, *WINDOW)
    short = _with(lookback=5)  # it reads 6 rows
    with pytest.raises(CandidateError, match="does it read more rows than its lookback, 5"):
        feature_research.evaluate(feature_lake, short, *WINDOW)


def test_a_window_without_data_or_history_is_refused(feature_lake):
    with pytest.raises(CandidateError, match="no raw_prices data under .* for the sessions 2025-02-28..2025-03-28"):
        feature_research.evaluate(feature_lake, ALL_FEATURES["ret_5"], "2025-03-03", "2025-03-31")
    with pytest.raises(CandidateError, match="the window 2024-04-30..2024-02-01 is reversed"):
        feature_research.evaluate(feature_lake, ALL_FEATURES["ret_5"], WINDOW[1], WINDOW[0])
    # ret_60 needs 61 sessions of prices before its first value: the lake starts on 2023-10-02
    with pytest.raises(
        CandidateError, match="shorter than the lookback: .* start the evaluation on 2023-12-28 or"
    ) as e:
        feature_research.evaluate(feature_lake, ALL_FEATURES["ret_60"], "2023-11-01", "2023-12-29")
    assert "needs raw_prices from 2023-08-07 (lookback 61), and the lake starts on 2023-10-02" in str(e.value)
    family = candidate.research_family(ALL_FEATURES["ret_60"])
    first = sessions.previous_session(dt.date(2023, 12, 28))  # the suggested start's first computed day
    candidate.check_history(feature_lake, family, [first])
    with pytest.raises(CandidateError):
        candidate.check_history(feature_lake, family, [sessions.previous_session(first)])


def test_newey_west_t_is_the_plain_t_without_lags_and_wider_with_them():
    x = pd.Series([0.1, 0.3, -0.2, 0.4, 0.2, 0.25, -0.05, 0.15])
    plain = x.mean() / (x.std(ddof=1) / np.sqrt(len(x)))
    assert feature_research.newey_west_t(x, 0) == pytest.approx(plain, rel=1e-12)
    trending = pd.Series(np.repeat([0.3, -0.1, 0.2, 0.1], 4))  # positively autocorrelated
    assert abs(feature_research.newey_west_t(trending, 3)) < abs(feature_research.newey_west_t(trending, 0))
    assert np.isnan(feature_research.newey_west_t(pd.Series([0.1]), 0))

"""The step check against each ticker's previous stored bar, and the UTF-8 guarantee of quarantine text.

Flags and rejections are checked by value through ``ingest_prices`` on real Parquet; invariants of the
pure check (units do not matter, older history does not matter, the limit is exact) by hypothesis.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant_assets.core.ingest.pipeline import ingest_prices
from quant_assets.core.ingest.sources import YahooCsvPrices
from quant_assets.core.ingest.validate import PriceLimits, check_steps, coerce_rejects, utf8_safe
from quant_assets_tests.core.ingest.helpers import (
    APR01,
    APR02,
    MAR25,
    MAR26,
    MAR27,
    MAR28,
    SESSIONS,
    bar,
    quarantined,
    write_csv,
)

D = dt.date.fromisoformat

# AAA: adj_close 10 -> 16 on 03-27 (x1.6, flagged), back to 10.4 on 03-28 (reverts it); a 20x volume
# spike on 04-01, back on 04-02. BBB: smooth.
AAA = [
    bar(MAR25, adj=10.0, v=1000),
    bar(MAR26, adj=10.0, v=1000),
    bar(MAR27, adj=16.0, v=1000),
    bar(MAR28, adj=10.4, v=1000),
    bar(APR01, adj=10.4, v=20000),
    bar(APR02, adj=10.4, v=1100),
]
BBB = [bar(s, adj=10.0 + i / 100) for i, s in enumerate(SESSIONS)]
FLAGS = {
    MAR27: [("AAA", "adj_close", MAR26, 10.0, 16.0, "jump")],
    MAR28: [("AAA", "adj_close", MAR27, 16.0, 10.4, "reverted")],
    APR01: [("AAA", "volume", MAR28, 1000.0, 20000.0, "jump")],
    APR02: [("AAA", "volume", APR01, 20000.0, 1100.0, "reverted")],
}


def _flags(report) -> list[tuple]:
    f = report.step_flags
    assert (f["date"] == report.partition).all() and np.allclose(f["ratio"], f["value"] / f["previous"])
    return [
        (r.ticker, r.field, r.previous_date.isoformat(), r.previous, r.value, r.note) for r in f.itertuples(index=False)
    ]


def _source(tmp_path, aaa=AAA):
    write_csv(tmp_path / "price" / "AAA.csv", aaa)
    write_csv(tmp_path / "price" / "BBB.csv", BBB)
    return YahooCsvPrices(tmp_path / "price")


def test_large_moves_are_kept_and_flagged_and_a_reversal_says_so(tmp_path, lake_root):
    source = _source(tmp_path)

    reports = {s: ingest_prices(source, D(s), lake_root) for s in SESSIONS}

    assert {s: _flags(r) for s, r in reports.items() if not r.step_flags.empty} == FLAGS
    assert all(r.rows_clean == 2 and r.rows_quarantined == 0 for r in reports.values())


def test_a_sessions_decision_ignores_later_sessions_in_the_lake(tmp_path, lake_root):
    """Point in time: ingesting the future first, even a different future, changes no earlier decision."""
    later = {APR01: bar(APR01, adj=99.0, v=1), APR02: bar(APR02, adj=1.0, v=1)}
    other_future = _source(tmp_path / "other", [*AAA[:4], later[APR01], later[APR02]])
    for s in (APR02, APR01):
        ingest_prices(other_future, D(s), lake_root)

    source = _source(tmp_path)
    reports = {s: ingest_prices(source, D(s), lake_root) for s in SESSIONS[:4]}

    assert {s: _flags(r) for s, r in reports.items() if not r.step_flags.empty} == {s: FLAGS[s] for s in (MAR27, MAR28)}


def test_the_step_is_taken_from_the_nearest_stored_bar_within_the_lookback(tmp_path, lake_root):
    """A missing or quarantined day is skipped; beyond ``lookback`` sessions nothing is compared."""
    source = _source(tmp_path, [bar(MAR25, adj=10.0), bar(MAR28, adj=200.0), bar(APR02, adj=2000.0)])
    limits = PriceLimits(lookback=3)

    reports = {s: ingest_prices(source, D(s), lake_root, limits=limits) for s in SESSIONS}

    q = quarantined(lake_root, "raw_prices", SESSIONS)
    assert q[["session", "reason", "detail"]].values.tolist() == [
        [MAR28, "implausible_step", "adj_close 200.0 vs 10.0 on 2024-03-25: x20 (limit 10x either way)"]
    ]
    # 04-02 looks back to 03-27 at most: 03-28's bar was quarantined, 03-25 is 4 sessions back.
    assert reports[APR02].rows_clean == 2 and reports[APR02].step_flags.empty


# ---------------------------------------------------------------- properties of the pure check

prices = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False)
volumes = st.integers(min_value=0, max_value=10**9)


def _history(adj: list[float], vol: list[int]) -> pd.DataFrame:
    days = [D(s) for s in SESSIONS[: len(adj)]]
    return pd.DataFrame({"ticker": "AAA", "date": days, "adj_close": adj, "volume": vol})


def _bar(adj: float, vol: int) -> pd.DataFrame:
    return pd.DataFrame({"ticker": ["AAA"], "adj_close": [adj], "volume": [vol], "source_file": ["AAA.csv"]}).assign(
        source_line=7, raw="x"
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(prices, min_size=3, max_size=3), st.lists(volumes, min_size=3, max_size=3), prices, volumes)
def test_step_check_invariants(adj, vol, today, today_vol):
    history = _history(adj, vol)
    session = D(APR02)
    kept, rejects, flags = check_steps(_bar(today, today_vol), session, history)

    # exactly the moves beyond 10x either way from the nearest earlier bar are rejected
    assert len(rejects) == int(abs(np.log(today / adj[-1])) > np.log(10)) and len(kept) + len(rejects) == 1
    # units do not matter: the same market in other units decides the same (a power of two keeps it exact)
    scaled = check_steps(_bar(today * 1024, today_vol), session, _history([a * 1024 for a in adj], vol))
    assert len(scaled[1]) == len(rejects) and scaled[2]["note"].tolist() == flags["note"].tolist()
    # only the two nearest earlier bars matter
    shorter = check_steps(_bar(today, today_vol), session, _history(adj, vol).iloc[1:])
    assert len(shorter[1]) == len(rejects) and shorter[2][["field", "note"]].equals(flags[["field", "note"]])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40))
def test_quarantine_text_is_always_writable_utf8(text):
    safe = utf8_safe(text)
    safe.encode("utf-8")  # never raises
    try:
        text.encode("utf-8")
        assert safe == text  # valid text is left alone
    except UnicodeEncodeError:
        assert safe != text
    rejects = coerce_rejects(
        pd.DataFrame(
            {
                "ticker": [text],
                "source_file": [text],
                "source_line": [1],
                "reason": ["r"],
                "detail": [text],
                "raw": [text],
            },
            dtype=object,
        )
    )
    assert pa.Table.from_pandas(rejects).column("detail").to_pylist() == [safe]


@pytest.mark.parametrize(
    ("name", "shown"),
    [("\udcff.csv", "\\xff.csv"), ("\ud800x", "\\ud800x"), ("ok \u00e9\U0001f600", "ok \u00e9\U0001f600")],
)
def test_utf8_safe_shows_undecodable_bytes_as_bytes(name, shown):
    assert utf8_safe(name) == shown

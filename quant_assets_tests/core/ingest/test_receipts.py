"""Receipts: the same delivery ingested again returns the first ingest's report and writes nothing; anything the
outcome depends on (the delivery, an earlier bar the step check reads, the partition's own parts) ingests again.
Rows and rejects carry the run that wrote them, and another run of the same delivery adds none; parts written
before they carried it are read as they were.

On real Parquet through ``ingest_prices`` / ``ingest_alt`` and real CSV sources; reports compared field by field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from quant_assets.core.audit import verify_lake
from quant_assets.core.features.library import FAMILIES
from quant_assets.core.features.materialize import materialize
from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
from quant_assets.core.ingest.sources import YahooCsvPrices, make_sources
from quant_assets.core.storage import lake, receipt
from quant_assets.core.summary import summarize
from quant_assets_tests.core.ingest.helpers import MAR26, MAR27, MAR28, Bad, bar, write_csv

D = dt.date.fromisoformat
AAA = [bar(MAR26, adj=10.0), bar(MAR27, adj=16.0), bar(MAR28, adj=10.4)]  # a flagged step, then a reversal
BBB = [bar(MAR26), Bad(f"{MAR27},x,1,1,1,1,1", "not_a_number", MAR27, "open"), bar(MAR28)]
DAYS = [MAR26, MAR27, MAR28]


def _source(base: Path, aaa=AAA) -> YahooCsvPrices:
    write_csv(base / "AAA.csv", aaa)
    write_csv(base / "BBB.csv", BBB)
    return YahooCsvPrices(base)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _comparable(report) -> dict:
    """Every field of a report but the run's own writes, frames as lists (the preview as text)."""
    fields = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    for name in ("rows_written", "quarantine_written", "unchanged"):
        fields.pop(name)
    fields["step_flags"] = report.step_flags.to_dict("records")
    fields["preview"] = report.preview.astype(str).to_dict("records")
    return fields


def test_the_same_delivery_again_returns_its_report_and_writes_nothing(tmp_path, lake_root):
    source = _source(tmp_path / "price")
    first = {d: ingest_prices(source, D(d), lake_root) for d in DAYS}
    stored = _files(lake_root)

    again = {d: ingest_prices(_source(tmp_path / "price"), D(d), lake_root) for d in DAYS}

    assert _files(lake_root) == stored
    assert all(r.unchanged and r.rows_written == 0 and r.quarantine_written == 0 for r in again.values())
    assert not any(r.unchanged for r in first.values())
    assert {d: _comparable(r) for d, r in again.items()} == {d: _comparable(r) for d, r in first.items()}
    assert first[MAR27].step_flags["ticker"].tolist() == ["AAA"] and first[MAR27].reasons == {"not_a_number": 1}
    assert sorted(p.name.startswith(receipt.PREFIX) for p in (lake_root / "raw_prices").rglob("*")).count(True) == 3
    assert verify_lake(lake_root).checked["ingest_receipt"] == 3


def test_a_lost_part_a_corrected_bar_or_a_restated_earlier_bar_ingests_again(tmp_path, lake_root):
    source = _source(tmp_path / "price")
    for d in DAYS:
        ingest_prices(source, D(d), lake_root)

    (part,) = lake.partition_files(lake.partition_dir(lake_root, "raw_prices", D(MAR26)))
    kept = part.read_bytes()
    part.unlink()
    report = ingest_prices(source, D(MAR26), lake_root)
    assert not report.unchanged and report.rows_written == 2 and part.read_bytes() == kept

    corrected = _source(tmp_path / "fixed", [AAA[0], AAA[1], bar(MAR28, adj=10.5)])
    report = ingest_prices(corrected, D(MAR28), lake_root)
    assert not report.unchanged and report.rows_written == 1  # the restatement of AAA on 03-28

    restated_before = _source(tmp_path / "restated", [bar(MAR26, adj=10.1), AAA[1], AAA[2]])
    ingest_prices(restated_before, D(MAR26), lake_root)  # a new part in 03-26, which 03-27's step check reads
    report = ingest_prices(source, D(MAR27), lake_root)
    assert not report.unchanged and report.rows_written == 0  # the decision is as of its close: the same
    assert report.step_flags["previous"].tolist() == [10.0]


def test_rows_not_yet_available_leave_no_receipt_and_a_later_run_ingests_them(tmp_path, lake_root):
    source = _source(tmp_path / "price")
    early = pd.Timestamp(f"{MAR27}T12:00:00Z")  # before 03-27's close: its bars are not yet known

    held = ingest_prices(source, D(MAR27), lake_root, now=early)
    later = ingest_prices(source, D(MAR27), lake_root)

    assert held.reasons["not_yet_available"] == 1 and held.rows_written == 0
    assert not later.unchanged and later.rows_written == 1  # AAA; BBB's line is damaged
    assert ingest_prices(source, D(MAR27), lake_root).unchanged


def test_a_live_run_keeps_no_receipt(tmp_path, lake_root):
    source = _source(tmp_path / "price")
    ingest_prices(source, D(MAR26), lake_root, clock="live", now=pd.Timestamp(f"{MAR27}T12:00:00Z"))
    assert not list((lake_root / "raw_prices").rglob(f"{receipt.PREFIX}*"))


def test_alternative_data_again_is_unchanged_with_the_same_report(lake_root):
    _, alt = make_sources("synthetic", seed=3, n_tickers=5)
    first = ingest_alt(alt, D(MAR27), lake_root)
    again = ingest_alt(make_sources("synthetic", seed=3, n_tickers=5)[1], D(MAR27), lake_root)
    assert again.unchanged and _comparable(again) == _comparable(first) and first.rows_written > 0
    other = ingest_alt(make_sources("synthetic", seed=4, n_tickers=5)[1], D(MAR27), lake_root)
    assert not other.unchanged


def test_a_damaged_receipt_is_named(tmp_path, lake_root):
    source = _source(tmp_path / "price")
    ingest_prices(source, D(MAR26), lake_root)
    (damaged,) = (lake_root / "raw_prices").rglob(f"{receipt.PREFIX}*")
    damaged.write_bytes(b"{not json")

    with pytest.raises(lake.CorruptFile, match=damaged.name):
        ingest_prices(source, D(MAR26), lake_root)
    assert [p.path.name for p in verify_lake(lake_root).problems] == [damaged.name]


R1 = {"producer": "raw_prices", "producer_version": "sha-one", "run_id": "run-1"}
R2 = {"producer": "raw_prices", "producer_version": "sha-two-dirty", "run_id": "run-2"}


def _rows(root: Path, dataset: str = "raw_prices") -> pd.DataFrame:
    return lake.read_frame(lake.dataset_files(root, dataset))


def _producers(frame: pd.DataFrame) -> set[tuple]:
    return set(frame[lake.PROVENANCE].astype(object).where(frame[lake.PROVENANCE].notna(), None).itertuples(False))


def test_rows_and_rejects_carry_the_run_that_wrote_them_and_another_run_of_the_delivery_adds_none(tmp_path, lake_root):
    for d in DAYS:
        ingest_prices(_source(tmp_path / "price"), D(d), lake_root, provenance=R1)
    stored = _files(lake_root)
    rows, rejects = _rows(lake_root), _rows(lake_root, "quarantine/raw_prices")
    assert len(rows) == 5 and len(rejects) == 1  # AAA x3, BBB x2; BBB's damaged 03-27 line
    assert _producers(rows) == _producers(rejects) == {tuple(R1.values())}
    for kept in (lake_root / "raw_prices").rglob(f"{receipt.PREFIX}*"):
        kept.unlink()  # no receipt: the delivery is validated and offered to the lake again, by another run

    again = [ingest_prices(_source(tmp_path / "price"), D(d), lake_root, provenance=R2) for d in DAYS]

    assert [(r.unchanged, r.rows_written, r.quarantine_written) for r in again] == [(False, 0, 0)] * 3
    assert _files(lake_root) == stored  # no part differing in its run alone; the receipts again, byte for byte
    assert [ingest_prices(_source(tmp_path / "price"), D(d), lake_root, provenance=R2).unchanged for d in DAYS] == [
        True
    ] * 3


def test_parts_written_before_rows_carried_their_producer_are_read_as_they_were(tmp_path, lake_root):
    """03-26 and 03-27 stored as before this change (no PROVENANCE columns, rows and rejects), 03-28 after: the
    step check, a rerun, the audit, the summary and the price features read them as the same rows."""
    fresh = tmp_path / "fresh"
    reports = {d: ingest_prices(_source(tmp_path / "price"), D(d), fresh, provenance=R1) for d in DAYS}
    for d in DAYS[:2]:
        for dataset in ("raw_prices", "quarantine/raw_prices"):
            for part in lake.partition_files(lake.partition_dir(fresh, dataset, D(d))):
                table = lake.read_part(part).drop_columns(lake.PROVENANCE)
                lake.write_part(lake.partition_dir(lake_root, dataset, D(d)), table)

    mar28 = ingest_prices(_source(tmp_path / "price"), D(MAR28), lake_root, provenance=R1)
    again = [ingest_prices(_source(tmp_path / "price"), D(d), lake_root, provenance=R2) for d in DAYS[:2]]

    assert _comparable(mar28) == _comparable(reports[MAR28]) and mar28.step_flags["ticker"].tolist() == ["AAA"]
    assert [(r.rows_written, r.quarantine_written) for r in again] == [(0, 0)] * 2
    mixed = _rows(lake_root).sort_values(["ticker", "event_time"], ignore_index=True)
    alike = _rows(fresh).sort_values(["ticker", "event_time"], ignore_index=True)
    values = [c for c in mixed.columns if c not in lake.PROVENANCE]
    pd.testing.assert_frame_equal(mixed[values], alike[values])
    assert _producers(mixed) == {(None, None, None), tuple(R1.values())}
    assert verify_lake(lake_root).ok
    counts = summarize(lake_root).set_index("dataset").loc["raw_prices", ["rows", "quarantined"]].tolist()
    assert counts == [5, 1]
    for root in (lake_root, fresh):
        materialize(root, FAMILIES["price"], [D(d) for d in DAYS], R1, lookahead_sample=0, verify_sample=0)
    features = lambda root: sorted(p.name for p in (root / "features").rglob("part-*.parquet"))  # noqa: E731
    assert features(lake_root) == features(fresh) and features(fresh)  # the same values, so the same bytes

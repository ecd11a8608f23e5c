"""Receipts: what ingesting one delivery of a partition gave, so the same delivery again costs its reading only.

A partition's ingest is a function of the delivery (the source's records, whole-file rejects and notices), the
settings (clock, limits, universe), the code that validates it and what is stored where it reads and writes:
its own partition and quarantine partition, and for prices the sessions its step check looks back on. Parts are
content-addressed, so their names are their content. After an ingest, a receipt ``date=D/_receipt-<key>.json``
records the report under the hash of all of that, the partition's parts as they are after the write included.

A rerun with the same delivery finds the receipt and returns its report, marked ``unchanged``, without validating
or reading any stored row: writing nothing is what the ingest would have done (``append_new_versions`` adds only
new or changed rows, the quarantine only records not yet quarantined). Anything different (a corrected file, a
restated earlier bar, a part lost, a new commit) gives another key, and the partition is ingested as before.
Only the backfill clock keeps receipts: its outcome depends on ``now`` only through rows not yet available, and
a run that held some back keeps none (a later run ingests them). A live run stamps what it writes with its own
``now``, so its report is its own. The receipt's key, name, writing and reading are ``storage/receipt.py``'s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from quant_assets.core import sessions
from quant_assets.core.ingest.report import IngestReport
from quant_assets.core.ingest.sources.base import Notice, RawBatch
from quant_assets.core.storage import fs, lake, receipt
from quant_assets.core.storage.fs import Location
from quant_assets.core.storage.hashing import code_hash, lines_hash

UNAVAILABLE = "not_yet_available"  # rows whose fate depends on the run's ``now``


def delivery_digest(batch: RawBatch, settings: Mapping[str, object]) -> str:
    """SHA-256 of what was offered and how it is judged. The frames as CSV text: a delivery's columns may hold
    anything (text in a number's place, undecodable bytes), which CSV writes without refusing and in full
    precision."""
    h = hashlib.sha256(json.dumps([_code(), settings], sort_keys=True, default=str).encode())
    for frame in (batch.records, batch.rejects):
        h.update(frame.to_csv(index=False).encode("utf-8", "surrogatepass"))
        h.update(repr(list(frame.dtypes.astype(str))).encode())
    offered = (batch.records_read, [dataclasses.astuple(n) for n in batch.notices])
    h.update(repr(offered).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _code() -> str:
    """The text of the code an ingest runs (this package, the lake's writer, the calendar), hashed."""
    return code_hash(Path(__file__).parent, Path(lake.__file__), Path(sessions.__file__))


def find(root: Location, dataset: str, day: dt.date, digest: str, reads: list[Location]) -> IngestReport | None:
    """The report of the receipt for ``digest`` over what is stored now in ``reads``, marked unchanged."""
    path = _path(root, dataset, day, digest, reads)
    if not path.exists():
        return None
    return dataclasses.replace(read(path), unchanged=True)


def read(path: Location) -> IngestReport:
    """The report a receipt holds; a receipt that does not read as one raises ``CorruptFile`` naming it."""
    return receipt.read(path, from_json, "an ingest receipt")


def keep(root: Location, dataset: str, day: dt.date, digest: str, reads: list[Location], report: IngestReport) -> None:
    """Write the receipt of ``report`` (after its rows are stored), unless rows were held back for being early. It
    records the outcome, not this run's writes: a rerun, or a writer racing this one, writes nothing and keeps the
    same bytes."""
    if report.reasons.get(UNAVAILABLE):
        return
    outcome = dataclasses.replace(report, rows_written=0, quarantine_written=0)
    receipt.write(_path(root, dataset, day, digest, reads), to_json(outcome))


def _path(root: Location, dataset: str, day: dt.date, digest: str, reads: list[Location]) -> Location:
    """The receipt's location: its key hashes the delivery's digest and the part names stored in ``reads``."""
    names = [fs.relative(p, root) for d in reads for p in lake.partition_files(d)]  # the same wherever the lake is
    return receipt.path(lake.partition_dir(root, dataset, day), lines_hash([digest, *names]))


def to_json(report: IngestReport) -> dict:
    """The report as JSON values: frames as records of text (the preview is shown, not computed on)."""
    out = {f.name: getattr(report, f.name) for f in dataclasses.fields(report)}
    out.update(
        partition=report.partition.isoformat(),
        first_event=None if report.first_event is None else report.first_event.isoformat(),
        last_event=None if report.last_event is None else report.last_event.isoformat(),
        reasons=dict(report.reasons),
        notices=[dataclasses.asdict(n) for n in report.notices],
        step_flags=report.step_flags.astype(object).where(report.step_flags.notna(), None).to_dict("split"),
        preview=report.preview.astype(str).to_dict("split"),
    )
    return out


def from_json(data: dict) -> IngestReport:
    """The report ``to_json`` wrote, with its dates, times and step flags typed as an ingest gives them."""
    flags = pd.DataFrame(data["step_flags"]["data"], columns=data["step_flags"]["columns"])
    for column in ("date", "previous_date"):
        flags[column] = flags[column].map(lambda d: dt.date.fromisoformat(str(d)) if d is not None else None)
    return IngestReport(
        **{
            **data,
            "partition": dt.date.fromisoformat(data["partition"]),
            "first_event": None if data["first_event"] is None else pd.Timestamp(data["first_event"]),
            "last_event": None if data["last_event"] is None else pd.Timestamp(data["last_event"]),
            "reasons": Counter(data["reasons"]),
            "notices": [Notice(**n) for n in data["notices"]],
            "step_flags": flags,
            "preview": pd.DataFrame(data["preview"]["data"], columns=data["preview"]["columns"]),
            "schema": [tuple(s) for s in data["schema"]],
        }
    )

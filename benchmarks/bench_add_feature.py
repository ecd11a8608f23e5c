"""Registering one new price feature and backfilling it over the lake's history, against re-storing the family.

Run on a lake that holds raw prices and the price family (the one ``./qa main`` leaves, 2 years)::

    .venv/bin/python benchmarks/bench_add_feature.py [--lake data/lake]

The lake is copied into a temporary directory (hard links; the copy's new files are its own), never changed.
The price family gains one feature (``examples/candidate_feature.py``'s INTRADAY_REVERSAL) and is materialised
over every session of the lake, as a backfill of ``price_features`` does:

- ``added``: the family's stored directory keeps its features; the run computes and stores the new feature alone
  (a unit of its own) and skips the stored unit's days, whose inputs have not changed;
- ``re-stored``: the same run on a copy without the stored feature directories, which is what the family costs
  when nothing of it can be kept (before storage units, every new feature re-stored the whole family);
- ``rerun``: the ``added`` run again, nothing new.

Each run is in a child process of its own; figures: wall and CPU seconds, rows written, and the ratio of the
``added`` run to the ``re-stored`` one, with the load average.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, arguments, child_main, cpu_s, git_version, load_text, machine_text, print_table, run

PROV = {"producer": "bench", "producer_version": "bench", "run_id": "bench"}


def _family():
    from quant_assets.core.features.definitions import FeatureFamily
    from quant_assets.core.features.library import PRICE_FAMILY

    sys.path.insert(0, str(REPO / "examples"))
    from candidate_feature import INTRADAY_REVERSAL

    p = PRICE_FAMILY
    return FeatureFamily(p.name, p.source, p.fields, (*p.features, INTRADAY_REVERSAL), p.description)


def child_materialize(root: str) -> dict:
    from quant_assets.core.features.materialize import materialize
    from quant_assets.core.storage import lake

    files = lake.dataset_files(Path(root), "raw_prices")
    days = sorted({dt.date.fromisoformat(p.parent.name.removeprefix("date=")) for p in files})
    t0, c0 = time.perf_counter(), cpu_s()
    done = materialize(Path(root), _family(), days, PROV, lookahead_sample=25, verify_sample=20)
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": cpu_s() - c0,
        "days": len(days),
        "written": done.written,
        "skipped": done.skipped,
        "units": ", ".join(f"{len(u.family.features)} feature(s)" for u, _ in done.computed) or "none",
        "load": load_text(),
    }


def _copy(src: Path, dst: Path, features: bool) -> Path:
    """A hard-linked copy of the raw data (and of the feature store with ``features``)."""
    for part in ("raw_prices", *(["features"] if features else [])):
        if (src / part).exists():
            shutil.copytree(src / part, dst / part, copy_function=os.link)
    return dst


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--lake", type=Path, default=REPO / "data" / "lake", help="lake to copy (default data/lake)")
    args = parser.parse_args()
    if not (args.lake / "features" / "price").exists():
        raise SystemExit(f"{args.lake} holds no price features: run ./qa main first, or give --lake")
    print(f"bench_add_feature: {machine_text()}, code {git_version()}")
    print(f"at start: {load_text()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        kept = _copy(args.lake, Path(tmp) / "kept", features=True)
        bare = _copy(args.lake, Path(tmp) / "bare", features=False)
        results = {}
        for name, root in (("added", kept), ("re-stored", bare), ("rerun", kept)):
            r = results[name] = run(__file__, "materialize", str(root))
            rows.append([name, r["days"], r["units"], r["skipped"], r["written"], f"{r['wall_s']:.1f}",
                         f"{r['cpu_s']:.1f}", r["load"]])  # fmt: skip
    print_table(["run", "sessions", "units computed", "unit-days unchanged", "rows written", "wall s", "CPU s", "load"],
                rows)  # fmt: skip
    added, full = results["added"]["cpu_s"], results["re-stored"]["cpu_s"]
    print(f"added / re-stored CPU: {added / full:.3f} ({full / added:.1f}x less)")
    print(f"at end: {load_text()}")


if __name__ == "__main__":
    if not child_main({"materialize": child_materialize}):
        main()

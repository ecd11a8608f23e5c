"""What verifying stored files costs: reads that check every part, and a full ``verify`` pass.

Builds a synthetic lake (100 names x 250 sessions: raw prices, tweets and both feature families, one
compacted month), then measures, in the same run and process:

- reading every raw and feature part with plain ``pq.read_table`` (the baseline) against
  ``lake.read_part`` (SHA-256 of the bytes against the name, Parquet page checksums);
- ``verify_lake`` over the whole lake, in files and MiB per CPU second.

Figures are CPU seconds of this process (best of three) and same-run ratios, with the load average:
the machines are shared and noisy.

    .venv/bin/python benchmarks/bench_integrity.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from _common import arguments, git_version, load_text, print_table

from quant_assets.core.audit import verify_lake
from quant_assets.core.features.backfill import backfill
from quant_assets.core.features.compaction import compact
from quant_assets.core.ingest.sources import SyntheticMarket
from quant_assets.core.storage import lake


def best_cpu(fn, reps: int = 3) -> float:
    """The least CPU time of ``reps`` calls: the machine's noise only ever adds."""
    out = float("inf")
    for _ in range(reps):
        start = time.process_time()
        fn()
        out = min(out, time.process_time() - start)
    return out


def main() -> None:
    arguments(__doc__).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        market = SyntheticMarket(seed=3, n_tickers=100)
        t0 = time.perf_counter()
        backfill(root, market, market, "2023-06-01", "2024-05-31")
        compact(root, min_files=8)
        print(f"setup: lake of 100 names x 250 sessions in {time.perf_counter() - t0:.0f} s")
        parts = sorted(p for p in root.rglob("part-*.parquet") if "_compacted" not in p.parts)
        mib = sum(p.stat().st_size for p in parts) / 2**20
        plain = best_cpu(lambda: [pq.read_table(p) for p in parts])
        checked = best_cpu(lambda: [lake.read_part(p) for p in parts])
        files = sum(1 for p in root.rglob("*") if p.is_file())
        whole = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
        verify = best_cpu(lambda: verify_lake(root), reps=2)
        assert verify_lake(root).ok
    rows = [
        [f"read {len(parts)} parts ({mib:.0f} MiB), pq.read_table", f"{plain:.2f}", "1.00"],
        ["same, lake.read_part (SHA-256 + page checksums)", f"{checked:.2f}", f"{checked / plain:.2f}"],
        [f"verify_lake: {files} files ({whole:.0f} MiB)", f"{verify:.2f}", f"{verify / plain:.2f}"],
    ]
    print_table(["what", "CPU s", "vs plain read"], rows)
    print(f"verify_lake: {files / verify:.0f} files/s, {whole / verify:.0f} MiB/s of CPU")
    print(f"{load_text()}; {git_version()}")


if __name__ == "__main__":
    main()

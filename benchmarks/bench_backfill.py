"""Backfill cost per session, this checkout against an earlier commit in the same run (not a test).

Run from the repository root::

    .venv/bin/python benchmarks/bench_backfill.py [--base REV] [--rounds N]

A backfill's day-by-day work (``ingest_prices``, ``ingest_alt``, then ``materialize`` of each feature family over
the range) is what the main job's stage 2 and every test lake pay per session. Each measurement is a fresh child
process building an empty lake: the seeded synthetic market (200 names, ``SYNTHETIC`` sessions) and the StockNet
data (70 names, ``STOCKNET`` sessions; skipped when ``../shared/data/stocknet`` is absent). With ``--base REV`` the
same children also run on REV (a temporary ``git worktree``, imported first through ``PYTHONPATH``), alternating
with this checkout round by round, so both see the same machine; the report gives CPU milliseconds per session of
each call (median over rounds) and the ratio this/base.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, load1  # noqa: E402

SYNTHETIC = ("2023-10-02", "2023-12-29")
STOCKNET = ("2014-10-01", "2014-12-31")
STOCKNET_DIR = REPO.parent / "shared" / "data" / "stocknet"


def child(kind: str) -> dict:
    """CPU ms per session of each backfill call for ``kind`` ("synthetic" or "stocknet"), in this process."""
    from quant_assets.core import sessions
    from quant_assets.core.features.library import FAMILIES
    from quant_assets.core.features.materialize import materialize
    from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
    from quant_assets.core.ingest.sources import SyntheticMarket, make_sources

    if kind == "synthetic":
        prices = alt = SyntheticMarket(seed=5, n_tickers=200)
        days = sessions.sessions_between(*SYNTHETIC)
    else:
        prices, alt = make_sources("stocknet", stocknet_dir=str(STOCKNET_DIR))
        days = sessions.sessions_between(*STOCKNET)
    root, out = Path(tempfile.mkdtemp()) / "lake", {}
    for name, call in (("ingest_prices", ingest_prices), ("ingest_alt", ingest_alt)):
        start = time.process_time()
        for day in days:
            call(prices if call is ingest_prices else alt, day, root)
        out[name] = (time.process_time() - start) * 1000 / len(days)
    provenance = {"producer": "bench", "producer_version": "bench", "run_id": "bench"}
    for family in FAMILIES.values():
        start = time.process_time()
        materialize(root, family, days, provenance, lookahead_sample=0, verify_sample=0)
        out[f"materialize {family.name}"] = (time.process_time() - start) * 1000 / len(days)
    return out


def _measure(kind: str, tree: Path | None) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _report(kind: str, runs: dict[str, list[dict]]) -> None:
    print(f"\n{kind}: CPU ms per session (median of {len(runs['this'])} rounds)")
    print(f"  {'call':24s} {'this':>8s}" + (f" {'base':>8s} {'this/base':>10s}" if "base" in runs else ""))
    for call in runs["this"][0]:
        this = statistics.median(r[call] for r in runs["this"])
        line = f"  {call:24s} {this:8.1f}"
        if "base" in runs:
            base = statistics.median(r[call] for r in runs["base"])
            line += f" {base:8.1f} {this / base:10.2f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="an earlier commit to measure in the same run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    kinds = ["synthetic"] + (["stocknet"] if STOCKNET_DIR.is_dir() else [])
    print(f"load average {load1():.2f}; this checkout vs {args.base or '(no base)'}")
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        if args.base:
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base], check=True)
        try:
            for kind in kinds:
                runs: dict[str, list[dict]] = {"this": [], **({"base": []} if args.base else {})}
                for _ in range(args.rounds):
                    for label in runs:
                        runs[label].append(_measure(kind, base if label == "base" else None))
                _report(kind, runs)
        finally:
            if args.base:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=True)
    print(f"\nload average {load1():.2f}")


if __name__ == "__main__":
    main()

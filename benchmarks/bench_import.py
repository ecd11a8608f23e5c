"""What loading the Dagster definitions costs, against a bare ``import dagster``.

Every CLI call, the code server and every step process imports ``quant_assets.definitions``; the target is
at most 1.5x a bare ``import dagster``. Both imports run in fresh interpreters, alternated so the machine's
load falls on both alike, ``--reps`` times each (default 7). Figures: median CPU seconds (user + system of
the child) and median wall seconds, their ratios, the load average before and after, and which heavy
libraries the definitions pull in at import (matplotlib, scipy, scikit-learn and lightgbm should not be).

The children use bytecode caches as an installed package does (``PYTHONDONTWRITEBYTECODE`` is dropped
from their environment, and one warm-up import of each target writes the caches): otherwise every run
would compile the project's modules from source, a cost no deployment pays and ``import dagster``,
whose caches pip wrote, never pays.

With ``--floor``, two reference imports join the run: dagster with pandas, and dagster with the NYSE
calendar built (``sessions.calendar()``, which the trading-day partitions need when the definitions
load): what the definitions cannot cost less than while the partitions' exclusions come from the calendar.

    .venv/bin/python benchmarks/bench_import.py [--reps N] [--floor]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from _common import REPO, arguments, git_version, load_text, print_table

TARGETS = {"dagster": "import dagster", "quant_assets.definitions": "import quant_assets.definitions"}
FLOOR = {
    "dagster + pandas": "import dagster, pandas",
    "dagster + NYSE calendar": "import dagster; from quant_assets.core import sessions; sessions.calendar()",
}
HEAVY = ["matplotlib", "scipy", "sklearn", "lightgbm", "pandas", "pyarrow", "duckdb", "exchange_calendars"]


def child_env() -> dict[str, str]:
    """The environment of a measured interpreter: this repository's code, warnings off, bytecode caches on."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def one_import(code: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a fresh interpreter running ``code``, from the repository root."""
    env = child_env()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{code!r} failed with exit code {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def heavy_loaded() -> list[str]:
    """The heavy libraries present in sys.modules after importing the definitions."""
    code = f"import sys, quant_assets.definitions; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    argv = [sys.executable, "-c", code]
    out = subprocess.run(argv, cwd=REPO, env=child_env(), capture_output=True, text=True, check=True)
    return out.stdout.split()


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--reps", type=int, default=7, help="fresh interpreters per import (default 7)")
    parser.add_argument("--floor", action="store_true", help="also measure the reference imports (FLOOR)")
    args = parser.parse_args()
    reps, targets = args.reps, {**TARGETS, **(FLOOR if args.floor else {})}
    print(f"code {git_version()}, python {sys.version.split()[0]}, {load_text()} (before)")
    for code in targets.values():  # warm the file cache and write the bytecode caches, for both alike
        one_import(code)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
    for _ in range(reps):
        for name, code in targets.items():
            runs[name].append(one_import(code))
    cpu = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    wall = {name: statistics.median(r[1] for r in rs) for name, rs in runs.items()}
    rows = [
        [name, f"{cpu[name]:.2f}", f"{cpu[name] / cpu['dagster']:.2f}", f"{wall[name]:.2f}"]
        + [f"{wall[name] / wall['dagster']:.2f}"]
        for name in targets
    ]
    print_table([f"import (median of {reps})", "CPU s", "x dagster", "wall s", "x dagster"], rows)
    print(f"{load_text()} (after)")
    print("heavy libraries loaded by the definitions:", " ".join(heavy_loaded()) or "none")


if __name__ == "__main__":
    main()

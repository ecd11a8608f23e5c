"""Helpers shared by the benchmark scripts: child processes, resource probes, tables, load and code version.

Each benchmark runs its measurements in fresh child processes of its own script (``script --child KIND
'<json args>'``, the child prints one JSON line last) so imports, caches and memory peaks do not carry
over between measurements.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- child side


def maxrss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """User + system CPU seconds of this process so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load1() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


class Timer:
    """Accumulated wall and process CPU time (and count) of calls to a wrapped function."""

    def __init__(self, fn: Callable):
        self.fn, self.seconds, self.cpu, self.calls = fn, 0.0, 0.0, 0

    def __call__(self, *args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu += time.process_time() - c0
            self.calls += 1


def child_main(children: Mapping[str, Callable[..., dict]]) -> bool:
    """Run ``script --child KIND '<json args>'`` if that is how the script was called; True if it was."""
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(children[sys.argv[2]](*json.loads(sys.argv[3]))))
        return True
    return False


# --------------------------------------------------------------------------- parent side


def spawn(script: str | Path, kind: str, *args) -> subprocess.Popen:
    """Start ``script``'s child ``kind`` with JSON-encoded ``args`` in the repository root."""
    cmd = [sys.executable, str(Path(script).resolve()), "--child", kind, json.dumps(list(args))]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(proc: subprocess.Popen) -> dict:
    """Wait for a child; its last stdout line is its JSON result. A failed child raises with its stderr."""
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"child {proc.args[3:]} failed ({proc.returncode}):\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def run(script: str | Path, kind: str, *args) -> dict:
    return collect(spawn(script, kind, *args))


def table(headers: list[str], rows: list[list]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def load_text() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def git_version(paths: str = "quant_assets") -> str:
    """Commit and whether ``paths`` have uncommitted changes (the figures belong to that code)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", paths], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}{f' + uncommitted changes in {paths}/' if dirty else ''}"

"""Helpers shared by the benchmark scripts: child processes, resource probes, and the report (header,
sections, tables, number formats, load and code version, footer).

Each benchmark runs its measurements in fresh child processes of its own script (``script --child KIND
'<json args>'``, the child prints one JSON line last) so imports, caches and memory peaks do not carry
over between measurements. Every report starts with the interpreter, machine, code version and load
average and ends with the load and code version again, because the machines are shared and noisy and a
figure means nothing without the code it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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


def count_descendants() -> None:
    """Make this process the child subreaper (Linux ``prctl``): a process orphaned under it (a forkserver whose
    parent exited) is reparented here, so ``run_counted`` reaps it and counts its CPU."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed: this benchmark needs Linux")


def run_counted(
    cmd: list[str], env: Mapping[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``cmd``; its result, wall seconds and CPU seconds of it and every process under it (after
    ``count_descendants``: orphans included, reaped here)."""

    def children() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    cpu0, t0 = children(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    wall = time.perf_counter() - t0
    while True:  # the orphans that outlived the command
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return done, wall, children() - cpu0


def fresh_database(server_url: str, prefix: str) -> tuple[str, str]:
    """A new, empty database named ``<prefix>_<random>`` on the Postgres server of ``server_url``; (its
    postgresql+psycopg2 URL, its name)."""
    import uuid

    import psycopg2

    from quant_assets.core.storage import pg
    from quant_assets.localpg import psycopg2_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(pg.libpq(server_url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return psycopg2_url(server_url.rsplit("/", 1)[0] + f"/{name}"), name


# --------------------------------------------------------------------------- report


def table(headers: list[str] | str, rows: list[list]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned.

    ``headers`` may be one string with the column names separated by ``|``, which keeps a wide table's
    header on a line or two of the script.
    """
    headers = headers.split("|") if isinstance(headers, str) else headers
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(headers: list[str] | str, rows: list[list], note: str | None = None) -> None:
    """Print ``table(headers, rows)`` and, below it, the note that says what its columns mean."""
    print(table(headers, rows))
    if note:
        print(note)


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def ms(seconds: float) -> str:
    """Seconds as milliseconds, one decimal."""
    return f"{1000 * seconds:.1f}"


def mb(x: float | None) -> str:
    """MiB with one decimal, '-' when not measured."""
    return "-" if x is None else f"{x:.1f}"


def ratio(a: float, b: float) -> str:
    """a / b with two decimals, '-' when b is zero."""
    return f"{a / b:.2f}" if b else "-"


def reps(runs: list[dict], key: str = "wall_s") -> str:
    """Every repetition's figure, in run order (the spread is part of the result)."""
    return ", ".join(f"{r[key]:.2f}" for r in runs)


def loads(runs: list[dict]) -> str:
    """The range of the 1-minute load averages the children recorded (``load`` lists in their results)."""
    values = [x for r in runs for x in r["load"]]
    return f"{min(values):.1f}-{max(values):.1f}"


def load_text() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def arguments(doc: str) -> argparse.ArgumentParser:
    """A command-line parser whose ``--help`` shows the script's docstring (what it measures and how)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def machine_text() -> str:
    return f"python {platform.python_version()}, {os.cpu_count()} cpus, {platform.platform()}"


def section(title: str) -> None:
    """A titled part of the report, with the load average as it starts."""
    print(f"\n== {title}; {load_text()}")


@contextmanager
def report(
    name: str,
    code_paths: str = "quant_assets",
    label: str = "temp dir",
    detail: str = "",
    code: str | None = None,
    end_note: Callable[[], str] | None = None,
) -> Iterator[Path]:
    """A benchmark run in a fresh temporary directory: header first, directory removed, footer last.

    The footer (total runtime, load, code version at the end) is printed only after a complete run;
    ``end_note`` replaces the default code-at-end line (a script that hashes its sources says more).
    """
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}_"))
    try:
        print(f"{name}: {machine_text()}, code {code or git_version(code_paths)}")
        print(f"{label} {tmp}; {f'{detail}; ' if detail else ''}at start: {load_text()}")
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal benchmark runtime {time.perf_counter() - started:.0f} s; {label} removed; at end: {load_text()}")
    default = f"code at end {git_version(code_paths)} (a change during the run would make the figures mixed)"
    print(end_note() if end_note else default)


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

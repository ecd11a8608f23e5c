"""The main job's wall and CPU time, by stage, on a fresh state and then rerun on it (nothing new).

    .venv/bin/python benchmarks/bench_main.py [--pg-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep DIR]
    .venv/bin/python benchmarks/bench_main.py --again DIR   # only the rerun, on a state kept by --keep

``quant-assets main`` runs twice with its own state: a temporary data root and DAGSTER_HOME (the project's
dagster.yaml) and a fresh database on the given Postgres server for both Dagster and the registry (the README's
default starts a project-local Postgres instead; the work is the same). Figures: each run's wall seconds and CPU
seconds of every process under it (steps forked from the forkserver and the daemon's runs included: this
script is their subreaper), and the wall time of each stage from the command's own progress lines.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from _common import (
    REPO,
    arguments,
    count_descendants,
    fresh_database,
    git_version,
    load_text,
    machine_text,
    print_table,
    run_counted,
)

STAGE = re.compile(r"^==> (\S+)")
CLOCK = re.compile(r"\[\s*(\d+):(\d\d)\]")


def stage_walls(stderr: str) -> dict[str, int]:
    """Seconds from each stage's header to the next one's (the command's own [mmm:ss] clock: a stage starts at
    the last time printed before its header)."""
    marks: list[tuple[str, int]] = []
    seconds = 0
    for line in stderr.splitlines():
        if m := STAGE.match(line.strip()):
            marks.append((m.group(1), seconds))
        if c := CLOCK.search(line):
            seconds = int(c.group(1)) * 60 + int(c.group(2))
    ends = [s for _, s in marks[1:]] + [seconds]
    return {name: end - start for (name, start), end in zip(marks, ends, strict=True)}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres", help="Postgres server")
    parser.add_argument("--keep", type=Path, help="state directory to keep (default: a temporary one)")
    parser.add_argument("--again", type=Path, help="a state kept by --keep: run only the rerun on it")
    args = parser.parse_args()
    count_descendants()
    print(f"bench_main: {machine_text()}, code {git_version()}")
    print(f"at start: {load_text()}")
    state = args.again or args.keep or Path(tempfile.mkdtemp(prefix="bench_main_"))
    if args.again:
        url = (state / "database").read_text()
    else:
        (state / "home").mkdir(parents=True, exist_ok=True)
        (state / "home" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        url, _ = fresh_database(args.pg_url, "bench_main")
        (state / "database").write_text(url)
    env = {**os.environ, "DAGSTER_HOME": str(state / "home"), "QUANT_DATA_ROOT": str(state / "lake"),
           "DAGSTER_PG_URL": url, "QUANT_PG_URL": url, "PYTHONWARNINGS": "ignore"}  # fmt: skip
    rows, stages = [], {}
    for run in ("rerun",) if args.again else ("fresh", "rerun"):
        done, wall, cpu = run_counted([str(REPO / ".venv/bin/quant-assets"), "main"], env)
        if done.returncode != 0:
            raise SystemExit(f"quant-assets main ({run}) failed:\n{done.stderr[-3000:]}")
        stages[run] = stage_walls(done.stderr)
        rows.append([run, f"{wall:.0f}", f"{cpu:.0f}", load_text()])
        print(f"  {run}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    print_table(["run", "wall s", "CPU s (all processes)", "load"], rows)
    names = list(stages.get("fresh", stages["rerun"]))
    print_table(
        ["stage", "fresh wall s", "rerun wall s"],
        [[n, stages.get("fresh", {}).get(n, "-"), stages["rerun"].get(n, "-")] for n in names],
    )
    print(f"state: {state}; at end: {load_text()}")


if __name__ == "__main__":
    main()

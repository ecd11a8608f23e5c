"""One new session of the daily chain through the CLI: CPU seconds of every process it starts, by executor.

Run on a state the main job (or any backfill) has built, after ``eval "$(./qa env)"``:

    .venv/bin/python benchmarks/bench_daily.py [--sessions D1,D2,...] [--starts spawn,forkserver,in_process,daily_job]

Each session is materialised once per start method, alternated (the first session with the first method, the
next with the second, ...), as a user runs it: ``quant-assets materialize raw_prices,alt_data,price_features,
alt_features,predictions,drift_metrics,live_book SESSION``, with the multiprocess executor's ``start_method``
set in the run config (``spawn``: a fresh interpreter per step, Dagster's default; ``forkserver``: each step
forked from a process that imported the definitions once, this project's multiprocess default; ``in_process``:
every step in the CLI's process), or as ``quant-assets materialize daily_job SESSION`` (``daily_job``: the job's
default run config, in process). The CPU is that of the command and of every process under it, the step
processes and the forkserver included: this script makes itself the child subreaper (Linux ``prctl``), so a
process orphaned by its parent is still reaped here and its CPU counted. Figures: wall seconds, CPU seconds,
and the load average.
"""

from __future__ import annotations

import datetime as dt
import json

from _common import REPO, arguments, count_descendants, git_version, load_text, machine_text, print_table, run_counted

DAILY = "raw_prices,alt_data,price_features,alt_features,predictions,drift_metrics,live_book"
EXECUTION = {
    "spawn": {"multiprocess": {"start_method": {"spawn": {}}}},
    "forkserver": {"multiprocess": {"start_method": {"forkserver": {}}}},
    "in_process": {"in_process": {}},
    "daily_job": None,  # `quant-assets materialize daily_job SESSION`: the job's own default (in process)
}


def one_session(session: str, start: str) -> dict:
    """Materialise the daily chain for ``session`` with ``start``; its wall and CPU seconds, all processes."""
    cmd = [str(REPO / ".venv/bin/quant-assets"), "materialize", "daily_job", session]
    if EXECUTION[start] is not None:
        cmd[2:3] = [DAILY]
        cmd += ["--config-json", json.dumps({"execution": {"config": EXECUTION[start]}})]
    done, wall, cpu = run_counted(cmd)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return {"session": session, "start": start, "wall_s": wall, "cpu_s": cpu, "load": load_text()}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument(
        "--sessions", default="2025-01-02,2025-01-03,2025-01-06,2025-01-07", help="new sessions, comma-separated"
    )
    parser.add_argument(
        "--starts", default="spawn,forkserver,in_process,daily_job", help=f"start methods, from {', '.join(EXECUTION)}"
    )
    args = parser.parse_args()
    count_descendants()
    sessions = [dt.date.fromisoformat(s).isoformat() for s in args.sessions.split(",")]
    starts = args.starts.split(",")
    print(f"bench_daily: {machine_text()}, code {git_version()}")
    print(f"at start: {load_text()}")
    rows = []
    for i, session in enumerate(sessions):
        r = one_session(session, starts[i % len(starts)])
        rows.append([r["session"], r["start"], f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", r["load"]])
        print(f"  {session} {r['start']}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU", flush=True)
    print_table(["session", "start method", "wall s", "CPU s (all processes)", "load"], rows)
    print(f"at end: {load_text()}")


if __name__ == "__main__":
    main()

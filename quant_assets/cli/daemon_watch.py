"""Run the Dagster daemon until the retraining sensor has ticked and the runs it requested have finished.

The main command uses this to show the production path end to end: the daemon evaluates
``retrain_on_drift`` against quant.drift_metrics, the run it requests is queued, launched in its own
process by the run launcher, and the daemon is stopped once that run is done. Each step (daemon up, tick,
run started, run finished) is printed as it happens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg

from quant_assets.cli.stage import UI_URL, elapsed, say, tool

SENSOR = "retrain_on_drift"
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _last_tick(instance: dg.DagsterInstance, sensor: str) -> float:
    for state in instance.all_instigator_state():
        if state.name == sensor and state.instigator_data is not None:
            return state.instigator_data.last_tick_timestamp or 0.0
    return 0.0


def _sensor_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": SENSOR})))


def run_until_ticked(workspace: Path, log: Path, timeout: float, started: float) -> list[dg.DagsterRun]:
    """Start the daemon, wait for one new tick of the sensor and its runs, stop the daemon; returns the runs."""
    with dg.DagsterInstance.get() as instance:
        begun = time.time()
        before = {r.run_id for r in _sensor_runs(instance)}
        with open(log, "ab") as out:
            daemon = subprocess.Popen(
                [tool("dagster-daemon"), "run", "-w", str(workspace)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ,
            )
        say(f"    {elapsed(started)} daemon started (log: {log}); waiting for a tick of {SENSOR}")
        try:
            while _last_tick(instance, SENSOR) < begun:
                _wait(daemon, begun, timeout, f"a tick of {SENSOR}")
            say(f"    {elapsed(started)} {SENSOR} ticked")
            return _watch(instance, before, daemon, begun, timeout, started)
        finally:
            daemon.send_signal(signal.SIGINT)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()


def _watch(instance, before: set[str], daemon, begun: float, timeout: float, started: float) -> list[dg.DagsterRun]:
    """Wait for the runs the tick requested, printing each once when it appears and once when it ends."""
    seen: dict[str, dg.DagsterRunStatus] = {}
    while True:
        runs = [r for r in _sensor_runs(instance) if r.run_id not in before]
        for r in runs:
            if r.run_id not in seen:
                say(f"    {elapsed(started)} {r.job_name} run {r.run_id[:8]} requested: {UI_URL}/runs/{r.run_id}")
            if r.status in TERMINAL and seen.get(r.run_id) not in TERMINAL:
                say(f"    {elapsed(started)} {r.job_name} run {r.run_id[:8]} ended: {r.status.value}")
            seen[r.run_id] = r.status
        if all(r.status in TERMINAL for r in runs):
            return runs
        _wait(daemon, begun, timeout, f"runs {[r.run_id[:8] for r in runs]}")


def _wait(daemon: subprocess.Popen, begun: float, timeout: float, what: str) -> None:
    if daemon.poll() is not None:
        raise RuntimeError(f"the Dagster daemon exited ({daemon.returncode}) while waiting for {what}")
    if time.time() - begun > timeout:
        raise TimeoutError(f"no {what} within {timeout:.0f} s")
    time.sleep(2)

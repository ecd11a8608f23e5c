"""Run the Dagster daemon until the retraining sensor has ticked and the runs it requested have finished.

The main command uses this to show the production path end to end: the daemon evaluates
``retrain_on_drift`` against quant.drift_metrics, the run it requests is queued, launched in its own
process by the run launcher, and the daemon is stopped once that run is done.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg

from quant_assets.defs.automation import retrain_on_drift

TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _last_tick(instance: dg.DagsterInstance, sensor: str) -> float:
    for state in instance.all_instigator_state():
        if state.name == sensor and state.instigator_data is not None:
            return state.instigator_data.last_tick_timestamp or 0.0
    return 0.0


def run(workspace: Path, log: Path, timeout: float = 1200.0) -> list[dg.DagsterRun]:
    """Start the daemon, wait for one new tick of the sensor and its runs, stop the daemon; returns the runs."""
    sensor = retrain_on_drift.name
    with dg.DagsterInstance.get() as instance:
        started = time.time()
        before = {r.run_id for r in instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": sensor}))}
        with open(log, "ab") as out:
            daemon = subprocess.Popen(
                ["dagster-daemon", "run", "-w", str(workspace)], stdout=out, stderr=subprocess.STDOUT, env=os.environ
            )
        try:
            while _last_tick(instance, sensor) < started:
                _wait(daemon, started, timeout, f"a tick of {sensor}")
            while True:
                runs = [
                    r
                    for r in instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": sensor}))
                    if r.run_id not in before
                ]
                if all(r.status in TERMINAL for r in runs):
                    return runs
                _wait(daemon, started, timeout, f"runs {[r.run_id[:8] for r in runs]}")
        finally:
            daemon.send_signal(signal.SIGINT)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()


def _wait(daemon: subprocess.Popen, started: float, timeout: float, what: str) -> None:
    if daemon.poll() is not None:
        raise RuntimeError(f"the Dagster daemon exited ({daemon.returncode}) while waiting for {what}")
    if time.time() - started > timeout:
        raise TimeoutError(f"no {what} within {timeout:.0f} s")
    time.sleep(2)

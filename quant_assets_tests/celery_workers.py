"""Real dagster-celery workers for the tests: started as the README says, each bounded in time, stopped whole.

A worker is ``quant-assets celery -c <run config> worker start -A dagster_celery.app`` on a queue of the test's
own (no other worker on the broker takes its tasks, and nothing an earlier run left in a shared queue reaches
it). The executor waits for steps with no time limit, so everything here is bounded: a worker must report ready
within READY_S, and teardown stops its whole process group (the CLI wrapper, celery's main process, its pool).
Without dagster-celery or a reachable broker the tests that need one skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import yaml

from quant_assets.paths import PROJECT_ROOT
from quant_assets_tests.conftest import require_or_skip

CELERY_YAML = PROJECT_ROOT / "deploy" / "celery.yaml"
BIN = Path(sys.executable).parent
READY_S = 60


def celery_settings() -> dict:
    """deploy/celery.yaml's celery block (broker, backend)."""
    return yaml.safe_load(CELERY_YAML.read_text())["execution"]["config"]["celery"]


def require_broker(url: str) -> None:
    try:
        import dagster_celery  # noqa: F401
    except ImportError:
        require_or_skip("dagster-celery is not installed (pip install -e '.[dev]')")
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 5672
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        require_or_skip(f"no Celery broker reachable at {host}:{port} (deploy/celery.yaml): {exc}")


def run_config(queue: str) -> dict:
    """deploy/celery.yaml's execution block, on the test's own queue."""
    return {"execution": {"config": {"celery": {**celery_settings(), "config_source": {"task_default_queue": queue}}}}}


def start(config_file: Path, queue: str, name: str, cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    """Start one worker as the README says and wait until it reports ready. The venv's bin comes first on its PATH:
    dagster-celery starts ``celery`` by name."""
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [str(BIN / "quant-assets"), "celery", "-c", str(config_file), "worker", "start", "-A",
             "dagster_celery.app", "-q", queue, "-n", name, "--loglevel", "INFO"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + READY_S
    while " ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None:
            pytest.fail(f"the celery worker {name} exited with code {worker.returncode} before it was ready")
        if time.monotonic() > deadline:
            stop(worker)
            pytest.fail(f"the celery worker {name} was not ready after {READY_S} s")
        time.sleep(0.5)
    return worker


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the worker's process group, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group(proc):
            time.sleep(0.2)
        if not group(proc):
            break
    proc.wait(timeout=5)


def group(proc: subprocess.Popen) -> set[int]:
    """Live (not zombie) processes of the worker's process group; reaps the group leader, our child."""
    proc.poll()
    live = set()
    for p in psutil.process_iter(["pid", "status"]):
        if p.info["status"] != psutil.STATUS_ZOMBIE and _pgid(p.pid) == proc.pid:
            live.add(p.pid)
    return live


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def delete_queue(broker: str, queue: str) -> None:
    from kombu import Connection

    try:
        with Connection(broker, connect_timeout=5) as conn:
            conn.default_channel.queue_delete(queue)
    except Exception as exc:  # best effort: a leftover empty queue is harmless
        print(f"could not delete queue {queue}: {exc}")


def tail(path: Path, lines: int = 120) -> str:
    if not path.exists():
        return f"({path.name}: not written)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join([f"===== {path.name} (last {min(lines, len(text))} of {len(text)} lines) ====="] + text[-lines:])


def delegated_steps(events) -> dict[str, str]:
    """Step key -> the Celery worker (``name@host``) the executor handed it to, from a run's engine events."""
    return {
        e.step_key: e.engine_event_data.metadata["Celery worker"].value
        for e in events
        if e.event_type_value == "ENGINE_EVENT" and "Celery worker" in (e.engine_event_data.metadata or {})
    }

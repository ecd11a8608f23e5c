"""What a run of the CLI is made of, and how it talks to the terminal; no Dagster import, so --help stays fast."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UI_URL = "http://127.0.0.1:3000"
_terminal = None  # the terminal's stderr while stderr_to() sends file descriptor 2 to a log


@dataclass(frozen=True)
class Stage:
    """One run: which assets, which sessions (None: unpartitioned), and the run config; or, with ``job``, that
    job of the definitions, whole, with the run config over its default (``assets``: the ones it selects)."""

    title: str
    assets: list[str]
    partitions: tuple[dt.date, dt.date] | None = None
    run_config: Mapping[str, Any] = field(default_factory=dict)
    job: str | None = None


def say(line: str) -> None:
    """Progress goes to stderr, so stdout stays the command's result (the summary, a lineage tree)."""
    print(line, file=_terminal or sys.stderr, flush=True)


def tool(name: str) -> str:
    """A console script of this interpreter's environment (dagster, dagster-daemon), found without PATH."""
    return str(Path(sys.executable).with_name(name))


def log_path(command: str) -> Path:
    """A new log file under .state/logs for one command's Dagster output."""
    from quant_assets.paths import state_dir

    return state_dir() / "logs" / f"{command}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.log"


@contextmanager
def stderr_to(log: Path) -> Iterator[None]:
    """Send file descriptor 2 (Dagster's log lines, inherited by every step process) to ``log``; ``say`` still
    reaches the terminal, so it shows one line per step instead of Dagster's dozens."""
    global _terminal
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 2)
    _terminal = os.fdopen(os.dup(saved), "w")
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        _terminal.close()
        _terminal = None


def elapsed(started: float) -> str:
    """Time since the command started, as [mmm:ss]."""
    seconds = int(time.time() - started)
    return f"[{seconds // 60:3d}:{seconds % 60:02d}]"

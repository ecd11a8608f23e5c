"""A project-local Postgres for when no ``DAGSTER_PG_URL`` is given.

Uses the ``pgserver`` wheel (Postgres binaries inside a Python package), keeps
its data under ``.state/pg`` and leaves it running between commands so the
CLI, the daemon and the web UI share one instance and one history.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from quant_assets.paths import state_dir


def psycopg2_url(url: str) -> str:
    """Force the psycopg2 driver: SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3,
    which breaks dagster-postgres' LISTEN/NOTIFY."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        parts = parts._replace(scheme="postgresql+psycopg2")
    return urlunsplit(parts)


def ensure_local_postgres(pgdata: Path | None = None) -> str:
    """Start (or reuse) the local server and return its psycopg2 SQLAlchemy URL."""
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    import pgserver

    pgdata = (pgdata or state_dir() / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return psycopg2_url(server.get_uri())


def stop_local_postgres(pgdata: Path | None = None) -> bool:
    """Stop the local server if it runs; True when one was stopped."""
    from pgserver._commands import POSTGRES_BIN_PATH

    pgdata = (pgdata or state_dir() / "pg").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "stop"]
    if os.geteuid() == 0:
        cmd = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(cmd)]
    return subprocess.run(cmd, capture_output=True).returncode == 0

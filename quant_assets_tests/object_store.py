"""A real S3-compatible server for the tests: moto's standalone server on 127.0.0.1, one per test session.

Each test gets its own bucket. Without moto's server installed (pip install -e '.[dev]') the tests that need
it skip, except under CI=true, where they fail (``conftest.require_or_skip``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "quant-test",
    "AWS_SECRET_ACCESS_KEY": "quant-test-secret",
    "AWS_REGION": "us-east-1",
}
READY_S = 30


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """The standard variables any S3 client reads, pointing at this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    @property
    def options(self) -> dict:
        from quant_assets.core.storage import fs

        env = self.env
        return fs.s3_options(
            env["AWS_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"]
        )

    def new_bucket(self) -> str:
        """A new, empty bucket; its name."""
        import boto3

        name = f"quant-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_REGION"],
        )
        client.create_bucket(Bucket=name)
        return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(log: Path) -> S3Server:
    """Start moto's server on a free port of 127.0.0.1 and wait until it answers; raises RuntimeError if it
    cannot (its log named)."""
    port = _free_port()
    server = Path(sys.executable).with_name("moto_server")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, **CREDENTIALS},
        )  # fmt: skip
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode} (log: {log})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return S3Server(f"http://127.0.0.1:{port}", proc)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"moto_server did not answer on port {port} within {READY_S} s (log: {log})")

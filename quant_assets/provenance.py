"""The code version stamped on everything the pipeline produces.

It asks git about the checkout, so it sits beside ``paths.py``, outside the pure core; a deployment without
a checkout names its version through ``QUANT_CODE_VERSION``, which the resources read at launch and pass in.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

from quant_assets.paths import PROJECT_ROOT


def code_version(given: str = "") -> str:
    """``given`` (a deployment without a git checkout names its version: QUANT_CODE_VERSION, read by the
    resources at launch), else the git SHA of the checkout (``-dirty`` if it has changes)."""
    return given or _git_version()


@lru_cache(maxsize=1)
def _git_version() -> str:
    """Asked of git once per process: every stamp of a run names the same checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha

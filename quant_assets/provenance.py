"""The code version stamped on everything the pipeline produces.

It reads the launch environment (``QUANT_CODE_VERSION``) and the checkout, so it sits beside ``paths.py``,
outside the pure core; the shell passes the version into core calls.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache

from quant_assets.paths import PROJECT_ROOT


@lru_cache(maxsize=1)
def code_version() -> str:
    """``QUANT_CODE_VERSION``, else the git SHA of the checkout (``-dirty`` if it has changes)."""
    if os.environ.get("QUANT_CODE_VERSION"):
        return os.environ["QUANT_CODE_VERSION"]
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

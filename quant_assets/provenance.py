"""The code version stamped on everything the pipeline produces.

It asks git about the checkout, so it sits beside ``paths.py``, outside the pure core; a deployment names its
version through ``QUANT_CODE_VERSION``, which the resources read at launch and pass in. Without either (the package
installed from a wheel, no checkout), the installed distribution's version names the code: ``quant-assets==0.1.0``.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
from functools import lru_cache
from pathlib import Path

from quant_assets.paths import PROJECT_ROOT

DISTRIBUTION = "quant-assets"


def code_version(given: str = "") -> str:
    """``given`` (a deployment names its version: QUANT_CODE_VERSION, read by the resources at launch), else the
    git SHA of the checkout (``-dirty`` if it has changes), else the installed package's ``quant-assets==<version>``."""
    return given or checkout_version(PROJECT_ROOT)


@lru_cache(maxsize=4)
def checkout_version(root: Path) -> str:
    """The git SHA of the checkout whose top level is ``root`` (``-dirty`` if a tracked file has changes), asked
    of git once per process, so every stamp of a run names the same code; ``installed_version`` when ``root`` is
    no checkout's top level (a directory inside another repository is not this project's checkout) or git is
    missing."""
    try:
        top, sha = _git(root, "rev-parse", "--show-toplevel", "HEAD").splitlines()
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError, ValueError):
        return installed_version()
    if Path(top).resolve() != Path(root).resolve():
        return installed_version()
    return f"{sha}-dirty" if dirty else sha


def installed_version() -> str:
    """``quant-assets==<version>`` of the installed distribution, or ``unknown`` when it is not installed."""
    try:
        return f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

"""The environment a result was computed in: the Python and library versions that can change its bytes.

LightGBM's output is known to differ across versions (and NumPy's, pandas' and Arrow's can change a float's last
bit or a file's bytes), so a model reproduced "with the same code" is only the same model in the same
environment: what a training run records, and what deciding that one need not run again compares.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform

LIBRARIES = ("lightgbm", "numpy", "pandas", "pyarrow", "duckdb", "scikit-learn", "scipy", "dagster")


@functools.cache
def versions() -> dict[str, str]:
    """Python, the machine's architecture and each of LIBRARIES' installed version ("absent" when not installed)."""
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out

"""The environment a result was computed in: the Python and library versions that can change its bytes.

LightGBM's output is known to differ across versions (and NumPy's, pandas' and Arrow's can change a float's last
bit or a file's bytes), so a model reproduced "with the same code" is only the same model in the same
environment: what a training run records, and what deciding that one need not run again compares (``versions``).
A snapshot records ``recorded`` too, with a hash of every installed distribution: what a replay compares to say
which environment differed, never part of a key (a test runner's own packages would then decide a fingerprint).
"""

from __future__ import annotations

import functools
import hashlib
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


@functools.cache
def package_set() -> str:
    """SHA-256 of every installed distribution's ``name==version``, sorted: two environments with equal hashes
    hold the same packages."""
    names = sorted({f"{d.metadata['Name'].lower()}=={d.version}" for d in importlib.metadata.distributions()})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def recorded() -> dict[str, str]:
    """What a stored result records of its environment: ``versions`` and the hash of the whole package set."""
    return {**versions(), "packages": package_set()}

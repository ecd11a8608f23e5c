"""The code version: a given one, else the checkout's git SHA (``-dirty`` with changes), else the installed package.

On real git repositories made in ``tmp_path`` and the installed ``quant-assets`` distribution.
"""

from __future__ import annotations

import importlib.metadata
import subprocess

from quant_assets import provenance


def _git(root, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def _checkout(root):
    root.mkdir()
    _git(root, "init", "-q")
    (root / "a.py").write_text("x = 1\n")
    _git(root, "add", "a.py")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return _git(root, "rev-parse", "HEAD")


def test_without_a_checkout_the_installed_package_version_names_the_code(tmp_path):
    installed = importlib.metadata.version("quant-assets")
    assert provenance.checkout_version(tmp_path) == f"quant-assets=={installed}"
    assert provenance.installed_version() == f"quant-assets=={installed}"
    assert provenance.code_version("abc123") == "abc123"  # a deployment's QUANT_CODE_VERSION wins


def test_a_checkout_is_its_sha_and_dirty_with_changes_a_directory_inside_it_is_not_a_checkout(tmp_path):
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    sha = _checkout(clean)
    dirty_sha = _checkout(dirty)
    (dirty / "a.py").write_text("x = 2\n")
    (clean / "new.py").write_text("untracked\n")  # an untracked file is no change of the code that ran
    (clean / "sub").mkdir()

    assert provenance.checkout_version(clean) == sha and len(sha) == 40
    assert provenance.checkout_version(dirty) == f"{dirty_sha}-dirty"
    assert provenance.checkout_version(clean / "sub") == f"quant-assets=={importlib.metadata.version('quant-assets')}"

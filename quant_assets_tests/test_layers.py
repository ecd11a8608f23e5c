"""The core's layering, read from the source: imports point only to the same or an earlier pipeline stage,
and the core never touches Dagster or the process environment.

Stage order (data flows this way): sessions -> storage -> ingest -> features -> research -> registry -> trading ->
monitoring -> the top (summary, audit, schema: modules that read every stage). A module may import its own
stage and earlier ones; an arrow the other way would make a lower stage depend on a later one and, sooner
or later, an import cycle. Read with ``ast`` (nothing is imported), so imports inside functions and under
``TYPE_CHECKING`` count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import quant_assets

PACKAGE = Path(quant_assets.__file__).parent
CORE = PACKAGE / "core"
STAGES = {
    "sessions": 0,
    "environment": 0,  # the library versions a result was computed with: a leaf, like the calendar
    "storage": 1,
    "ingest": 2,
    "features": 3,
    "research": 4,
    "registry": 5,
    "trading": 6,
    "monitoring": 7,
    "summary": 8,
    "audit": 8,
    "schema": 8,
}
# Outside the core, only these leaves may be imported from it (no environment read at import, no Dagster).
OUTSIDE = {"quant_assets.paths"}


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module: str) -> int | None:
    """The stage of a ``quant_assets.core...`` module (None: the ``quant_assets.core`` package itself)."""
    parts = module.split(".")
    if len(parts) < 3:
        return None
    if parts[2] not in STAGES:
        raise AssertionError(f"{module}: not in a known stage; add it to STAGES in order of data flow")
    return STAGES[parts[2]]


def _imports(tree: ast.AST, module: str, is_package: bool, package: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import; ``from a import b`` yields ``a.b`` when b is a module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                path = package.parent / Path(*candidate.split("."))
                out.append((node.lineno, candidate if path.with_suffix(".py").exists() or path.is_dir() else base))
    return out


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines reading the process environment: ``os.environ``, ``os.getenv``, ``from os import environ``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in ("environ", "getenv") for a in node.names):
                lines.append(node.lineno)
    return lines


def violations(package: Path = PACKAGE) -> list[str]:
    """Every layering violation in ``package``'s core as a readable line."""
    found = []
    for path in sorted((package / "core").rglob("*.py")):
        module = _module_name(path, package)
        own = _stage(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(package.parent)
        for line, target in _imports(tree, module, path.name == "__init__.py", package):
            top = target.split(".")[0]
            if top == "dagster" or top.startswith("dagster_"):
                found.append(f"{where}:{line}: imports {target} (the core never imports Dagster)")
            elif target.startswith("quant_assets.core"):
                theirs = _stage(target)
                if own is not None and theirs is not None and theirs > own:
                    found.append(f"{where}:{line}: {module} (stage {own}) imports later stage {target} ({theirs})")
            elif top == "quant_assets" and target not in OUTSIDE:
                found.append(f"{where}:{line}: imports {target}, outside the core (the core does not know the shell)")
        found += [f"{where}:{line}: reads the process environment" for line in _environment_reads(tree)]
    return found


def test_core_imports_point_only_to_the_same_or_an_earlier_stage():
    found = violations()
    assert not found, "layering violations:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "where, line, complaint",
    [
        ("storage/lake.py", "from quant_assets.core.research import snapshots", "imports later stage"),
        ("features/files.py", "from quant_assets.core.registry.models import ModelRef", "imports later stage"),
        ("ingest/validate.py", "    from quant_assets.core.monitoring import alerts", "imports later stage"),
        ("research/metrics.py", "import dagster as dg", "never imports Dagster"),
        ("sessions.py", "from quant_assets.defs import resources", "outside the core"),
        ("registry/models.py", "URL = os.environ.get('X')", "reads the process environment"),
        ("monitoring/drift.py", "from os import getenv", "reads the process environment"),
    ],
)
def test_an_added_violation_is_caught(tmp_path, where, line, complaint):
    """The check itself: a copy of the core with one bad line added fails, naming the file."""
    package = tmp_path / "quant_assets"
    (package / "core").mkdir(parents=True)
    for path in CORE.rglob("*.py"):
        copy = package / "core" / path.relative_to(CORE)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    for name in ("__init__.py", "paths.py"):
        (package / name).write_text((PACKAGE / name).read_text(encoding="utf-8"), encoding="utf-8")
    (package / "defs").mkdir()
    (package / "defs" / "resources.py").write_text("", encoding="utf-8")
    target = package / "core" / where
    target.write_text(target.read_text(encoding="utf-8") + f"\n\ndef _added():\n    {line.strip()}\n")
    found = violations(package)
    assert any(where in f and complaint in f for f in found), found


TESTS = Path(__file__).parent


def imports_of_test_files(tests: Path = TESTS) -> list[str]:
    """Every import of a test module (``test_*``) by another test file: shared helpers and run configs live in
    helper modules (``run_configs.py``, ``<stage>/helpers.py``) or conftest fixtures, never in a test file."""
    found = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("quant_assets_tests")
            ):
                names = [*(node.module or "").split("."), *(a.name for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [p for a in node.names if a.name.startswith("quant_assets_tests") for p in a.name.split(".")]
            else:
                continue
            if any(n.startswith("test_") for n in names):
                found.append(f"{path.relative_to(tests.parent)}:{node.lineno}: imports from a test module")
    return found


def test_no_test_file_imports_another_test_file():
    found = imports_of_test_files()
    assert not found, "test files importing test files:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        "from quant_assets_tests.defs.test_model_assets import RUN_CONFIG",
        "from quant_assets_tests.core import test_sessions",
        "import quant_assets_tests.core.monitoring.test_drift",
        "from .test_drift import psi_independent",
    ],
)
def test_an_import_of_a_test_file_is_caught(tmp_path, line):
    (tmp_path / "quant_assets_tests" / "core").mkdir(parents=True)
    (tmp_path / "quant_assets_tests" / "core" / "test_x.py").write_text(f"{line}\n", encoding="utf-8")
    (tmp_path / "quant_assets_tests" / "core" / "helpers.py").write_text(
        "from quant_assets_tests.run_configs import TRAINING_RUN_CONFIG\n", encoding="utf-8"
    )
    found = imports_of_test_files(tmp_path / "quant_assets_tests")
    assert found == ["quant_assets_tests/core/test_x.py:1: imports from a test module"]

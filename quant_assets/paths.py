"""Where the project keeps its state: one place, next to the code."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_data_root() -> Path:
    return PROJECT_ROOT / "data" / "lake"


def state_dir() -> Path:
    return PROJECT_ROOT / ".state"

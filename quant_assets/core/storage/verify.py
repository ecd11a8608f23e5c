"""Check stored files against what they claim to be, and name every one that is not.

A query cannot afford to hash every file it reads (the point-in-time kernel reads thousands through
DuckDB), so reads verify what is cheap (Parquet page checksums and part names on every pyarrow read,
manifests and compaction records on every query) and the rest is checked on demand (the ``verify``
command, ``core/audit.py``) or on a sample (the feature assets' ``files_intact`` check,
``features/integrity.py``). This module is what both share: the report, and running a check over many
files so that every failure is named and none stops the rest. Each stage knows its own kinds of file;
the one kind every stage writes, a content-addressed part, is checked here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location

CHECKED = (lake.CorruptFile, OSError, ValueError)  # what any check may raise about a bad file


@dataclass(frozen=True)
class Problem:
    kind: str
    path: Location
    error: str


@dataclass
class Report:
    checked: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    leftovers: list[Location] = field(default_factory=list)
    incomplete: list[Location] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def merge(self, other: Report) -> None:
        """Add ``other``'s findings to this report (the reports of several directories, as one)."""
        self.checked.update(other.checked)
        self.problems += other.problems
        self.leftovers += other.leftovers
        self.incomplete += other.incomplete


def stored_files(root: Location, kind_of: Callable[[tuple[str, ...]], str | None]) -> Iterator[tuple[str, Location]]:
    """(kind, path) of every file under ``root`` that ``kind_of`` (given its path's parts) names, in a stable order."""
    for path in fs.all_files(root):
        kind = kind_of(tuple(fs.relative(path, root).split("/")))
        if kind is not None:
            yield kind, path


def is_part(name: str) -> bool:
    """A content-addressed part (raw data, quarantine, feature files, predictions, out-of-sample predictions)."""
    return name.startswith(lake.PART_PREFIX) and name.endswith(".parquet")


def is_leftover(name: str) -> bool:
    """The temporary file of a killed writer: never read, safe to delete."""
    return name.startswith(".tmp-")


def check_part(path: Location) -> None:
    """Raise (naming ``path``) unless the part reads back as the content its name hashes."""
    lake.read_part(path)


def verify(
    files: Iterable[tuple[str, Location]],
    check: Callable[[str, Location], None],
    errors: tuple[type[Exception], ...] = (),
) -> Report:
    """``check`` each (kind, path); every failure (CHECKED or ``errors``) becomes a Problem naming the file."""
    report = Report()
    for kind, path in files:
        report.checked[kind] += 1
        try:
            check(kind, path)
        except CHECKED + errors as exc:
            report.problems.append(Problem(kind, path, str(exc)))
    return report


def leftovers(root: Location) -> list[Location]:
    """The temporary files killed writers left under ``root``."""
    return [p for p in fs.all_files(root) if is_leftover(p.name)]

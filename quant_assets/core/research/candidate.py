"""A candidate feature, computed point in time from the raw lake by the path stored features take, without storing it.

A candidate is a ``FeatureDef`` written exactly as the library writes its features (core/features/library.py),
in a file or module of its own, named ``path/to/file.py:NAME`` or ``package.module:NAME`` (NAME a module-level
``FeatureDef``). Its ``family`` (``price`` or ``alt``) says which raw dataset it reads and which staleness rule
its values follow; its ``inputs`` name that dataset (every field of it, as the library does) or some of its
fields, and only those reach its panel, so a function reading a field it does not declare fails here rather
than in a backfill.

It is computed as a family of its own (``research_family``) through ``compute.load_inputs`` and
``compute_days`` (a backfill's range; ``compute_day`` is its one-day case): bitemporal rows, each from the
input versions known at its ingest time, and guarded by the checks a stored family runs
(``checks.recompute_truncated``, ``checks.ingest_not_before_inputs``), plus the same recompute with the panel's
dates hidden (``_date_blind``): a feature is a function of its panel's values, and one that looks its dates up
elsewhere (a table of later returns, the lake itself) reads what its panel does not hold, which recomputing
from cut inputs alone cannot see. Its value usable at a session's decision time is
the point-in-time kernel's answer under the one staleness rule (``decision_values``), as snapshots and scoring
read stored features.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib
import importlib.util
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from quant_assets.core import sessions
from quant_assets.core.features import checks, compute, staleness
from quant_assets.core.features.definitions import FeatureDef, FeatureFamily
from quant_assets.core.features.files import event_column
from quant_assets.core.features.library import FAMILIES
from quant_assets.core.features.pit import point_in_time_rows
from quant_assets.core.storage import fs, lake
from quant_assets.core.storage.fs import Location


class CandidateError(ValueError):
    """A candidate that cannot be evaluated, with what to do about it."""


def load(spec: str) -> FeatureDef:
    """The ``FeatureDef`` named by ``spec``: ``path/to/file.py:NAME`` (a file, imported on its own) or
    ``package.module:NAME`` (a module importable from the current ``sys.path``)."""
    target, sep, name = str(spec).rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise CandidateError(f"candidate {spec!r}: write it as path/to/file.py:NAME or package.module:NAME")
    module = _from_file(Path(target)) if target.endswith(".py") or "/" in target else _from_module(target)
    if not hasattr(module, name):
        defined = sorted(k for k, v in vars(module).items() if isinstance(v, FeatureDef))
        hint = f"; it defines the FeatureDef(s) {', '.join(defined)}" if defined else "; it defines no FeatureDef"
        raise CandidateError(f"{target} has no {name}{hint}")
    feature = getattr(module, name)
    if not isinstance(feature, FeatureDef):
        raise CandidateError(
            f"{target}:{name} is a {type(feature).__name__}, not a FeatureDef (quant_assets.core.features.definitions)"
        )
    return feature


def _from_file(path: Path):
    """Import a candidate file as a module of its own (named after its path, so two files never collide)."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise CandidateError(f"candidate file {path} does not exist")
    name = "quant_candidate_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # inspect.getsource (a feature's version) and pickling find it there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise CandidateError(f"candidate file {path} failed to import: {exc!r}") from exc
    return module


def _from_module(dotted: str):
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        raise CandidateError(f"candidate module {dotted} cannot be imported ({exc}); is it on sys.path?") from exc
    except Exception as exc:
        raise CandidateError(f"candidate module {dotted} failed to import: {exc!r}") from exc


def research_family(feature: FeatureDef) -> FeatureFamily:
    """The candidate as a family of its own: its library family's source, staleness rule and requiredness,
    the fields its inputs (and its dependencies') declare, and its own lookback and lag."""
    if feature.family not in FAMILIES:
        raise CandidateError(f"{feature.name}: family {feature.family!r} is not one of {', '.join(FAMILIES)}")
    base = FAMILIES[feature.family]
    if not isinstance(feature.lookback, int) or feature.lookback < 1:
        raise CandidateError(f"{feature.name}: lookback must be a whole number of rows >= 1, not {feature.lookback!r}")
    for dep in _dependencies(feature):
        if dep.family != feature.family or dep.lookback > feature.lookback:
            raise CandidateError(
                f"{feature.name} depends on {dep.name} (family {dep.family}, lookback {dep.lookback}): a dependency "
                f"must be of the same family with a lookback <= {feature.lookback}"
            )
    fields = [f for part in (feature, *_dependencies(feature)) for f in _fields(part, base)]
    return FeatureFamily(
        base.name,
        base.source,
        tuple(f for f in base.fields if f in fields),
        (feature,),
        f"research candidate {feature.name}",
        max_stale_sessions=base.max_stale_sessions,
        required=base.required,
    )


def _dependencies(feature: FeatureDef) -> Iterator[FeatureDef]:
    for dep in feature.depends_on:
        yield dep
        yield from _dependencies(dep)


def _fields(feature: FeatureDef, base: FeatureFamily) -> list[str]:
    """The source fields ``feature`` declares: the source's name stands for all of them (the library's way)."""
    inputs = (feature.inputs,) if isinstance(feature.inputs, str) else tuple(feature.inputs)
    unknown = [i for i in inputs if i != base.source and i not in base.fields]
    if unknown or not inputs:
        raise CandidateError(
            f"{feature.name}: inputs {list(inputs)} are not fields of its family {base.name}'s source {base.source}: "
            f"use {base.source!r} (every field) or some of {', '.join(base.fields)}"
        )
    return list(base.fields) if base.source in inputs else list(inputs)


def check_history(root: Location, family: FeatureFamily, days: list[dt.date]) -> None:
    """Refuse a range the lake cannot compute in full: no source data at all, or less history before the first
    day than its lookback needs (its first values would come from a truncated window, which stored features
    never do silently)."""
    root = fs.location(root)
    stored = sorted({p.parent.name.removeprefix("date=") for p in lake.dataset_files(root, family.source)})
    inside = [d for d in stored if days[0].isoformat() <= d <= days[-1].isoformat()]
    if not inside:
        raise CandidateError(f"no {family.source} data under {root} for the sessions {days[0]}..{days[-1]}")
    needed = compute.window_partitions(family, days[0])[0]
    if stored[0] > needed.isoformat():
        first = sessions.as_date(stored[0])
        earliest = _earliest_computable(family, first)
        raise CandidateError(
            f"the window is shorter than the lookback: {days[0]} needs {family.source} from {needed} "
            f"(lookback {family.lookback}), and the lake starts on {first}; start the evaluation on {earliest} or later"
        )


def _earliest_computable(family: FeatureFamily, first: dt.date) -> dt.date:
    """The first decision session whose whole window starts on or after the lake's ``first`` partition."""
    day = first
    while compute.window_partitions(family, day)[0] < first:
        day = sessions.next_session(day)
    return sessions.session_offset(day, 1 + family.max_stale_sessions)


@dataclass
class Computed:
    """The candidate's bitemporal rows (entity_key, event_time, ingest_time, value) and what the guards found;
    ``seconds`` holds (wall, CPU) per stage: load, compute, checks."""

    family: FeatureFamily
    rows: pd.DataFrame
    guards: dict[str, checks.GuardResult]
    seconds: dict[str, tuple[float, float]] = field(default_factory=dict)


@contextmanager
def timed(seconds: dict[str, tuple[float, float]], stage: str):
    """Add the block's wall and CPU seconds to ``seconds[stage]``."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        before = seconds.get(stage, (0.0, 0.0))
        seconds[stage] = (before[0] + time.perf_counter() - wall, before[1] + time.process_time() - cpu)


GUARD_DAYS = 30  # days the recompute guards check by default, spread over the range


def compute_rows(
    root: Location, family: FeatureFamily, days: list[dt.date], sample: int = 25, guard_days: int = GUARD_DAYS
) -> Computed:
    """The candidate's rows for ``days`` (``compute_days``: each day from its window of the inputs, read once),
    and the guards (``guards``)."""
    seconds: dict[str, tuple[float, float]] = {}
    with timed(seconds, "load"):
        inputs = compute.load_inputs(fs.location(root), family, days)
    with timed(seconds, "compute"):
        computed = compute.compute_days(family, inputs, days)
        frames = [_next_day(family, computed, day) for day in days]
    with timed(seconds, "checks"):
        found = guards(family, inputs, days, frames, sample, guard_days)
    name = family.features[0].name
    rows = pd.concat(frames, ignore_index=True).rename(columns={name: "value"})
    return Computed(family, rows[[*compute.META, "value"]], found, seconds)


def guards(
    family: FeatureFamily,
    inputs: pd.DataFrame,
    days: list[dt.date],
    frames: list[pd.DataFrame],
    sample: int,
    guard_days: int,
) -> dict[str, checks.GuardResult]:
    """The stored families' guards on the candidate's rows (``frames``, one per day of ``days``).

    ``no_lookahead_recompute`` and ``date_blind_recompute`` recompute ``sample`` rows of each of ``guard_days``
    days spread evenly over the range, first and last included (0: every day; a backfill's blocking check does
    every day, at the cost of a second computation of each); ``ingest_not_before_inputs`` checks every row.
    """
    picked = range(len(days)) if guard_days <= 0 else np.unique(np.linspace(0, len(days) - 1, guard_days).round())
    blind = dataclasses.replace(family, features=(_date_blind(family.features[0]),))
    found = {name: checks.GuardResult(True, 0) for name in ("no_lookahead_recompute", "date_blind_recompute")}
    for i in (int(i) for i in picked):
        rows = compute.window_rows(family, inputs, days[i])
        _merge(found["no_lookahead_recompute"], _recompute(family, rows, days[i], frames[i], sample))
        _merge(found["date_blind_recompute"], _recompute(blind, rows, days[i], frames[i], sample))
    found["ingest_not_before_inputs"] = checks.ingest_not_before_inputs(family, inputs, pd.concat(frames))
    return found


def _next_day(family: FeatureFamily, computed: Iterator[pd.DataFrame], day: dt.date) -> pd.DataFrame:
    """The rows of ``day``, the next of ``compute.compute_days``; a candidate's own error named with its feature and
    day (and the likeliest cause of an IndexError)."""
    try:
        return next(computed)
    except Exception as exc:
        feature = family.features[0]
        hint = (
            f" (does it read more rows than its lookback, {feature.lookback}?)" if isinstance(exc, IndexError) else ""
        )
        raise CandidateError(f"{feature.name} failed on {day}: {exc!r}{hint}") from exc


def _recompute(family: FeatureFamily, rows: pd.DataFrame, day: dt.date, out: pd.DataFrame, sample: int):
    """``checks.recompute_truncated`` on a sample of the day's rows; a candidate that raises there fails it."""
    if sample <= 0:
        return checks.GuardResult(True, 0)
    try:
        return checks.recompute_truncated(family, rows, day, out, sample, seed=day.toordinal())
    except Exception as exc:
        return checks.GuardResult(False, min(sample, len(out)), [f"{day}: recomputing raised {exc!r}"])


def _merge(total: checks.GuardResult, one: checks.GuardResult) -> None:
    total.passed &= one.passed
    total.checked += one.checked
    total.failures += one.failures[: max(0, 20 - len(total.failures))]


def _date_blind(feature: FeatureDef) -> FeatureDef:
    """``feature`` handed its panel with each frame's dates replaced by row positions (..., -1, 0): a function of
    the panel's values gives the same values; one keyed on the dates (a lookup elsewhere) does not."""

    def blind(panel, **params):
        hidden = {
            k: v.set_axis(pd.RangeIndex(1 - len(v), 1)) if isinstance(v, pd.DataFrame) else v for k, v in panel.items()
        }
        return feature.fn(hidden, **params)

    return dataclasses.replace(feature, fn=blind)


def decision_values(computed: Computed, queries: pd.DataFrame) -> np.ndarray:
    """The candidate's value usable at each query's decision time (``queries``: date, entity_key), NaN where none.

    The point-in-time kernel answers from the rows in memory, then the one staleness rule decides what a
    consumer may use, as a training snapshot of stored features reads them (``snapshots._training_rows``).
    """
    family, rows = computed.family, computed.rows
    table = pa.Table.from_pandas(rows.assign(entity_key=rows["entity_key"].astype(str)), preserve_index=False).cast(
        pa.schema(
            [
                ("entity_key", pa.string()),
                *[(c, pa.timestamp("us", tz="UTC")) for c in compute.META[1:]],
                ("value", pa.float64()),
            ]
        )
    )
    when = sessions.decision_times(queries["date"])
    q_time = when.tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy().view("int64")
    values, event, _ = point_in_time_rows(table, ["value"], pa.array(queries["entity_key"].astype(str)), q_time)
    column = event_column(family.name)
    pit = pd.DataFrame({"value": values[:, 0], column: pd.Series(event).dt.tz_localize("UTC")})
    pit, usable = staleness.apply(pit, list(queries["date"]), {"value": family.name}, {family.name: family})
    return np.where(usable, pit["value"].to_numpy(), np.nan)

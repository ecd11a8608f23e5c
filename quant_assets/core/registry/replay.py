"""Replay a registered model, or one of its backtests, in a scratch data root: does today's code, in today's
environment, give the bytes that were recorded?

A replay copies the raw rows the model's snapshot could have known (ingest time by its as-of: a restatement
delivered later is never copied) from the source lake into the scratch root, computes the feature families there
with the code's definitions of today (``features.materialize``, the path the feature assets take), builds the
snapshot (``snapshots.build``/``write``) and compares its fingerprint with the recorded one, naming what differs
(feature versions, manifest fields, rows). It retrains with the configuration the registry recorded
(``training.recover_config``, checked against the model's training key) and compares the artifact's and the
out-of-sample predictions' SHA-256. It then grows the scratch root to what was known at the model's last stored
prediction day (+ the label horizon), rescores each stored prediction day from features known at its decision time
and compares the predictions bit for bit, and reruns the model's backtests on the replayed track record
(``champion.record_of``), comparing the recorded metrics. Last, the environment each result recorded
(``recorded_environment``, the one place it is read) against ``environment.recorded()`` now.

Nothing is written to the source lake or the registry. DESIGN.md: "Replay".
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from quant_assets.core import environment, sessions
from quant_assets.core.features import compute, staleness
from quant_assets.core.features.definitions import FeatureFamily
from quant_assets.core.features.library import FAMILIES
from quant_assets.core.features.materialize import materialize
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.sources.base import known_by_close
from quant_assets.core.registry import artifacts, champion, models, trainings
from quant_assets.core.research import backtest, scoring, snapshots, training
from quant_assets.core.storage import lake
from quant_assets.core.storage.equality import nan_equal
from quant_assets.core.storage.fs import Location

PROVENANCE = {"producer": "replay", "producer_version": "replay", "run_id": "replay"}


class ReplayError(LookupError):
    """A target that is not in the registry or cannot be replayed, saying what to give instead."""


@dataclass(frozen=True)
class Artifact:
    """One recorded result against its replay: ``identical`` or not, both values, and why they differ."""

    name: str
    identical: bool
    recorded: str
    replayed: str
    why: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvironmentDifference:
    """One recorded version (of Python, a library, the machine, the package set) that is not today's."""

    source: str  # where it is recorded: "snapshot manifest", "training key"
    name: str
    recorded: str
    now: str


@dataclass
class Report:
    """What a replay found: each artifact, the environment's differences, and notes (configuration, code)."""

    target: str
    model: str
    scratch: str
    artifacts: list[Artifact] = field(default_factory=list)
    environment: list[EnvironmentDifference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(a.identical for a in self.artifacts) and not self.environment

    def table(self) -> pd.DataFrame:
        rows = [(a.name, _verdict(a.identical), a.recorded, a.replayed, "; ".join(a.why)) for a in self.artifacts]
        return pd.DataFrame(rows, columns=["artifact", "result", "recorded", "replayed", "why"])

    def environment_table(self) -> pd.DataFrame:
        rows = [(d.source, d.name, d.recorded, d.now) for d in self.environment]
        return pd.DataFrame(rows, columns=["recorded in", "name", "recorded", "now"])

    def text(self) -> str:
        """The report as the CLI prints it."""
        named = self.target if self.target == self.model else f"{self.target} ({self.model})"
        lines = [f"Replay of {named} in {self.scratch}", ""]
        width = max(len(a.name) for a in self.artifacts)
        for a in self.artifacts:
            lines.append(f"  {a.name:<{width}}  {_verdict(a.identical):<9}  recorded {a.recorded}")
            lines.append(f"  {'':<{width}}  {'':<9}  replayed {a.replayed}")
            lines += [f"  {'':<{width}}  {'':<9}  - {why}" for why in a.why]
        lines += ["", "Environment: " + ("as recorded" if not self.environment else "differs")]
        lines += [f"  {d.source}: {d.name} recorded {d.recorded}, now {d.now}" for d in self.environment]
        lines += [f"Note: {n}" for n in self.notes]
        lines += ["", f"Result: {'IDENTICAL' if self.identical else 'DIFFERS'}"]
        return "\n".join(lines)


def _verdict(identical: bool) -> str:
    return "identical" if identical else "differs"


@dataclass(frozen=True)
class RecordedBacktest:
    """A row of quant.backtests: its id, the configuration it ran with, the metrics it recorded, its model."""

    backtest_id: str
    config: dict
    metrics: dict
    environment: dict | None  # what computed it last (None: recorded before backtests recorded theirs)
    model: models.ModelRef | None  # None: a sweep's, over a snapshot

    @property
    def node(self) -> str:
        return f"backtest:{self.backtest_id}"


def resolve(conn, target: str) -> tuple[models.ModelRef, list[RecordedBacktest]]:
    """The model a target names and the backtests to replay: ``model:<name>:vN`` (every backtest of the model) or
    ``backtest:<id>`` (its model, and that backtest); ReplayError for anything else or an unknown one."""
    kind, _, rest = target.partition(":")
    if kind == "model" and rest:
        try:
            ref = models.model(conn, rest)
        except (LookupError, ValueError) as exc:
            raise ReplayError(f"{exc}: name a registered model as model:<name>:vN (`quant-assets models`)") from None
        return ref, _backtests(conn, "b.model_id = %s", ref.model_id)
    if kind == "backtest" and rest:
        found = _backtests(conn, "b.backtest_id = %s", rest)
        if not found:
            raise ReplayError(f"no backtest {rest!r} in the registry: name one as backtest:<id> (quant.backtests)")
        if found[0].model is None:
            raise ReplayError(f"backtest:{rest} is a sweep over a snapshot, not a model's backtest: nothing to replay")
        return found[0].model, found
    raise ReplayError(f"cannot replay {target!r}: give model:<name>:vN or backtest:<id>")


def _backtests(conn, where: str, value) -> list[RecordedBacktest]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT b.backtest_id, b.config, b.metrics, b.environment, m.model_id, m.name, m.version "
            "FROM quant.backtests b "
            f"LEFT JOIN quant.models m USING (model_id) WHERE {where} ORDER BY b.backtest_id",
            (value,),
        )
        rows = cur.fetchall()
    return [RecordedBacktest(*row[:4], models.ModelRef(*row[4:]) if row[4] is not None else None) for row in rows]


def recorded_environment(
    conn, ref: models.ModelRef, manifest: dict, backtests: list[RecordedBacktest] = ()
) -> dict[str, dict]:
    """The environment each stored result of ``ref`` recorded, by where it is recorded: its snapshot's manifest,
    the model's registry row, the training key that first gave the model (the run that trained it) and each of
    ``backtests``. The one place a replay reads a recorded environment; a source that recorded none (a row written
    before it did) is left out."""
    out = {"snapshot manifest": dict(manifest.get("environment") or {})}
    with conn.cursor() as cur:
        cur.execute("SELECT environment FROM quant.models WHERE model_id = %s", (ref.model_id,))
        row = cur.fetchone()
    if row and row[0]:
        out["model"] = dict(row[0])
    keys = trainings.recorded(conn, ref)
    if keys:
        out["training key"] = keys[0][1]
    out.update({f"backtest {b.backtest_id}": dict(b.environment) for b in backtests if b.environment})
    return out


def environment_diff(recorded: Mapping[str, dict], now: Mapping[str, str]) -> list[EnvironmentDifference]:
    """Every recorded name whose value is not today's (a name a source did not record is not compared)."""
    return [
        EnvironmentDifference(source, name, str(value), str(now.get(name, "absent")))
        for source, env in recorded.items()
        for name, value in sorted(env.items())
        if now.get(name, "absent") != value
    ]


class _Scratch:
    """The scratch root as the source lake stood at a time: raw rows copied up to a cutoff, partition by partition
    (a later ``grow`` adds the rows ingested since, as new parts, as a delivery would), and features computed there
    with ``families``' definitions."""

    def __init__(self, source: Location, root: Location, families: Mapping[str, FeatureFamily]):
        self.source, self.root, self.families = source, root, dict(families)
        self.copied: dict[tuple[str, dt.date], pd.Timestamp] = {}
        self.store = FeatureStore(root, {f.name: f for fam in self.families.values() for f in fam.features})

    def grow(self, feature_days: list[dt.date], label_days: tuple[dt.date, dt.date], until: pd.Timestamp) -> None:
        """Copy the raw rows ingested by ``until`` that the features of ``feature_days`` and the labels of
        ``label_days`` (first, last + horizon) read, then compute those features."""
        wanted = {("raw_prices", d) for d in sessions.sessions_between(*label_days)}
        for family in self.families.values():
            first = compute.window_partitions(family, feature_days[0])[0]
            wanted |= {(family.source, d) for d in sessions.sessions_between(first, feature_days[-1])}
        for dataset, day in sorted(wanted):
            self._copy(dataset, day, until)
        for family in self.families.values():
            materialize(self.root, family, feature_days, PROVENANCE, lookahead_sample=0, verify_sample=0)

    def _copy(self, dataset: str, day: dt.date, until: pd.Timestamp) -> None:
        """The partition's rows ingested after what was copied of it before and by ``until``, one part per source
        part."""
        after = self.copied.get((dataset, day))
        parts = lake.partition_files(lake.partition_dir(self.source, dataset, day))
        for table in lake.read_parts(parts):
            times = table["ingest_time"]
            keep = pc.less_equal(times, pa.scalar(until.to_pydatetime(), times.type))
            if after is not None:
                keep = pc.and_(keep, pc.greater(times, pa.scalar(after.to_pydatetime(), times.type)))
            rows = table.filter(keep)
            if rows.num_rows:
                lake.write_part(lake.partition_dir(self.root, dataset, day), rows)
        self.copied[(dataset, day)] = until


def _feature_days(first: dt.date, last: dt.date) -> list[dt.date]:
    """The feature partitions a reader at the decision times of ``first``..``last`` can answer from."""
    return sessions.sessions_between(staleness.earliest_partition(first), last)


def replay(
    conn,
    source: Location,
    scratch: Location,
    target: str,
    families: Mapping[str, FeatureFamily] = FAMILIES,
    code_version: str = "unknown",
) -> Report:
    """Replay ``target`` (``model:<name>:vN`` or ``backtest:<id>``) from ``source`` in ``scratch`` with the
    feature definitions ``families`` (the library's) and report each artifact (module docstring)."""
    ref, backtests = resolve(conn, target)
    recorded = champion.snapshot_of(conn, source, ref)
    oos = artifacts.load_oos(conn, ref)
    if oos is None:
        raise ReplayError(f"{ref.node} was registered before its out-of-sample predictions were recorded: no replay")
    report = Report(target, ref.node, str(scratch))
    reads = {c.partition("@")[0] for c in recorded.manifest["features"]}
    work = _Scratch(source, scratch, {n: f for n, f in families.items() if reads & {d.name for d in f.features}})
    snap = _snapshot(work, recorded, code_version, report)
    result = _retrain(conn, ref, recorded, snap, oos, report, code_version)
    files = artifacts.save_model_files(scratch, ref.name, result.artifact, result.predictions)
    stored = artifacts.registered_files(conn, ref)
    report.artifacts += [
        _same("artifact sha256", stored.artifact.sha256, files.artifact.sha256),
        _same("out-of-sample predictions sha256", stored.oos.sha256, files.oos.sha256),
    ]
    report.artifacts.append(_predictions(work, ref, recorded.manifest, result.final))
    for bt in backtests:
        report.artifacts.append(_backtest(conn, source, work, ref, bt, result.predictions, snap.manifest))
    report.environment = environment_diff(
        recorded_environment(conn, ref, recorded.manifest, backtests), environment.recorded()
    )
    return report


def _same(name: str, recorded: str, replayed: str) -> Artifact:
    return Artifact(name, recorded == replayed, recorded, replayed)


def _snapshot(work: _Scratch, recorded: snapshots.Snapshot, code_version: str, report: Report) -> snapshots.Snapshot:
    """The recorded snapshot built again in the scratch root from the raw rows known at its as-of, and compared."""
    manifest = recorded.manifest
    horizon = int(manifest["label"]["horizon"])
    first, labelled = (sessions.as_date(d) for d in manifest["source_partitions"]["raw_prices"])
    last = sessions.session_offset(labelled, -horizon)  # the last session labelled: the build's ``end``
    as_of = sessions.as_date(manifest["as_of"])
    work.grow(_feature_days(first, last), (first, labelled), known_by_close(as_of))
    names = [c.partition("@")[0] for c in recorded.data.columns if c in manifest["features"]]  # in column order
    data, built = snapshots.build(work.root, work.store, first, last, as_of, names, horizon, code_version=code_version)
    snap = snapshots.read(snapshots.write(work.root, data, built)[0])
    why = tuple(_snapshot_differences(recorded, snap)) if snap.fingerprint != recorded.fingerprint else ()
    report.artifacts.append(Artifact("snapshot fingerprint", not why, recorded.fingerprint, snap.fingerprint, why))
    return snap


def _snapshot_differences(recorded: snapshots.Snapshot, replayed: snapshots.Snapshot) -> list[str]:
    """Why two snapshots' fingerprints differ: feature versions (named), other manifest fields, rows."""
    was, now = recorded.manifest, replayed.manifest
    versions = [
        f"{n} (recorded {was['features'].get(n, 'none')}, replayed {now['features'].get(n, 'none')})"
        for n in sorted(set(was["features"]) | set(now["features"]))
        if was["features"].get(n) != now["features"].get(n)
    ]
    out = [f"feature versions differ: {', '.join(versions)}"] if versions else []
    skip = {"features", *snapshots.NOT_CONTENT}
    fields = sorted(k for k in set(was) | set(now) if k not in skip and was.get(k) != now.get(k))
    out += [f"manifest fields differ: {', '.join(fields)}"] if fields else []
    rows = _row_differences(recorded.data, replayed.data)
    out += [rows] if rows else []
    if list(recorded.data.columns) != list(replayed.data.columns):
        out.append(f"columns differ: recorded {list(recorded.data.columns)}, replayed {list(replayed.data.columns)}")
    return out or ["the data's bytes differ (column types)"]


def _row_differences(was: pd.DataFrame, now: pd.DataFrame) -> str | None:
    """How two snapshots' rows differ: rows only one holds, and rows of both with other values (which columns)."""
    both = was.merge(now, on=snapshots.INDEX, how="outer", suffixes=("", " "), indicator=True)
    common = both["_merge"] == "both"
    columns = [c for c in was.columns if c not in snapshots.INDEX and c in now.columns]
    changed = [c for c in columns if not _equal(both.loc[common, c], both.loc[common, c + " "]).all()]
    differing = ~np.logical_and.reduce([_equal(both[c], both[c + " "]) for c in columns]) & common.to_numpy()
    only = {side: int((both["_merge"] == side).sum()) for side in ("left_only", "right_only")}
    if not (differing.any() or any(only.values())):
        return None
    return (
        f"rows differ: {len(was)} recorded, {len(now)} replayed; {only['left_only']} only recorded, "
        f"{only['right_only']} only replayed, {int(differing.sum())} with other values"
        + (f" ({', '.join(changed)})" if changed else "")
    )


def _equal(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality, NaN equal to NaN for numbers (``nan_equal``)."""
    if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b):
        return nan_equal(a, b)
    return (a == b).to_numpy()


def _retrain(
    conn,
    ref: models.ModelRef,
    recorded: snapshots.Snapshot,
    snap: snapshots.Snapshot,
    oos: pd.DataFrame,
    report: Report,
    replayed_by: str,
) -> training.WalkForwardResult:
    """Train on the replayed snapshot with the configuration recovered from the registry (noted, with whether a
    recorded training key of the model is that configuration's)."""
    with conn.cursor() as cur:
        cur.execute("SELECT params, code_version FROM quant.models WHERE model_id = %s", (ref.model_id,))
        params, code_version = cur.fetchone()
    horizon = int(recorded.manifest["label"]["horizon"])
    try:
        config = training.recover_config(params, recorded.data["date"], oos, horizon)
    except ValueError as exc:
        raise ReplayError(f"{ref.node}: {exc}") from None
    keys = trainings.recorded(conn, ref)
    matched = [k for k, env in keys if trainings.key(recorded.fingerprint, config, code_version, env) == k]
    said = f"matches its training key {matched[0][:12]}" if matched else "no recorded training key matches it"
    said = said if keys else "no training key recorded"
    report.notes.append(
        f"configuration: {config.n_folds} folds after {config.min_train_days} sessions, {config.num_boost_round} "
        f"rounds, seeds {list(config.seeds)}, parameters {config.params or 'the defaults'} ({said})"
    )
    report.notes.append(f"code: {ref.node} was trained by {code_version}, replayed by {replayed_by}")
    return training.train_walk_forward(snap.data, snap.features, config)


def _predictions(work: _Scratch, ref: models.ModelRef, manifest: dict, model: training.Ensemble) -> Artifact:
    """The model's stored prediction days rescored by the replayed model from the scratch root grown to what was
    known at each decision time, compared bit for bit; the replayed days are stored there (for the backtests)."""
    as_of, horizon = sessions.as_date(manifest["as_of"]), int(manifest["label"]["horizon"])
    stored = scoring.stored(work.source, ref.node, scoring.scored_days(work.source, as_of))
    if not stored:
        return Artifact("predictions", True, "none stored", "none to rescore")
    days = sorted(stored)
    feature_days = sorted({d for day in days for d in _feature_days(day, day)})
    last = sessions.session_offset(days[-1], horizon)
    work.grow(feature_days, (days[0], last), known_by_close(last))
    rows, differ = 0, []
    for day in days:
        scored = scoring.score_day(work.store, model, ref.node, day, manifest["universe"])
        scoring.write_day(work.root, day, scored)
        n = _differing(stored[day], scored)
        rows += n
        differ += [day] if n else []
    total = sum(len(f) for f in stored.values())
    said = f"{len(days)} days, {total} rows"
    why = (f"{len(differ)} of {len(days)} days differ ({rows} rows), first {differ[0]}",) if differ else ()
    return Artifact("predictions", not differ, said, said if not differ else f"{len(days)} days rescored", why)


def _differing(stored: pd.DataFrame, replayed: pd.DataFrame) -> int:
    """Rows of one day that differ: a name only one side scored, or a prediction of other bits."""
    both = stored.merge(replayed[["entity_key", "prediction"]], on="entity_key", how="outer", indicator=True)
    bits = [both[c].to_numpy("float64").view("u8") for c in ("prediction_x", "prediction_y")]
    return int(((both["_merge"] != "both").to_numpy() | (bits[0] != bits[1])).sum())


def _backtest(
    conn,
    source: Location,
    work: _Scratch,
    ref: models.ModelRef,
    bt: RecordedBacktest,
    oos: pd.DataFrame,
    manifest: dict,
) -> Artifact:
    """The backtest rerun on the replayed track record (out-of-sample and rescored predictions, labels from the
    scratch root) cut to the sessions it covered (``_covered``), its metrics compared with the recorded ones; when
    they differ, whether the stored track record, cut alike, still gives them."""
    rule, costs = backtest.from_config(bt.config)
    covered = bt.metrics.get("net", {}).get("days")
    frame = _covered(champion.record_of(work.root, ref.node, oos, manifest)[0], covered)
    replayed = _metrics(*champion.net_and_gross(frame, rule, costs))
    why = _metric_differences(bt.metrics, replayed)
    if why:
        stored = _covered(champion.track_record(conn, source, ref)[0], covered)
        if _metric_differences(bt.metrics, _metrics(*champion.net_and_gross(stored, rule, costs))):
            why.append("the stored track record does not give the recorded figures either")
    was, now = (
        f"{_sharpes(bt.metrics)} ({covered} sessions)",
        f"{_sharpes(replayed)} ({frame['date'].nunique()} sessions)",
    )
    return Artifact(f"{bt.node} metrics", not why, was, now, tuple(why))


def _covered(frame: pd.DataFrame, sessions_held: int | None) -> pd.DataFrame:
    """The track record as a backtest recorded with ``sessions_held`` sessions (its ``days``) saw it: its first
    sessions. A record only grows at its end (live sessions scored after the backtest ran), so a backtest recorded
    earlier is replayed on what it held, not on today's longer record."""
    if sessions_held is None:
        return frame
    first = sorted(frame["date"].unique())[: int(sessions_held)]
    return frame[frame["date"].isin(set(first))]


def _metrics(net: backtest.BacktestResult, gross: backtest.BacktestResult) -> dict:
    """The metrics as quant.backtests stores them (JSON numbers), so recorded and replayed compare exactly."""
    return json.loads(json.dumps({"net": net.metrics, "gross": gross.metrics}, default=float))


def _metric_differences(recorded: dict, replayed: dict) -> list[str]:
    out = []
    for scope in sorted(set(recorded) | set(replayed)):
        was, now = recorded.get(scope, {}), replayed.get(scope, {})
        for name in sorted(set(was) | set(now)):
            a, b = was.get(name), now.get(name)
            if a != b and not (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
                out.append(f"{scope} {name}: recorded {a}, replayed {b}")
    return out


def _sharpes(metrics: dict) -> str:
    return ", ".join(f"{scope} sharpe {metrics.get(scope, {}).get('sharpe')}" for scope in ("net", "gross"))

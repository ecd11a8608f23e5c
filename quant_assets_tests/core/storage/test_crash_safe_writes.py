"""Every writer of the lake, killed at each point of a write and raced against copies of itself.

A writer runs in a child process (forked from a server that has the project imported, so a child
costs milliseconds) and is killed with SIGKILL at the k-th file it publishes: with the file half
written, with it written but not yet linked into place, or just after the link. Afterwards every file a
reader can see must verify (complete and what its name says), and running the writer again must leave
exactly the files, byte for byte, of an undisturbed run. In the race, four children write the same
objects at once: all must succeed and leave the undisturbed run's files.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import pickle
import signal
import time
from multiprocessing import forkserver
from pathlib import Path

import pandas as pd
import pytest

from quant_assets.core.audit import verify_lake
from quant_assets.core.features import compaction, compute, files
from quant_assets.core.features.library import ALL_FEATURES, FAMILIES
from quant_assets.core.features.store import FeatureStore
from quant_assets.core.ingest.pipeline import ingest_alt, ingest_prices
from quant_assets.core.ingest.sources import YahooCsvPrices
from quant_assets.core.registry import artifacts
from quant_assets.core.research import scoring, snapshots
from quant_assets.core.research.training import Ensemble, TrainConfig
from quant_assets.core.storage import fs

DAYS = [dt.date(2024, 6, 24), dt.date(2024, 6, 25), dt.date(2024, 6, 26)]
PROV = {"producer": "test", "producer_version": "sha0", "run_id": "r"}
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


# ----------------------------------------------------------------------------- the writers


def write_ingest(root: Path, inputs: dict) -> None:
    """Raw prices and their quarantine (one bad line) for three sessions."""
    source = YahooCsvPrices(inputs["csv_dir"])
    for day in DAYS:
        ingest_prices(source, day, root, now=pd.Timestamp("2024-07-01", tz="UTC"))


def write_alt_ingest(root: Path, inputs: dict) -> None:
    ingest_alt(inputs["market"], DAYS[0], root)


def write_features(root: Path, inputs: dict) -> None:
    """A new family version's first partitions: the manifest, then one part per day."""
    for day, rows in inputs["feature_rows"].items():
        files.write_day(root, FAMILIES["price"], day, rows, PROV)


def write_compaction(root: Path, inputs: dict) -> None:
    compaction.compact(root, min_files=1)


def write_snapshot(root: Path, inputs: dict) -> None:
    snapshots.write(root, *inputs["snapshot"])


def write_model(root: Path, inputs: dict) -> None:
    """The artifact, then its out-of-sample predictions."""
    artifacts.save_model_files(root, "m", *inputs["model"])


def write_predictions(root: Path, inputs: dict) -> None:
    for day, frame in inputs["predictions"].items():
        scoring.write_day(root, day, frame)


WRITERS = {
    "ingest": (write_ingest, None),
    "alt_ingest": (write_alt_ingest, None),
    "features": (write_features, None),
    "compaction": (write_compaction, write_features),  # the second writes what the first reads
    "snapshot": (write_snapshot, None),
    "model": (write_model, None),
    "predictions": (write_predictions, None),
}


# ----------------------------------------------------------------------------- the child process


def _child(
    name: str, root: str, inputs_file: str, kill: tuple[str, int] | None, go: str | None, s3: dict | None = None
) -> None:
    """Run one writer; with ``kill`` = (point, k), SIGKILL this process at the k-th publish. ``s3``: the
    object store's options, for an s3:// root."""
    with open(inputs_file, "rb") as fh:
        inputs = pickle.load(fh)
    if s3 is not None:
        fs.register("s3", s3)
    if kill is not None:
        _arm(*kill)
    while go is not None and not os.path.exists(go):
        time.sleep(0.001)
    WRITERS[name][0](fs.location(root), inputs)


def _arm(point: str, k: int) -> None:
    """Die at the k-th link into place (``fs.put_once`` on a local disk): with the temporary file half
    written, before the link, or just after it; on an object store, before or just after the k-th PUT."""
    real_link, seen = os.link, [0]

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def link(src, dst, **kw):
        seen[0] += 1
        if seen[0] == k and point == "half_written":
            os.truncate(src, os.path.getsize(src) // 2)
            die()
        if seen[0] == k and point == "before_link":
            die()
        real_link(src, dst, **kw)
        if seen[0] == k and point == "after_link":
            die()

    def put(path, data: bytes) -> bool:
        seen[0] += 1
        if seen[0] == k and point == "before_put":
            die()
        created = real_put(path, data)
        if seen[0] == k and point == "after_put":
            die()
        return created

    os.link = link
    real_put, fs._create_remote = fs._create_remote, put


@pytest.fixture(scope="module")
def spawn():
    """Start children from a fork server that has the project imported.

    The fork server is one per process: one started earlier has another preload and environment, and
    ours must not serve later tests (Dagster's forkserver executor would run their steps with this
    module's environment), so it is stopped before and after (``_stop`` is the stdlib's hook for tests).
    """
    forkserver._forkserver._stop()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])

    def start(*args) -> multiprocessing.Process:
        proc = ctx.Process(target=_child, args=args)
        proc.start()
        return proc

    yield start
    forkserver._forkserver._stop()


# ----------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def inputs(feature_lake, tmp_path_factory) -> Path:
    """Everything the writers write, prepared once from the session's synthetic lake; pickled for children."""
    base = tmp_path_factory.mktemp("writer_inputs")
    csv_dir = base / "csv"
    csv_dir.mkdir()
    lines = [f"{d},10.0,11.0,9.0,10.{i},10.{i},1000" for i, d in enumerate(DAYS)] + [f"{DAYS[1]},1,2,3"]
    (csv_dir / "AAA.csv").write_text(HEADER + "\n".join(lines) + "\n")
    family = FAMILIES["price"]
    loaded = compute.load_inputs(feature_lake, family, DAYS)
    feature_rows = {d: compute.compute_day(family, compute.window_rows(family, loaded, d), d) for d in DAYS}
    feature_store = FeatureStore(feature_lake, ALL_FEATURES)
    data, manifest = snapshots.build(feature_lake, feature_store, "2024-05-01", "2024-05-31", "2024-06-03", ["ret_5"])
    model = Ensemble.fit(data, ["ret_5"], TrainConfig(num_boost_round=3, seeds=(1,), params={"min_data_in_leaf": 5}))
    oos = data[["date", "entity_key", "label"]].assign(prediction=model.predict(data))
    predictions = {d: scoring.score_day(feature_store, model, "model:m:v1", d, manifest["universe"]) for d in DAYS}
    from quant_assets.core.ingest.sources import SyntheticMarket

    payload = {
        "csv_dir": csv_dir,
        "market": SyntheticMarket(seed=4, n_tickers=6),
        "feature_rows": feature_rows,
        "snapshot": (data, manifest),
        "model": (model.to_bytes(), oos),
        "predictions": predictions,
    }
    path = base / "inputs.pkl"
    path.write_bytes(pickle.dumps(payload))
    return path


def _run(name: str, root: Path, inputs_file: Path) -> None:
    prepare = WRITERS[name][1]
    payload = pickle.loads(inputs_file.read_bytes())
    if prepare is not None:
        prepare(root, payload)
    WRITERS[name][0](root, payload)


def _files(root) -> dict[str, bytes]:
    """What readers can see: every file but the temporary ones, with its bytes."""
    if not fs.is_local(root):
        return {key[len(root.path) + 1 :]: root.fs.cat_file(key) for key in sorted(root.fs.find(root.path))}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".tmp-")
    }


@pytest.fixture(scope="module")
def undisturbed(inputs, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    out = {}
    for name in WRITERS:
        root = tmp_path_factory.mktemp(f"undisturbed_{name}")
        _run(name, root, inputs)
        out[name] = _files(root)
        assert out[name], name
    return out


def _publishes(name: str, undisturbed: dict) -> int:
    """How many files the writer publishes (the compaction's preparation writes its inputs first)."""
    prepared = 0 if WRITERS[name][1] is None else len(undisturbed["features"])
    return len(undisturbed[name]) - prepared


POINTS = {
    "local": (("half_written", "first"), ("before_link", "last"), ("after_link", "first")),
    "s3": (("before_put", "last"), ("after_put", "first")),
}
# On the object store: the writers whose objects a worker writes in the middle of a run (a feature partition, a
# snapshot, a compaction) and the ingest, each killed before and after its PUT; the others write through the
# same put_once, which the local cases cover point by point.
ON_S3 = ("ingest", "features", "compaction", "snapshot")
KILLS = [
    (store, name, point, which)
    for store, points in POINTS.items()
    for name in (WRITERS if store == "local" else ON_S3)
    for point, which in points
]


def _root(store: str, request, tmp_path):
    """A new, empty lake root: a local directory, or a prefix of a new bucket on the S3 server; with the options a
    child needs for it."""
    if store == "local":
        root = tmp_path / "lake"
        root.mkdir()
        return root, None
    return request.getfixturevalue("s3_root"), request.getfixturevalue("s3_server").options


@pytest.mark.parametrize(("store", "name", "point", "which"), KILLS, ids=["-".join(k) for k in KILLS])
def test_a_killed_writer_leaves_only_complete_files_and_a_rerun_the_same_bytes(
    spawn, inputs, undisturbed, request, tmp_path, store, name, point, which
):
    """Killed at a write, on either store: only complete objects visible, then a rerun leaves the bytes of an
    undisturbed run on a local disk (the same writers write the same bytes wherever the lake is)."""
    root, options = _root(store, request, tmp_path)
    if WRITERS[name][1] is not None:
        WRITERS[name][1](root, pickle.loads(inputs.read_bytes()))
    k = 1 if which == "first" else _publishes(name, undisturbed)
    proc = spawn(name, str(root), str(inputs), (point, k), None, options)
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL, f"{name} was not killed at publish {k} ({proc.exitcode})"

    report = verify_lake(root)
    assert report.ok, report.problems
    checked = sum(report.checked.values()) + len(report.incomplete)  # a snapshot killed before its manifest
    assert checked == len([f for f in _files(root) if not f.endswith(f"/{snapshots.MANIFEST}")])
    visible = _files(root)
    assert all(undisturbed[name][f] == b for f, b in visible.items() if f in undisturbed[name])
    assert set(visible) <= set(undisturbed[name])

    WRITERS[name][0](root, pickle.loads(inputs.read_bytes()))
    assert _files(root) == undisturbed[name]
    assert verify_lake(root).ok


RACES = [(store, name) for store in POINTS for name in (WRITERS if store == "local" else ON_S3)]
WRITERS_AT_ONCE = 8


@pytest.mark.parametrize(("store", "name"), RACES, ids=["-".join(r) for r in RACES])
def test_concurrent_writers_of_the_same_objects_all_succeed(spawn, inputs, undisturbed, request, tmp_path, store, name):
    """Eight processes write the same objects at once: all succeed, one set of objects, no leftovers."""
    root, options = _root(store, request, tmp_path)
    if WRITERS[name][1] is not None:
        WRITERS[name][1](root, pickle.loads(inputs.read_bytes()))
    go = tmp_path / "go"
    procs = [spawn(name, str(root), str(inputs), None, str(go), options) for _ in range(WRITERS_AT_ONCE)]
    time.sleep(0.5)
    go.touch()
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS_AT_ONCE
    assert _files(root) == undisturbed[name]
    report = verify_lake(root)
    assert report.ok and not report.leftovers, (report.problems, report.leftovers)

"""A training key names the model a training run gives before it runs; reusing it rebuilds the run's figures from
the model's verified files, equal to the training's own; a tampered file is refused, naming it."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from quant_assets.core import environment
from quant_assets.core.registry import artifacts, champion, trainings
from quant_assets.core.research import snapshots, training
from quant_assets.core.storage import pg
from quant_assets_tests.conftest import synthetic_snapshot

CONFIG = training.TrainConfig(n_folds=2, min_train_days=60, num_boost_round=20, seeds=(1,))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    snap = snapshots.read(synthetic_snapshot(root))
    return root, snap, training.train_walk_forward(snap.data, snap.features, CONFIG)


def test_the_key_changes_with_each_thing_that_decides_the_model(trained):
    _, snap, _ = trained
    base = trainings.key(snap.fingerprint, CONFIG, "code-a")
    assert base == trainings.key(snap.fingerprint, dataclasses.replace(CONFIG), "code-a")
    others = {
        trainings.key("another-snapshot", CONFIG, "code-a"),
        trainings.key(snap.fingerprint, dataclasses.replace(CONFIG, seeds=(2,)), "code-a"),
        trainings.key(snap.fingerprint, dataclasses.replace(CONFIG, n_folds=3), "code-a"),
        trainings.key(snap.fingerprint, CONFIG, "code-b"),
    }
    assert base not in others and len(others) == 4
    assert {"python", "lightgbm", "numpy", "pandas"} <= set(environment.versions())


def test_reuse_rebuilds_the_training_figures_from_verified_files(pg_db, trained):
    root, snap, result = trained
    key = trainings.key(snap.fingerprint, CONFIG, "code-a")
    with pg.connect(pg_db) as conn:
        assert trainings.find(conn, "keyed", key) is None
        reg = champion.register(conn, root, "keyed", snap, result, "code-a")
        trainings.record(conn, key, reg.ref)
        trainings.record(conn, key, reg.ref)  # recorded again: nothing changes
        assert trainings.find(conn, "keyed", key) == reg.ref and trainings.find(conn, "other", key) is None

        again, rebuilt = champion.reuse(conn, "keyed", reg.ref, snap, CONFIG)
        assert again.ref == reg.ref and again.identical and again.note.startswith(f"is {reg.ref.node}: the same")
        pd.testing.assert_frame_equal(rebuilt.fold_metrics, result.fold_metrics, check_exact=True)
        pd.testing.assert_frame_equal(rebuilt.predictions, result.predictions, check_exact=True)
        assert rebuilt.artifact == result.artifact and rebuilt.folds == result.folds

        oos = reg.files.oos.path
        oos.write_bytes(oos.read_bytes()[:-8])
        with pytest.raises(artifacts.ArtifactTampered, match=oos.name):
            champion.reuse(conn, "keyed", reg.ref, snap, CONFIG)

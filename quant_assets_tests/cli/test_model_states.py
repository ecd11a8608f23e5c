"""``models`` and ``approve`` on a real registry: the states and changes a reviewer reads, and the approval
that resumes a paused model, refused without cause."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from click.testing import CliRunner

from quant_assets.cli import cli
from quant_assets.core.registry import artifacts, models, promotion, states
from quant_assets.core.storage import pg


def _paused_champion(url: str, tmp_path) -> None:
    oos = pd.DataFrame({"date": [1], "entity_key": ["A"], "prediction": [0.0], "label": [0.0]})
    files = artifacts.save_model_files(tmp_path, "m", b"{}", oos)
    metrics = pd.DataFrame({"dataset_type": ["test"], "metric": ["rank_ic"], "scope": ["overall"], "value": [0.03]})
    with pg.connect(url) as conn:
        ref = models.register_model(conn, "m", "S", {"x": "v1"}, {}, "c", ("2024-01-02", "2024-06-28"), files, metrics)
        promotion.record(conn, ref, "promoted", "first champion", as_of=dt.date(2024, 6, 28))
        pause = states.Decision(
            "2024-07-03", "live", "paused", "ic_negative", {"ic_mean_5": -0.012}, "ic_negative critical"
        )
        states.record(conn, ref, pause, "sensor:model_states_on_drift")


def test_models_shows_states_and_changes_and_approve_resumes_a_paused_model_once(pg_db, tmp_path):
    _paused_champion(pg_db, tmp_path)
    runner = CliRunner()
    shown = runner.invoke(cli, ["models", "m", "--pg-url", pg_db])
    assert shown.exit_code == 0, shown.output
    versions, changes = shown.output.split("State changes (2):")
    assert "m:v1" in versions and "paused" in versions and "2024-07-05" in versions  # 07-04: a holiday
    assert "ic_negative" in changes and "sensor:model_states_on_drift" in changes and "-0.012" in changes

    tree = runner.invoke(cli, ["lineage", "m", "--pg-url", pg_db])
    assert tree.exit_code == 0, tree.output
    assert tree.output.startswith("model:m:v1") and "state: paused from 2024-07-05\n" in tree.output
    assert (
        "  2024-07-05: live -> paused by sensor:model_states_on_drift (ic_negative: ic_negative critical)"
        in tree.output
    )

    args = ["approve", "m:v1", "--pg-url", pg_db, "--as-of", "2024-07-08"]
    refused = runner.invoke(cli, [*args, "--by", "ana", "--reason", " "])
    assert refused.exit_code == 1 and "needs the approver's name and a reason" in refused.output
    done = runner.invoke(cli, [*args, "--by", "ana", "--reason", "vendor outage explained the IC"])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "model:m:v1: paused -> live from 2024-07-09, approved by ana"
    again = runner.invoke(cli, [*args, "--by", "ana", "--reason", "again"])
    assert again.exit_code == 1 and "model:m:v1 is live: only a paused or de-risked model" in again.output
    no_rows = runner.invoke(cli, ["approve", "m:v1", "--pg-url", pg_db, "--by", "ana", "--reason", "x"])
    assert no_rows.exit_code == 1 and "model:m:v1 has no drift rows: give the session the review saw" in no_rows.output

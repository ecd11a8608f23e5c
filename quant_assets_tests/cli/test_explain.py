"""``quant-assets explain`` as a person runs it: the vector, both predictions and the verdict, the today's-knowledge
section, the rows view, the exit status when the stored prediction differs, and one line for each mistake."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from click.testing import CliRunner

from quant_assets.cli import cli
from quant_assets.core import sessions
from quant_assets.core.research import scoring
from quant_assets.core.storage import lake
from quant_assets_tests.core.registry.helpers import scored_model

DAYS = sessions.sessions_between("2024-05-01", "2024-05-03")
DAY = dt.date(2024, 5, 2)


def test_explain_prints_the_vector_the_verdict_and_the_rows_and_fails_on_a_difference(feature_lake, tmp_path, pg_db):
    root = tmp_path / "lake"
    _, node = scored_model(feature_lake, root, pg_db, ("2024-01-02", "2024-04-30"), DAYS)
    runner = CliRunner()
    where = ["--data-root", str(root), "--pg-url", pg_db]

    shown = runner.invoke(cli, ["explain", "explained:v1", "2024-05-02", "SYN007", *where])
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert out.startswith(f"{node} on 2024-05-02 for SYN007: decision time 2024-05-02 13:00:00+00:00\n")
    assert "inputs as known then (36 features):" in out and "ret_1 " in out and "sentiment_1 " in out
    recomputed, stored = (line.split(": ")[1] for line in out.splitlines() if line.endswith("prediction") is False
                          and line.startswith(("recomputed prediction:", "stored prediction:")))  # fmt: skip
    assert recomputed.strip() == stored.strip() and "\nidentical\n" in out
    assert out.rstrip().endswith("no input restated since")

    rows = runner.invoke(cli, ["explain", "explained", "2024-05-02", *where])
    assert rows.exit_code == 0, rows.output
    assert rows.output.startswith(f"{node} on 2024-05-02: ") and "feature rows used" in rows.output
    assert "features/price/fv=" in rows.output and "raw sources (" in rows.output and "raw_prices/date=" in rows.output
    assert runner.invoke(cli, ["explain", "explained", "2024-05-02", "SYN007", "--rows", *where]).output == rows.output

    # another version of the stored prediction (a later write): recomputed and stored now differ
    when = sessions.decision_time(DAY) + pd.Timedelta(days=1)
    other = scoring.stored(root, node, [DAY])[DAY].head(8).drop(columns="date")
    other = other.assign(
        prediction=other["prediction"] + 1e-9, model=node, event_time=sessions.decision_time(DAY), ingest_time=when
    )
    key, values = ["entity_key", "model"], ["prediction"]
    assert lake.append_new_versions(root, "predictions", DAY, other, key, values, when, scoring.SCHEMA).rows_written
    ticker = other["entity_key"].iloc[0]
    differs = runner.invoke(cli, ["explain", "explained:v1", "2024-05-02", ticker, *where])
    assert differs.exit_code == 1 and "\ndiffers\n" in differs.output

    for args, message in [
        (["nope", "2024-05-02", "SYN007"], "Error: no model 'nope' in the registry"),
        (["explained", "2024-05-06", "SYN007"], f"Error: {node} has no stored predictions for session 2024-05-06"),
        (["explained", "2024-05-02", "NOPE"], f"Error: {node} did not score NOPE on 2024-05-02"),
        (
            ["explained", "2024-13-02", "SYN007"],
            "Error: session '2024-13-02' is not a valid date: write it as YYYY-MM-DD",
        ),
        (
            ["explained", "2024-05-04", "SYN007"],
            "Error: session 2024-05-04 is not an NYSE session (weekend or holiday)",
        ),
    ]:
        refused = runner.invoke(cli, ["explain", *args, *where])
        assert refused.exit_code == 2 and message in refused.output, refused.output

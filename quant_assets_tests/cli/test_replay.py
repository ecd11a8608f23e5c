"""``replay`` on a real registry and lake: a freshly trained model replays identical (exit 0, the scratch directory
kept where asked); a recorded library version that is not today's is named and exits 1, as does a lake without the
model's snapshot; an unknown target is one line saying what to give (exit 2)."""

from __future__ import annotations

from click.testing import CliRunner

from quant_assets.cli import cli
from quant_assets.core import environment
from quant_assets.core.storage import pg
from quant_assets_tests.core.registry.helpers import base_lake, registered


def test_replay_exits_0_when_identical_and_1_naming_a_recorded_library_that_differs(tmp_path, tmp_path_factory, pg_db):
    root = tmp_path / "lake"
    ref, backtest = registered(base_lake(tmp_path_factory), root, pg_db)
    runner, where = CliRunner(), ["--data-root", str(root), "--pg-url", pg_db]
    same = runner.invoke(cli, ["replay", ref.node, "--scratch", str(tmp_path / "scratch"), *where])
    assert same.exit_code == 0, same.output
    assert same.output.startswith(f"Replay of {ref.node} in {tmp_path / 'scratch'}\n")
    assert f"{backtest} metrics  identical" in same.output and same.output.endswith("Result: IDENTICAL\n")
    assert (tmp_path / "scratch" / "snapshots").is_dir()

    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute("""UPDATE quant.model_trainings SET environment = environment || '{"lightgbm": "0.0.1"}'""")
    tampered = runner.invoke(cli, ["replay", backtest, *where])
    assert tampered.exit_code == 1 and tampered.output.startswith(f"Replay of {backtest} ({ref.node}) in ")
    now = environment.versions()["lightgbm"]
    assert f"Environment: differs\n  training key: lightgbm recorded 0.0.1, now {now}\n" in tampered.output
    assert "snapshot fingerprint" in tampered.output and " differs " not in tampered.output.split("Environment")[0]
    assert "no recorded training key matches it" in tampered.output and "Result: DIFFERS" in tampered.output

    elsewhere = runner.invoke(cli, ["replay", ref.node, "--data-root", str(tmp_path / "other"), "--pg-url", pg_db])
    assert elsewhere.exit_code == 1 and "this lake does not hold it" in elsewhere.output, elsewhere.output


def test_an_unknown_target_is_one_line_saying_what_to_give(tmp_path, pg_db):
    runner, where = CliRunner(), ["--data-root", str(tmp_path), "--pg-url", pg_db]
    for target, says in (
        ("model:nobody:v3", "Error: no model 'nobody:v3' in the registry: name a registered model as model:<name>:vN"),
        ("lineage:x", "Error: cannot replay 'lineage:x': give model:<name>:vN or backtest:<id>"),
    ):
        result = runner.invoke(cli, ["replay", target, *where])
        assert result.exit_code == 2 and result.output.startswith(says), result.output

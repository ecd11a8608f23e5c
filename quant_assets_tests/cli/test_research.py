"""`quant-assets research feature` end to end: the figures printed, the tear sheet and the JSON written where it
says, the same figures in both; a mistake is one line, before anything is computed."""

import json
import subprocess
import sys

from quant_assets.paths import PROJECT_ROOT

COMMAND = [sys.executable, "-m", "quant_assets", "research", "feature"]


def test_the_example_candidate_from_the_command_line(feature_lake, tmp_path):
    run = subprocess.run(
        [*COMMAND, "examples/candidate_feature.py:INTRADAY_REVERSAL", "--start", "2024-03-01", "--end", "2024-04-30",
         "--data-root", str(feature_lake), "--out", str(tmp_path / "out"), "--guard-days", "5"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert out.startswith("intraday_reversal_3@") and "decisions 2024-03-01..2024-04-30, 42 sessions" in out
    png = next((tmp_path / "out").glob("intraday_reversal_3@*_2024-03-01_2024-04-30.png"))
    figures = json.loads(png.with_suffix(".json").read_text())
    assert f"Tear sheet: {png}" in out and f"Figures:    {png.with_suffix('.json')}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the printed IC decay is the JSON's, horizon by horizon
    table = out.split("t: Newey-West with h-1 lags):\n")[1].split("\n\n")[0].splitlines()[2:]
    for line in table:
        horizon, ic_mean, *_ = line.split()
        assert float(ic_mean) == round(figures["ic_decay"][horizon]["ic_mean"], 4)
    assert set(figures["ic_decay"]) == {"1", "5", "10", "20"} and figures["window"]["sessions"] == 42
    assert figures["coverage"]["overall"] == 1.0
    assert all(g["passed"] for g in figures["lookahead"].values())
    assert figures["correlations"]["kmid"]["days"] == 42


def test_a_mistake_is_one_line(feature_lake, tmp_path):
    run = subprocess.run(
        [*COMMAND, "examples/nothing_here.py:X", "--start", "2024-03-01", "--end", "2024-04-30",
         "--data-root", str(feature_lake)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"Error: candidate file {PROJECT_ROOT / 'examples' / 'nothing_here.py'} does not exist"
    ]
    run = subprocess.run(
        [*COMMAND, "examples/candidate_feature.py:INTRADAY_REVERSAL", "--start", "2024-03-09", "--end", "2024-04-30"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "Error: --start 2024-03-09 is not an NYSE session (weekend or holiday); nearest sessions: 2024-03-08 "
        "(before) and 2024-03-11 (after)"
    )

"""``quant-assets main``: the whole asset graph on the default data, one stage at a time, then the summary.

The stages are the ones a person would run by hand (README, "The two commands"): the feature catalog; ingest and
features over the whole range as one single-run backfill; the training snapshot and model; predictions and drift
over the sessions after training; the daemon until the retraining sensor has ticked and its run is done.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from quant_assets.cli import inputs
from quant_assets.cli.lake import print_summary
from quant_assets.cli.options import data_root, pg_url
from quant_assets.cli.runs import IN_PROCESS, daemon_until_done, open_instance, run_or_fail
from quant_assets.cli.stage import Stage, log_path, say, stderr_to

INGEST = ["raw_prices", "alt_data", "price_features", "alt_features"]
# Replaying known history: its critical days are reported as warnings (the daily schedule uses the default, fail).
# Its three steps run one after the other in the run's process, as daily_job's do (a step process would add its
# start-up and run nothing beside them).
REPLAY_DRIFT = {"ops": {"drift_metrics": {"config": {"on_critical": "warn"}}}, **IN_PROCESS}


TRADE = ["predictions", "drift_metrics", "live_book", "model_lineage"]


def stages(
    start: str, end: str, train_start: str, train_end: str, retrain_at: str, decide_at: str
) -> tuple[list[Stage], list[Stage]]:
    """The main job's runs before the daemon's sensors act and after, with every date checked first (a mistake
    costs no run). The sessions after training are traded in three stretches, as daily runs would have reached
    them: up to ``retrain_at`` (the daemon then retrains on the breach so far, the challenger in shadow), up to
    ``decide_at`` (the challenger scores beside the champion; then its promotion is decided), and the rest."""
    from quant_assets.core import sessions

    span = inputs.session_range(start, end, ("--start", "--end"))
    train = inputs.session_range(train_start, train_end, ("--train-start", "--train-end"))
    first = sessions.next_session(train[1])
    retrain, decide = (inputs.session_range(a, b, names)[1] for a, b, names in (
        (first.isoformat(), retrain_at, ("--train-end", "--retrain-at")),
        (retrain_at, decide_at, ("--retrain-at", "--decide-at")),
    ))  # fmt: skip
    if not retrain < decide < span[1]:
        raise inputs.InputError(
            f"--train-end < --retrain-at < --decide-at < --end, got {train[1]}, {retrain}, {decide}, {span[1]}"
        )
    window = {"start": train[0].isoformat(), "end": train[1].isoformat(), "as_of": train[1].isoformat()}
    before = [
        Stage("1/8 feature_catalog: register the feature definitions", ["feature_catalog"], run_config=IN_PROCESS),
        Stage(f"2/8 {', '.join(INGEST)} for {span[0]}...{span[1]} (one run)", INGEST, span),
        Stage(
            f"3/8 training_snapshot, trained_model, promotion_decision: train on {train[0]}...{train[1]}",
            ["training_snapshot", "trained_model", "promotion_decision"],
            run_config={"ops": {"training_snapshot": {"config": window}}},
        ),
        Stage(f"4/8 {', '.join(TRADE)}: trade {first}...{retrain}", TRADE, (first, retrain), REPLAY_DRIFT),
    ]
    after = [
        Stage(f"6/8 {', '.join(TRADE)}: trade {sessions.next_session(retrain)}...{decide} (any challenger in shadow)",
              TRADE, (sessions.next_session(retrain), decide), REPLAY_DRIFT),
        Stage("7/8 promotion_decision: any challenger still in shadow judged", ["promotion_decision"],
              run_config=IN_PROCESS),
        Stage(f"8/8 {', '.join(TRADE)}: trade {sessions.next_session(decide)}...{span[1]}", TRADE,
              (sessions.next_session(decide), span[1]), REPLAY_DRIFT),
    ]  # fmt: skip
    return before, after


@click.command()
@click.option(
    "--start", envvar="QUANT_START", default="2023-01-03", show_default=True, help="First session (QUANT_START)."
)
@click.option("--end", envvar="QUANT_END", default="2024-12-31", show_default=True, help="Last session (QUANT_END).")
@click.option(
    "--train-start",
    envvar="QUANT_TRAIN_START",
    default="2023-04-03",
    show_default=True,
    help="First session of the training snapshot (QUANT_TRAIN_START).",
)
@click.option(
    "--train-end",
    envvar="QUANT_TRAIN_END",
    default="2024-06-28",
    show_default=True,
    help="Last training session and the snapshot's as-of; scoring starts the session after (QUANT_TRAIN_END).",
)
@click.option(
    "--retrain-at",
    envvar="QUANT_RETRAIN_AT",
    default="2024-07-31",
    show_default=True,
    help="Last session traded before the daemon's sensors retrain on the breaches so far (QUANT_RETRAIN_AT).",
)
@click.option(
    "--decide-at",
    envvar="QUANT_DECIDE_AT",
    default="2024-08-30",
    show_default=True,
    help="Last session traded before the challenger's promotion is decided (QUANT_DECIDE_AT).",
)
@click.option("--daemon-timeout", type=float, default=1200.0, show_default=True, help="Seconds for stage 5.")
@data_root
@pg_url
def main(
    start: str,
    end: str,
    train_start: str,
    train_end: str,
    retrain_at: str,
    decide_at: str,
    daemon_timeout: float,
    data_root: Path,
    pg_url: str | None,
) -> None:
    """The demo: run the whole asset graph on the default data with a line per step, then print the summary."""
    before, after = stages(start, end, train_start, train_end, retrain_at, decide_at)
    started = time.time()
    with open_instance() as instance:
        say(f"==> {os.environ.get('QUANT_SOURCE', 'synthetic')} data for {start}...{end} into {data_root}")
        log = log_path("main")
        say(f"    watch the runs with `quant-assets ui` (http://127.0.0.1:3000/runs); Dagster's log: {log}")
        with stderr_to(log):
            for stage in before:
                run_or_fail(instance, stage, started)
        say("    (alert_levels 'did not pass': the replayed history has critical days, reported as warnings here;")
        say(
            "     price_steps 'did not pass' names large daily moves that were kept: a non-blocking warning to look at)"
        )
        say("==> 5/8 the Dagster daemon until retrain_on_drift has ticked and its retrain run is done")
        daemon_until_done(daemon_timeout, None, started)
        with stderr_to(log):
            for stage in after:
                run_or_fail(instance, stage, started)
    click.echo()
    print_summary(data_root, pg_url)

"""Commands that run assets on the Dagster instance: materialize, backfill, daemon-once and the demo (main)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from quant_assets.cli import inputs
from quant_assets.cli.stage import UI_URL, Stage, log_path, say, stderr_to
from quant_assets.paths import PROJECT_ROOT

WORKSPACE = PROJECT_ROOT / "workspace.yaml"


def open_instance():
    """The persistent instance (runs, events and their UI live there), after failing runs whose worker died."""
    import dagster as dg

    from quant_assets.defs.run_launcher import fail_dead_runs

    if not os.environ.get("DAGSTER_HOME"):
        raise click.ClickException("DAGSTER_HOME is not set: run through ./qa, or export it (see `./qa env`)")
    instance = dg.DagsterInstance.get()
    for run_id, why in fail_dead_runs(instance):
        say(f"run {run_id} marked failed, its pool slots freed: {why}")
    return instance


def _definitions():
    from quant_assets.definitions import defs

    return defs


def run_or_fail(instance, stage: Stage, started: float) -> None:
    """Run a stage; a failed run ends the command with one line naming it and where to look. A run that wrote
    feature partitions is followed by the compaction of the complete months it wrote (``compact_written``)."""
    from quant_assets.cli.launch import run_stage

    run = run_stage(instance, stage, started)
    if run.status.value != "SUCCESS":
        raise click.ClickException(
            f"{stage.title}: run {run.run_id[:8]} {run.status.value}; see {UI_URL}/runs/{run.run_id}"
        )
    if not stage.job:
        compact_written(instance, run.run_id, started)


IN_PROCESS = {"execution": {"config": {"in_process": {}}}}  # one op: a step process would only add its start-up


def compact_written(instance, run_id: str, started: float) -> None:
    """Compact the complete months whose feature partitions the run wrote, as a compaction_job run: what the
    daemon's compact_after_writes sensor does after a run it did not see finish (these runs execute in this
    process, perhaps with no daemon running). The current month waits for the end of the month."""
    from quant_assets.core.features.compaction import complete_months
    from quant_assets.defs.automation import exchange_today, run_months

    months = complete_months(run_months(instance, run_id), exchange_today())
    if months:
        config = {"ops": {"compact_feature_files": {"config": {"months": months}}}, **IN_PROCESS}
        title = f"compaction_job: the {len(months)} complete month(s) written, {months[0]}...{months[-1]}"
        run_or_fail(instance, Stage(title, [], run_config=config, job="compaction_job"), started)


def run_config(files: tuple[Path, ...], text: str | None) -> dict:
    """The -c files merged in order, then --config-json over them (as ``dagster job execute`` merges its -c files);
    a run config that picks the celery executor without dagster-celery installed is refused here, in one line."""
    import yaml
    from dagster import DagsterUnmetExecutorRequirementsError
    from dagster_shared.check import CheckError
    from dagster_shared.merger import deep_merge_dicts
    from dagster_shared.yaml_utils import merge_yamls

    from quant_assets.defs.executor import check_engine

    try:
        merged = merge_yamls([str(f) for f in files])
    except (yaml.YAMLError, CheckError) as exc:  # a parse error, or a file that is not a mapping
        raise inputs.InputError(f"a -c file is not a YAML run config: {str(exc).splitlines()[0]}") from None
    try:
        merged = deep_merge_dicts(merged, json.loads(text) if text else {})
    except json.JSONDecodeError as exc:
        raise inputs.InputError(f"--config-json is not valid JSON ({exc.msg} at character {exc.pos})") from None
    try:
        check_engine(merged)
    except DagsterUnmetExecutorRequirementsError as exc:
        raise click.ClickException(str(exc)) from None
    return merged


config_files = click.option(
    "-c",
    "--config",
    "config_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run config YAML, repeatable, e.g. -c deploy/celery.yaml to run the steps on Celery workers.",
)
config_json = click.option(
    "--config-json", help='Run config as JSON, e.g. \'{"ops": {"drift_metrics": {"config": {...}}}}\'.'
)


@click.command()
@click.argument("assets")
@click.argument("partitions", required=False)
@config_files
@config_json
def materialize(assets: str, partitions: str | None, config_files: tuple[Path, ...], config_json: str | None) -> None:
    """Materialise ASSETS (comma-separated asset names, or one asset job's name such as daily_job, with that job's
    default run config) for PARTITIONS: one session KEY or a range START...END run as one run."""
    span = inputs.partitions(partitions) if partitions else None
    if span:
        inputs.within_partitions(*span)
    config = run_config(config_files, config_json)
    stage = _materialize_stage(assets, span, config, f"materialize {assets} {partitions or ''}".rstrip())
    with open_instance() as instance:
        log = log_path("materialize")
        say(f"    (Dagster's log: {log})")
        with stderr_to(log):
            run_or_fail(instance, stage, time.time())


def _materialize_stage(assets: str, span, config: dict, title: str) -> Stage:
    """The assets named, or the asset job named, with every asset it selects and its default run config under
    ``config`` (daily_job's is the in-process executor: one session's steps are smaller than a process start)."""
    defs = _definitions()
    known = [k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys]
    asset_jobs = (j for j in defs.resolve_all_job_defs() if j.asset_layer.selected_asset_keys)
    jobs = {j.name: j for j in asset_jobs if not j.name.startswith("__")}  # Dagster's own implicit jobs left out
    job = jobs.get(assets.strip())
    if job is not None:
        selected = sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
        return Stage(title, selected, span, config, job.name)
    return Stage(title, inputs.known_names(assets, [*known, *jobs], "asset or job"), span, config)


@click.command()
@click.argument("job")
@click.argument("start")
@click.argument("end")
@config_files
@config_json
def backfill(job: str, start: str, end: str, config_files: tuple[Path, ...], config_json: str | None) -> None:
    """Submit a backfill of JOB over the sessions START..END, one run per session (`quant-assets daemon` runs it)."""
    first, last = inputs.session_range(start, end, separator=" ")
    inputs.within_partitions(first, last)
    config = run_config(config_files, config_json)
    jobs = _definitions().resolve_all_job_defs()
    partitioned = {j.name: j for j in jobs if j.partitions_def is not None and not j.name.startswith("__")}
    (name,) = inputs.known_names(job, partitioned, "partitioned job")
    from quant_assets.cli.launch import submit_backfill

    with open_instance() as instance, stderr_to(log_path("backfill")):  # the code server's log lines
        backfill_id, runs = submit_backfill(instance, WORKSPACE, partitioned[name], (first, last), config)
    say(f"backfill {backfill_id}: {runs} runs of {name} queued; watch them at {UI_URL}/overview/backfills")
    say("(`quant-assets ui` or `quant-assets daemon` runs the daemon, which launches them)")
    say("once it is over, the daemon's compact_after_writes sensor compacts the complete months it wrote")


@click.command("daemon-once")
@click.option("--timeout", type=float, default=1200.0, show_default=True, help="Seconds to wait for tick and runs.")
@click.option("--log", type=click.Path(dir_okay=False, path_type=Path), help="Daemon log (default .state/logs/).")
def daemon_once(timeout: float, log: Path | None) -> None:
    """Run the Dagster daemon until retrain_on_drift has ticked and the runs it requested have finished."""
    daemon_until_done(timeout, log, time.time())


def daemon_until_done(timeout: float, log: Path | None, started: float) -> None:
    from quant_assets.cli.daemon_watch import run_until_ticked

    log = log or log_path("daemon")
    log.parent.mkdir(parents=True, exist_ok=True)
    runs = run_until_ticked(WORKSPACE, log, timeout, started)
    if not runs:
        click.echo("retrain_on_drift ticked and requested no run (no new breach out of cool-down)")
    for r in runs:
        why = {k.removeprefix("quant/"): v for k, v in r.tags.items() if k.startswith("quant/")}
        click.echo(f"retrain_on_drift requested {r.job_name} run {r.run_id[:8]} ({r.status.value}): {why}")
    if not all(r.status.value == "SUCCESS" for r in runs):
        raise click.ClickException(f"the retraining run failed; see the daemon log {log} and {UI_URL}/runs")

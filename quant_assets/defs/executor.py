"""The executor of every job, chosen per run by its run config rather than by the job or the environment:

    execution: {config: {multiprocess: {max_concurrent: 4}}}   # the default: one process per step, forked
    execution: {config: {in_process: {}}}                     # every step in the run's process
    execution: {config: {celery: {broker: ..., backend: ...}}} # one Celery task per step (deploy/celery.yaml)

A multiprocess run whose config names no ``start_method`` starts its step processes from a forkserver that has
imported, once, what every step imports (``PRELOAD``: Dagster's ``forkserver`` start method): each step is then a
fork of a process that already holds them, where ``spawn`` (Dagster's default) started a fresh interpreter that
imported them again, about 5-7 s of CPU per step, more than most steps' work. ``start_method: {spawn: {}}`` in the
run config still picks spawn; where the platform has no forkserver (Windows), spawn is what runs.

The engines are Dagster's own (``multi_or_in_process_executor``) and dagster-celery's ``celery_executor``, with
their own config schemas; this only picks one. Without the 'celery' extra the definitions still load and choosing
celery fails the run with one line saying what to install.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping
from typing import Any

import dagster as dg

CELERY_MISSING = "the celery executor needs dagster-celery, which is not installed: pip install -e '.[celery]'"
DEFAULT_ENGINE = "multiprocess"
# What a step process imports: the definitions; the instance's storage, which each step opens (Dagster's own
# forkserver default, an empty list from the config's default, left the forks to import them: 1.5-3 s a step);
# LightGBM (with scikit-learn and SciPy, 1.3 s), which the definitions leave to the steps that score or train.
PRELOAD = ("quant_assets.definitions", "dagster_postgres", "lightgbm")


def _celery_executor() -> dg.ExecutorDefinition | None:
    """dagster-celery's executor, or None without the 'celery' extra (imported when asked, so a test can hide it)."""
    try:
        from dagster_celery import celery_executor
    except ImportError:
        return None
    return celery_executor


def engine_config(run_config: Mapping[str, Any], engine: str) -> dict | None:
    """The config ``run_config`` gives ``engine`` ({} for an empty block), or None if it does not select it; a run
    config that selects no engine selects multiprocess."""
    chosen = (run_config.get("execution") or {}).get("config") or {DEFAULT_ENGINE: {}}
    return dict(chosen[engine] or {}) if engine in chosen else None


def check_engine(run_config: Mapping[str, Any]) -> None:
    """Fail early, with the run's own one line, when the run config selects celery and dagster-celery is missing."""
    if engine_config(run_config, "celery") is not None:
        _installed_celery()


def _installed_celery() -> dg.ExecutorDefinition:
    """dagster-celery's executor, or the one line that says how to install it."""
    celery = _celery_executor()
    if celery is None:
        raise dg.DagsterUnmetExecutorRequirementsError(CELERY_MISSING)
    return celery


def _schema() -> dg.Field:
    """Dagster's multiprocess/in_process selector with a ``celery`` branch: dagster-celery's schema when it is
    installed, any mapping when it is not (so the run reaches the one-line error, not a config error)."""
    local = dg.multi_or_in_process_executor.config_schema.config_type
    celery = _celery_executor()
    celery_field = celery.config_schema.as_field() if celery else dg.Field(dg.Permissive(), is_required=False)
    return dg.Field(dg.Selector({**local.fields, "celery": celery_field}), default_value={DEFAULT_ENGINE: {}})


def _requirements(config: Mapping[str, object]) -> list[dg.ExecutorRequirement]:
    """Celery and multiprocess steps run in other processes: a reconstructable job and a persistent instance."""
    if "celery" in config:
        return list(dg.multiple_process_executor_requirements())
    return list(dg.multi_or_in_process_executor.get_requirements(config))


@dg.executor(name="in_process_multiprocess_or_celery", config_schema=_schema(), requirements=_requirements)
def engine_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """The executor the run config names, built by its own package's creation function."""
    ((engine, config),) = init_context.executor_config.items()
    if engine == "celery":
        celery = _installed_celery()
        return celery.executor_creation_fn(init_context._replace(executor_def=celery, executor_config=config))
    if engine == "multiprocess":
        init_context = init_context._replace(executor_config={engine: with_start_method(config)})
    return dg.multi_or_in_process_executor.executor_creation_fn(init_context)


def with_start_method(config: Mapping[str, Any]) -> dict:
    """The multiprocess config with the forkserver start method, preloading ``PRELOAD``, where it names none and
    the platform has one (see the module docstring: a step forks from the loaded definitions instead of importing
    them again)."""
    if config.get("start_method") or "forkserver" not in multiprocessing.get_all_start_methods():
        return dict(config)
    return {**config, "start_method": {"forkserver": {"preload_modules": list(PRELOAD)}}}

"""Pipeline files (``.agola/config.*``): load, validate, and turn into run configs.

Pure functions with no service I/O, shared by the gateway (run creation) and the CLI::

    from agola.pipeline import RunContext, load_pipeline, generate_run_configs

    ctx = RunContext.for_branch("master", commit_sha=sha)
    config = load_pipeline({".agola/config.yml": data}, ctx)   # or a directory
    runs = generate_run_configs(config, ctx, commit_message, variables)
    for run in runs:
        create_run(name=run.name, run_config_tasks=run.tasks_json())

Errors: ``PipelineError`` (a ``BadRequest``) with ``.errors``, a list of ``LocatedError``
(file, line, column, path, message, hint); ``PipelineNotFound`` (a ``NotExist``) when the
repository has no pipeline file. Cache key templates: ``agola.pipeline.cachekey``.
"""

from __future__ import annotations

from agola.pipeline.cachekey import CacheKeyError, CacheKeyTemplate, RenderEnv
from agola.pipeline.cachekey import parse as parse_cache_key
from agola.pipeline.cachekey import render as render_cache_key
from agola.pipeline.cachekey import render_async as render_cache_key_async
from agola.pipeline.context import RunContext
from agola.pipeline.errors import Loc, LocatedError, PipelineError, PipelineNotFound
from agola.pipeline.load import (
    CONFIG_FILES,
    CONFIG_PATHS,
    DEFAULT_LIMITS,
    MAX_CONFIG_SIZE,
    EvalLimits,
    config_format,
    load_pipeline,
    load_pipeline_async,
    parse_pipeline,
)
from agola.pipeline.runconfig import (
    GeneratedRun,
    ci_skip,
    generate_run,
    generate_run_configs,
    random_id,
    run_matches,
)
from agola.pipeline.schema import ConfigFormat, PipelineConfig
from agola.pipeline.when import match_when

__all__ = [
    "CONFIG_FILES",
    "CONFIG_PATHS",
    "DEFAULT_LIMITS",
    "MAX_CONFIG_SIZE",
    "CacheKeyError",
    "CacheKeyTemplate",
    "ConfigFormat",
    "EvalLimits",
    "GeneratedRun",
    "Loc",
    "LocatedError",
    "PipelineConfig",
    "PipelineError",
    "PipelineNotFound",
    "RenderEnv",
    "RunContext",
    "ci_skip",
    "config_format",
    "generate_run",
    "generate_run_configs",
    "load_pipeline",
    "load_pipeline_async",
    "match_when",
    "parse_cache_key",
    "parse_pipeline",
    "random_id",
    "render_cache_key",
    "render_cache_key_async",
    "run_matches",
]

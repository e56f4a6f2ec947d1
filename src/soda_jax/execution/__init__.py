"""Marin-style executor: experiments as DAGs of versioned steps, run once each, with provenance."""

from soda_jax.execution.executor import Executor, ExecutorError, RunReport
from soda_jax.execution.main import ExecutorMainConfig, executor_main, run_experiment
from soda_jax.execution.status import (
    STATUS_DEP_FAILED,
    STATUS_FAILED,
    STATUS_RUNNING,
    STATUS_SUCCESS,
    LeaseTiming,
)
from soda_jax.execution.step import (
    THIS_OUTPUT_PATH,
    ExecutorStep,
    InputName,
    OutputName,
    PrefixPath,
    Resources,
    VersionedValue,
    output_path_of,
    prefix_path,
    this_output_path,
    versioned,
)

__all__ = [
    "Executor",
    "ExecutorError",
    "ExecutorMainConfig",
    "ExecutorStep",
    "InputName",
    "LeaseTiming",
    "OutputName",
    "PrefixPath",
    "Resources",
    "RunReport",
    "STATUS_DEP_FAILED",
    "STATUS_FAILED",
    "STATUS_RUNNING",
    "STATUS_SUCCESS",
    "THIS_OUTPUT_PATH",
    "VersionedValue",
    "executor_main",
    "output_path_of",
    "prefix_path",
    "run_experiment",
    "this_output_path",
    "versioned",
]

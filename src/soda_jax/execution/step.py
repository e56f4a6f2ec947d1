"""What an experiment is made of: steps, their inputs and outputs, and versioned values.

An `ExecutorStep` is a function plus one config (a frozen dataclass). Inside the config:

- ``versioned(v)`` marks a value that defines the step's identity: change it and the step gets a
  new output path (a new "version"). Unmarked values are free to change (batch sizes for speed,
  logging) without re-running anything.
- ``this_output_path("sub")`` stands for a path inside the step's own output directory.
- ``step / "sub"`` (or ``output_path_of(step, "sub")``) is an `InputName`: a path inside another
  step's output. It makes that step a dependency, and its version part of this one.
- ``(step / "sub").nonblocking()`` is a pseudo-dependency: versioned, but not waited for (e.g.
  reading checkpoints of a training run still in progress).

When the step runs, these placeholders are replaced by concrete values and paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class Resources:
    """What a step needs from the machine that runs it (a Ray task's resource request)."""

    cpus: float = 1
    """CPU cores reserved for the step."""
    gpu: float = 0
    """GPUs reserved for the step (Ray's ``num_gpus``; a fraction shares one). Ray makes only those
    visible to the task (``CUDA_VISIBLE_DEVICES``). A local run without GPUs drops the request, saying so."""
    tpu: str | None = None
    """A TPU slice type such as ``"v5p-64"``: on a Ray cluster the step runs on every host of such
    a slice, one process each (`soda_jax.execution.tpu`), waiting up to ``tpu_wait_s`` for it;
    it never falls back to CPU there. Only a local run (no cluster address) runs it on CPU, saying so.
    The step's function runs on every host; `soda_jax.execution.tpu.current_host` tells it which."""
    memory_gb: float | None = None
    """Host memory to reserve, if the scheduler should account for it."""
    slices: int = 1
    """TPU slices joined over DCN (multislice); levanter's ``replica_dcn`` mesh axis spans them."""
    tpu_wait_s: float = 3600.0
    """How long a TPU request waits for its slices (autoscaler start-up included) before failing."""
    preemption_retries: int = 3
    """Restarts after a host of the slice dies (a training step resumes from its last checkpoint, a
    tokenization from its finished shards); each attempt is recorded."""
    preflight: Callable[[Any, Resources], Resources] | None = None
    """Run on the driver with ``(config, resources)`` before a TPU slice is requested; returns the
    `Resources` to run with (the same, or another slice: `soda_jax.aot.preflight.SmallestFittingSlice`)
    or raises to stop the step there (`soda_jax.aot.preflight.compile_check_train`: the step must fit)."""


@dataclass(frozen=True, eq=False)
class ExecutorStep(Generic[ConfigT]):
    """One node of an experiment's DAG: ``fn(config)`` writing under its output path."""

    name: str
    """Path-like name with a category prefix, e.g. ``"tokenized/yodas2"``: the output lands in
    ``{prefix}/{name}-{hash}``."""
    fn: Callable[[ConfigT], Any]
    """The function to run; it receives the config with every placeholder made concrete."""
    config: ConfigT
    """A (frozen) dataclass holding `versioned` values, `InputName`s and `OutputName`s."""
    description: str | None = None
    """One line for dry runs and the dashboard."""
    resources: Resources = Resources()
    """Where the step may run (CPU and GPU count, TPU slice)."""
    override_output_path: str | None = None
    """Pin the output path (absolute, or relative to the prefix) instead of deriving it."""

    def __truediv__(self, subpath: str) -> InputName:
        return InputName(self, subpath)

    def cd(self, subpath: str) -> InputName:
        return InputName(self, subpath)

    def with_output_path(self, path: str) -> ExecutorStep[ConfigT]:
        return dataclasses.replace(self, override_output_path=path)

    def __repr__(self) -> str:
        return f"ExecutorStep({self.name!r})"


@dataclass(frozen=True)
class InputName:
    """A path inside another step's output (``step`` None: a path relative to the prefix)."""

    step: ExecutorStep | None
    """The step producing the path; it becomes a dependency."""
    subpath: str | None = None
    """Path inside that step's output directory ("" or None: the directory itself)."""
    blocking: bool = True
    """False for a pseudo-dependency: part of the version, but not run or waited for."""

    def __truediv__(self, subpath: str) -> InputName:
        joined = f"{self.subpath.rstrip('/')}/{subpath}" if self.subpath else subpath
        return dataclasses.replace(self, subpath=joined)

    def nonblocking(self) -> InputName:
        return dataclasses.replace(self, blocking=False)

    @staticmethod
    def hardcoded(path: str) -> InputName:
        """A path relative to the prefix that no step of this experiment produces (use sparingly)."""
        return InputName(None, path)


@dataclass(frozen=True)
class OutputName:
    """A path inside the running step's own output directory."""

    subpath: str | None = None


@dataclass(frozen=True)
class PrefixPath:
    """A path under the executor's prefix that no step produces and no step's result depends on
    (a shared compilation cache): resolved like an input, never part of a version."""

    subpath: str


@dataclass(frozen=True)
class VersionedValue(Generic[T]):
    """A config value that is part of the step's version."""

    value: T


def versioned(value: T) -> Any:
    """Mark ``value`` as defining the step: changing it changes the output path.

    Typed ``Any`` like `this_output_path`: the `VersionedValue` stands in a config field typed as
    ``value``'s type and is replaced by ``value`` before the step runs."""
    if isinstance(value, (VersionedValue, InputName, OutputName, PrefixPath)):
        raise TypeError(f"cannot version a {type(value).__name__}: it is already part of the version")
    return VersionedValue(value)


def this_output_path(subpath: str | None = None) -> Any:
    """The running step's output directory (or a path inside it)."""
    return OutputName(subpath)


def prefix_path(subpath: str) -> Any:
    """``{prefix}/{subpath}`` when the step runs, outside every version (`PrefixPath`)."""
    return PrefixPath(subpath)


def output_path_of(step: ExecutorStep, subpath: str | None = None) -> InputName:
    """A path inside ``step``'s output; the same as ``step / subpath``."""
    return InputName(step, subpath)


THIS_OUTPUT_PATH: Any = OutputName(None)
"""Constant form of `this_output_path()`, handy as a dataclass field default."""

"""The one way a benchmark saves its results: ``benchmarks/results/<name>.json``, stamped with provenance.

`write_results` adds to the benchmark's own report

* ``git``: the commit and whether the checkout was dirty (`soda_jax.execution.provenance.git_state`);
* ``machine``: where it ran (`machine`);
* ``load``: the 1-minute load average before and after the run (`Load`). The machine is shared: a result
  taken when the load before it was above `COMPARABLE_LOAD` is marked not comparable (its ratios to
  baselines measured in the same run still are, roughly);

and writes the file atomically (`soda_jax.fileio.atomic_write_json`): a reader, or a run that fails while
writing, never leaves a partial file.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import socket
import sys
from typing import Any

from soda_jax.execution.provenance import git_state
from soda_jax.fileio import atomic_write_json, read_json_or_none

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
"""Where the benchmarks' result files live (committed with the figures quoted in docs/)."""
STAMPS = ("git", "machine", "load")
"""The keys `write_results` adds to every report (a report may not carry its own)."""
COMPARABLE_LOAD = 1.5
"""Load average (1 minute, before the run) above which the 2-core machine is busy with other work:
results are recorded but marked not comparable."""
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS")
"""Environment variables that set the threads or devices torch, numpy and JAX use, recorded when set."""


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


@dataclasses.dataclass
class Load:
    """The load a benchmark ran under: create it before the runs, `finish` it after."""

    before: float = dataclasses.field(default_factory=load_average)
    """1-minute load average when the run started."""
    after: float | None = None
    """1-minute load average when it ended (None until `finish`)."""

    def finish(self) -> Load:
        self.after = load_average()
        return self

    @property
    def comparable(self) -> bool:
        """Whether the machine was idle enough (load before the run <= `COMPARABLE_LOAD`)."""
        return self.before <= COMPARABLE_LOAD

    def record(self) -> dict:
        """The JSON record: loads, the threshold, and whether the figures are comparable."""
        return {
            "load_before": self.before,
            "load_after": self.after,
            "cpus": os.cpu_count(),
            "comparable_load_limit": COMPARABLE_LOAD,
            "comparable": self.comparable,
        }

    def banner(self) -> str:
        """One line for the console."""
        verdict = "comparable" if self.comparable else f"NOT comparable (load above {COMPARABLE_LOAD} before the run)"
        after = "?" if self.after is None else f"{self.after:.2f}"
        return f"load average {self.before:.2f} before, {after} after: {verdict}"


def machine() -> dict[str, Any]:
    """Where the figures were measured: host, OS, processor, CPUs (all, and those this process may use), and
    the versions and thread settings of torch and JAX if the benchmark imported them (never imported here)."""
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
    }
    thread_env = {name: os.environ[name] for name in THREAD_ENV if name in os.environ}
    if thread_env:
        info["thread_env"] = thread_env
    torch = sys.modules.get("torch")
    if torch is not None:
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    jax = sys.modules.get("jax")
    if jax is not None:
        info["jax"] = jax.__version__
    return info


def results_path(name: str, directory: str | os.PathLike = RESULTS_DIR) -> str:
    """``<directory>/<name>.json``; ``name`` is a bare file stem such as ``bench_codec``."""
    if not name or os.path.basename(name) != name or name.endswith(".json"):
        raise ValueError(f"a result name is a bare file stem like 'bench_codec', not {name!r}")
    return os.path.join(os.fspath(directory), f"{name}.json")


def write_results(name: str, report: dict, load: Load, directory: str | os.PathLike = RESULTS_DIR) -> str:
    """Write ``report`` to ``<directory>/<name>.json``, atomically, with `STAMPS` added; returns the path.

    ``load`` is finished here if the benchmark did not finish it itself.
    """
    path = results_path(name, directory)
    shadowed = sorted(set(STAMPS) & report.keys())
    if shadowed:
        raise ValueError(f"{name}: the report carries its own {shadowed}; write_results adds those")
    if load.after is None:
        load.finish()
    os.makedirs(os.fspath(directory), exist_ok=True)
    atomic_write_json(path, {**report, "git": git_state(), "machine": machine(), "load": load.record()})
    return path


def previous_report(name: str, directory: str | os.PathLike = RESULTS_DIR) -> Any | None:
    """The report last written under ``name`` without its stamps (they describe that run, not the next
    one), for a benchmark that adds to its previous results; None if there is none."""
    saved = read_json_or_none(results_path(name, directory))
    if isinstance(saved, dict):
        return {k: v for k, v in saved.items() if k not in STAMPS}
    return saved

"""Provenance: where, when, with what code and packages a step ran, and how it ended.

Written by the process that runs the step (a Ray worker or the executor itself) to
``{output}/.provenance.json``, atomically, once when the step starts and once when it ends.
Earlier attempts are kept in ``previous_attempts`` so a re-run never hides a failure; one that was
still RUNNING when the next attempt started (killed, or taken over after its lease went stale) is
closed there as ``TAKEN_OVER``, with the time of the takeover.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import PROVENANCE_FILE
from soda_jax.execution.failures import Failure, describe_failure

TAKEN_OVER = "TAKEN_OVER"
"""Status of an earlier attempt that never finished: a later attempt took the step over."""
TRACKED_PACKAGES = (
    "soda-jax", "jax", "jaxlib", "marin-levanter", "marin-haliax", "equinox", "optax",
    "tensorstore", "ray", "torch", "transformers", "numpy", "fsspec", "gcsfs",
)  # fmt: skip


@functools.cache
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def git_state(directory: str | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding ``directory`` (default: soda_jax's source)."""
    directory = directory or os.path.dirname(os.path.abspath(__file__))

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip())
        return out.stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "root": git("rev-parse", "--show-toplevel"),
        }
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return {"commit": None, "dirty": None, "error": str(e)[:200]}


def device_info() -> dict[str, Any]:
    """Accelerators as JAX sees them, if the step used JAX; never imports JAX just to ask."""
    info: dict[str, Any] = {"cpu_count": os.cpu_count()}
    jax = sys.modules.get("jax")
    if jax is None:
        info["jax"] = "not used by this step"
        return info
    try:
        devices = jax.devices()
        info.update(platform=devices[0].platform, device_kind=devices[0].device_kind, device_count=len(devices))
    except Exception as e:  # a broken backend must not hide the step's own result
        info["jax_error"] = str(e)[:200]
    return info


def runner() -> str:
    """"ray worker" when this process is a Ray worker, else "in-process"."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        if ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
            return "ray worker"
    return "in-process"


def now_iso(timestamp: float | None = None) -> str:
    return datetime.fromtimestamp(timestamp or time.time(), tz=UTC).isoformat()


class StepRecorder:
    """Context manager writing a step's provenance when it starts and when it ends."""

    def __init__(self, output_path: str, step_name: str, extra: dict[str, Any] | None = None):
        self.url = fileio.join(output_path, PROVENANCE_FILE)
        self.step_name = step_name
        self.extra = extra or {}
        """Further fields of the record (a TPU step's attempt number and hosts)."""
        self.record: dict[str, Any] = {}

    def __enter__(self) -> StepRecorder:
        previous = fileio.read_json_or_none(self.url)
        history = []
        self.start = time.time()
        if previous is not None:
            history = previous.pop("previous_attempts", [])
            if previous.get("status") == "RUNNING":
                previous.update(status=TAKEN_OVER, ended_at=now_iso(self.start), taken_over_by=socket.gethostname() + f":{os.getpid()}")
            history.append(previous)
        self.record = {
            "step": self.step_name,
            "status": "RUNNING",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "runner": runner(),
            "git": git_state(),
            "packages": package_versions(),
            "started_at": now_iso(self.start),
            "previous_attempts": history,
            **self.extra,
        }
        fileio.atomic_write_json(self.url, self.record)
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        end = time.time()
        self.record.update(
            status="SUCCESS" if exc is None else "FAILED",
            ended_at=now_iso(end),
            duration_s=round(end - self.start, 3),
            devices=device_info(),
        )
        if exc is not None:
            self.record["error"] = describe_failure(exc).as_json()
        fileio.atomic_write_json(self.url, self.record)


def mark_died(output_path: str, failure: Failure, *, over_failed: bool = False) -> None:
    """Close a provenance record left RUNNING by a worker that died without finishing it.

    ``over_failed``: also take over a record its own process closed as FAILED because of that death
    (on a multi-host step the surviving host fails in a collective when a peer dies: the death is
    the cause, the survivor's error is kept as the record's ``error.symptom``)."""
    url = fileio.join(output_path, PROVENANCE_FILE)
    record = fileio.read_json_or_none(url)
    status = None if record is None else record.get("status")
    if record is None or not (status == "RUNNING" or (over_failed and status == "FAILED")):
        return
    error = {**failure.as_json(), "type": f"WorkerDied ({failure.type})"}
    if status == "FAILED":
        error["symptom"] = record.get("error")
    record.update(status="FAILED", ended_at=record.get("ended_at") if status == "FAILED" else now_iso(), error=error)
    fileio.atomic_write_json(url, record)

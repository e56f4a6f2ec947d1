"""Provenance: where, when, with what code and packages a step ran, and how it ended.

Written by the process that runs the step (a Ray worker or the executor itself) to
``{output}/.provenance.json``, atomically, once when the step starts and once when it ends.
Earlier attempts are kept in ``previous_attempts`` so a re-run never hides a failure; one that was
still RUNNING when the next attempt started (killed, or taken over after its lease went stale) is
closed there as ``TAKEN_OVER``, with the time of the takeover.

A step reading raw data (a fixed input: `soda_jax.execution.versioning.fixed_inputs`) also records
what it found there: `record_inputs` lists every file under each input with its size and whatever
content identity the filesystem offers (sha256 and git blob id on the hub, md5/crc32c/generation
on GCS, ETag on S3, mtime on a local disk), writes that listing to ``{output}/.inputs.json``, puts
a summary (files, bytes, digest) in the provenance record, and reports the files that changed since
the step's previous attempt (``input_changes``, and the executor's log and dry run).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import INPUTS_FILE, PROVENANCE_FILE
from soda_jax.execution.failures import Failure, describe_failure

logger = logging.getLogger(__name__)

TAKEN_OVER = "TAKEN_OVER"
"""Status of an earlier attempt that never finished: a later attempt took the step over."""
TRACKED_PACKAGES = (
    "soda-jax",
    "jax",
    "jaxlib",
    "marin-levanter",
    "marin-haliax",
    "equinox",
    "optax",
    "tensorstore",
    "ray",
    "torch",
    "transformers",
    "numpy",
    "fsspec",
    "gcsfs",
)


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
    """ "ray worker" when this process is a Ray worker, else "in-process"."""
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
                previous.update(
                    status=TAKEN_OVER,
                    ended_at=now_iso(self.start),
                    taken_over_by=socket.gethostname() + f":{os.getpid()}",
                )
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


# -- what a step read (`INPUTS_FILE`, beside ``.provenance.json``: every fixed input's file listing,
# as the step's latest attempt found it) ---------------------------------------------------------

CONTENT_KEYS = ("sha256", "blob_id", "md5Hash", "crc32c", "ETag", "etag", "generation", "mtime")
"""Facts of a file listing that change with its content, as the filesystems name them (hub LFS
sha256 and git blob id, GCS md5/crc32c/etag/generation, S3 ETag, local mtime): all present are kept."""
CHANGES_NAMED = 5
"""Changed files named per input in a report (all are counted)."""


def file_facts(info: Mapping[str, Any]) -> dict[str, Any]:
    """Size and content identity of one listed file (``fs.info`` / ``fs.find(detail=True)``)."""
    facts: dict[str, Any] = {"size": info.get("size")}
    lfs = info.get("lfs")
    if isinstance(lfs, Mapping) and lfs.get("sha256"):
        facts["sha256"] = lfs["sha256"]
    for key in CONTENT_KEYS:
        value = info.get(key)
        if value is not None and value != "" and key not in facts:
            facts[key] = value if isinstance(value, (int, float, str)) else str(value)
    return facts


def fingerprint_input(location: str) -> dict[str, Any]:
    """Every file under ``location`` (a file: itself) with its `file_facts`, and a digest of them all.

    Raises FileNotFoundError when nothing is there.
    """
    fs, path = fileio.filesystem(location)
    fs.invalidate_cache(path)  # a long-lived driver must see the input as it is now
    if not fs.exists(path):
        raise FileNotFoundError(f"{location}: no such file or directory")
    if fs.isfile(path):
        listing = {path.rstrip("/").rsplit("/", 1)[-1]: file_facts(fs.info(path))}
    else:
        root = path.rstrip("/") + "/"
        found = fs.find(path, detail=True)
        listing = {name.removeprefix(root): file_facts(info) for name, info in found.items()}
    blob = json.dumps(listing, sort_keys=True, separators=(",", ":"), default=str).encode()
    return {
        "url": location,
        "files": len(listing),
        "bytes": sum(f["size"] or 0 for f in listing.values()),
        "digest": hashlib.sha256(blob).hexdigest(),
        "listing": listing,
    }


def input_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """How one input's listing changed: counts of added, removed and changed files, the first few
    named (``+ path``, ``- path``, ``~ path: size 10 -> 12``); {} when nothing changed."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    if not (added or removed or changed):
        return {}

    def difference(path: str) -> str:
        old, new = before[path], after[path]
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return f"~ {path}: " + ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in keys)

    named = [f"+ {p}" for p in added] + [f"- {p}" for p in removed] + [difference(p) for p in changed]
    counts = {"added": len(added), "removed": len(removed), "changed": len(changed)}
    return {**counts, "examples": named[:CHANGES_NAMED]}


def describe_changes(changes: Mapping[str, Any]) -> str:
    """One line for a log or a dry run: ``2 changed, 1 added (~ a.tar: size 10 -> 12; + b.tar)``."""
    counts = ", ".join(f"{changes[k]} {k}" for k in ("changed", "added", "removed") if changes.get(k))
    return f"{counts} ({'; '.join(changes.get('examples', []))})"


def recorded_changes(recorded: Mapping[str, Any], current: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Field -> `input_changes` for each fingerprint in ``current`` that differs from the listing
    ``recorded`` (an `INPUTS_FILE`) holds for its field; a field recorded nowhere is not compared."""
    changes = {}
    for field_path, fingerprint in current.items():
        before = recorded.get(field_path)
        if isinstance(before, dict) and isinstance(before.get("listing"), dict):
            diff = input_changes(before["listing"], fingerprint["listing"])
            if diff:
                changes[field_path] = diff
    return changes


def changed_inputs(output_path: str, inputs: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """How each fixed input (field -> location) differs now from what the step's latest attempt
    recorded; reads only (a dry run). Nothing recorded: nothing to compare."""
    recorded = fileio.read_json_or_none(fileio.join(output_path, INPUTS_FILE)) or {}
    current = {f: fingerprint_input(location) for f, location in inputs.items() if f in recorded}
    return recorded_changes(recorded, current)


def record_inputs(output_path: str, inputs: Mapping[str, str]) -> dict[str, Any]:
    """Fingerprint a step's fixed inputs (field -> location) as it starts: write the listings to
    `INPUTS_FILE`, log what changed since the previous attempt, and return the provenance fields
    (``inputs``: url, files, bytes, digest per field; ``input_changes`` when something changed)."""
    url = fileio.join(output_path, INPUTS_FILE)
    current = {f: fingerprint_input(location) for f, location in inputs.items()}
    changes = recorded_changes(fileio.read_json_or_none(url) or {}, current)
    for field_path, diff in changes.items():
        logger.warning(
            "%s: %s changed since the previous attempt read it: %s",
            output_path,
            current[field_path]["url"],
            describe_changes(diff),
        )
    fileio.atomic_write_json(url, current)
    record: dict[str, Any] = {
        "inputs": {f: {k: v for k, v in fp.items() if k != "listing"} for f, fp in current.items()}
    }
    if changes:
        record["input_changes"] = changes
    return record

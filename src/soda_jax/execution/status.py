"""Step status and the lease that keeps two executors from running the same step at once.

Next to each step's output:

- ``.executor_status`` holds ``{"status", "time"}``, status one of RUNNING, SUCCESS, FAILED,
  DEP_FAILED.
- ``.executor_lease`` holds ``{"owner", "heartbeat", "fence", "generation"}``. The executor running
  the step refreshes the heartbeat every ``heartbeat_s``; a lease not refreshed for ``stale_after_s``
  (its holder was killed, or paused) may be taken over.
- ``fence`` is the lease's fencing token: one more at every acquisition, unchanged by refreshes.
  Every commit of an attempt (status, done markers, shard renames, summary) first checks that the
  lease still carries its owner and fence (`StepLease.check`, and `soda_jax.execution.fencing` for
  the step's own writes), so an attempt that was taken over can no longer commit anything.

Every lease change is a compare-and-swap on a generation number, so of two executors racing
(threads, processes or hosts) exactly one wins:

- local disk: the generation lives in the file, and ``flock`` makes read-compare-write atomic;
- GCS: the object generation, with ``if_generation_match`` preconditions (GCS has no locks);
- other fsspec stores (``memory://`` in tests): the generation in the content, guarded by a
  process-wide lock (safe between threads of one process only).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Literal, NamedTuple, Protocol, TypeGuard, overload

from fsspec.implementations.local import LocalFileSystem

from soda_jax import fileio
from soda_jax.contracts import LEASE_FILE, STATUS_FILE

logger = logging.getLogger(__name__)

STATUS_RUNNING = "RUNNING"
STATUS_SUCCESS = "SUCCESS"
STATUS_FAILED = "FAILED"
STATUS_DEP_FAILED = "DEP_FAILED"
STATUS_WAITING = "WAITING"
"""No status file yet: the step has not started (a tolerant `read_status`'s reading)."""
STATUS_UNKNOWN = "UNKNOWN"
"""The status file exists but cannot be read (a tolerant `read_status`'s reading)."""


@dataclass(frozen=True)
class LeaseTiming:
    """How often a running step proves it is alive, and when silence means it died."""

    heartbeat_s: float = 30.0
    """Seconds between lease refreshes by the executor running the step."""
    stale_after_s: float = 90.0
    """Seconds without a refresh after which another executor may take the step over."""


class LeaseLost(RuntimeError):
    """This attempt's lease was taken over: it must not commit anything more to the step."""


@dataclass(frozen=True)
class Lease:
    owner: str | None
    """Who holds the step (host/pid/thread), or None once released."""
    heartbeat: float
    """Unix time of the last refresh."""
    fence: int = 0
    """Fencing token: one more at every acquisition, kept by refreshes and release."""

    def held_by_other(self, owner: str, timing: LeaseTiming) -> bool:
        fresh = time.time() - self.heartbeat <= timing.stale_after_s
        return self.owner is not None and self.owner != owner and fresh


class LeaseStore(Protocol):
    url: str
    """The lease file."""

    def read(self) -> tuple[int, Lease | None]:
        """The current generation (0: no lease file) and lease."""

    def write(self, lease: Lease, if_generation: int) -> bool:
        """Write ``lease`` if the generation is still ``if_generation``; False if someone else moved it."""


class FileLeaseStore:
    """Generation kept inside the file; read-compare-write under a mutex (flock or a process lock)."""

    _process_lock = threading.Lock()

    def __init__(self, url: str):
        self.url = url
        self.fs, self.path = fileio.filesystem(url)
        self.local = isinstance(self.fs, LocalFileSystem)

    def _decode(self, raw: str) -> tuple[int, Lease | None]:
        if not raw.strip():
            return 0, None
        data = json.loads(raw)
        return int(data["generation"]), lease_from_json(data)

    def read(self) -> tuple[int, Lease | None]:
        if self.local:
            try:
                with open(self.path) as f:
                    fcntl.flock(f.fileno(), fcntl.LOCK_SH)
                    return self._decode(f.read())
            except FileNotFoundError:
                return 0, None
        with self._process_lock:
            return self._read_unlocked()

    def _read_unlocked(self) -> tuple[int, Lease | None]:
        try:
            return self._decode(fileio.read_text(self.url))
        except FileNotFoundError:
            return 0, None

    def write(self, lease: Lease, if_generation: int) -> bool:
        if self.local:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "a+") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                f.seek(0)
                generation, _ = self._decode(f.read())
                if generation != if_generation:
                    return False
                f.seek(0)
                f.truncate()
                f.write(json.dumps({**asdict(lease), "generation": generation + 1}))
                f.flush()
                os.fsync(f.fileno())
                return True
        with self._process_lock:
            generation, _ = self._read_unlocked()
            if generation != if_generation:
                return False
            fileio.atomic_write_text(self.url, json.dumps({**asdict(lease), "generation": generation + 1}))
            return True


class GcsLeaseStore:
    """Object generation + ``if_generation_match`` preconditions (0 = the object must not exist),
    through google-cloud-storage's public API (gcsfs offers only create-if-absent)."""

    READ_ATTEMPTS = 3
    """Reads retried when the object is replaced between reading its metadata and its body."""

    def __init__(self, url: str):
        from google.cloud import storage

        self.url = url
        self.fs, path = fileio.filesystem(url)
        bucket, _, self.key = path.partition("/")
        self.bucket = storage.Client().bucket(bucket)

    def read(self) -> tuple[int, Lease | None]:
        from google.api_core.exceptions import NotFound

        for _ in range(self.READ_ATTEMPTS):
            blob = self.bucket.get_blob(self.key)
            if blob is None:
                return 0, None
            generation = int(blob.generation)  # before the download, which refreshes the blob's fields
            try:
                body = blob.download_as_bytes(if_generation_match=generation)
            except NotFound:
                continue  # replaced or deleted since get_blob: read again
            data = json.loads(body)
            return generation, lease_from_json(data)
        raise RuntimeError(f"{self.url}: the lease kept changing while it was read")

    def write(self, lease: Lease, if_generation: int) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        try:
            self.bucket.blob(self.key).upload_from_string(
                json.dumps(asdict(lease)).encode(), content_type="application/json", if_generation_match=if_generation
            )
        except PreconditionFailed:
            return False
        self.fs.invalidate_cache(fileio.parent(self.url))  # gcsfs readers list the new object
        return True


def lease_store(url: str) -> LeaseStore:
    protocol = fileio.filesystem(url)[0].protocol
    protocols = {protocol} if isinstance(protocol, str) else set(protocol)
    if protocols & {"gs", "gcs"}:
        return GcsLeaseStore(url)
    if not fileio.is_local(url) and not protocols & {"memory"}:
        logger.warning("%s: no compare-and-swap on this store; the lease only excludes threads of one process", url)
    return FileLeaseStore(url)


def lease_from_json(data: dict) -> Lease:
    return Lease(owner=data["owner"], heartbeat=float(data["heartbeat"]), fence=int(data.get("fence", 0)))


class StepLease:
    """Acquire, refresh and release the lease of one step's output directory."""

    def __init__(self, output_path: str, owner: str, timing: LeaseTiming):
        self.output_path = output_path
        self.store = lease_store(fileio.join(output_path, LEASE_FILE))
        self.owner = owner
        self.timing = timing
        self.fence: int | None = None
        """Our fencing token while we hold the lease."""

    def holder(self) -> Lease | None:
        """The lease if someone other than us holds it and it is fresh."""
        _, lease = self.store.read()
        return lease if lease is not None and lease.held_by_other(self.owner, self.timing) else None

    def try_acquire(self) -> bool:
        """Take the lease if it is free, released, stale, or already ours."""
        generation, lease = self.store.read()
        if lease is not None and lease.held_by_other(self.owner, self.timing):
            return False
        if lease is not None and lease.owner not in (None, self.owner):
            logger.warning("taking over stale lease of %s on %s", lease.owner, self.store.url)
        fence = (lease.fence if lease is not None else 0) + 1
        if not self.store.write(Lease(self.owner, time.time(), fence), generation):
            return False
        self.fence = fence
        return True

    def _ours(self, lease: Lease | None) -> TypeGuard[Lease]:
        return lease is not None and self.fence is not None and (lease.owner, lease.fence) == (self.owner, self.fence)

    def refresh(self) -> bool:
        """Renew our heartbeat; False if the lease was lost (taken over after going stale)."""
        generation, lease = self.store.read()
        if not self._ours(lease):
            return False
        assert self.fence is not None  # _ours checked it
        return self.store.write(Lease(self.owner, time.time(), self.fence), generation)

    def check(self) -> None:
        """Raise `LeaseLost` unless we still hold the lease with our fence: call before each commit."""
        _, lease = self.store.read()
        if not self._ours(lease):
            holder = f"{lease.owner} (fence {lease.fence})" if lease is not None else "nobody"
            raise LeaseLost(
                f"{self.output_path}: this attempt ({self.owner}, fence {self.fence}) was taken over;"
                f" the lease is now held by {holder}: not committing"
            )

    def release(self) -> None:
        generation, lease = self.store.read()
        if self._ours(lease):
            self.store.write(Lease(None, time.time(), lease.fence), generation)


class Heartbeat:
    """Background thread refreshing a lease while a step runs."""

    def __init__(self, lease: StepLease):
        self.lease = lease
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"heartbeat-{lease.owner}")

    def _loop(self) -> None:
        while not self._stop.wait(self.lease.timing.heartbeat_s):
            try:
                if not self.lease.refresh():
                    logger.error("lost the lease on %s to another executor", self.lease.store.url)
                    self.lost.set()
                    return
            except Exception:  # a transient storage error: try again next beat
                logger.warning("lease refresh failed on %s; retrying", self.lease.store.url, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class StepStatus:
    status: str
    """RUNNING, SUCCESS, FAILED or DEP_FAILED."""
    time: float
    """Unix time it was written (tells a failure of this run from an older one)."""


class StatusFileError(ValueError):
    """A status file that is not ``{"status": str, "time": number}`` (the message names it)."""


class StatusReading(NamedTuple):
    """A status file as far as it could be read (a tolerant `read_status`)."""

    status: str
    """A step status, `STATUS_WAITING` (no file) or `STATUS_UNKNOWN` (no readable status)."""
    time: float | None
    error: str | None
    """What is wrong with the file, naming it (``.executor_status: not JSON ...``); None: nothing."""


def describe_read_error(name: str, error: BaseException) -> str:
    """A one-line description of why the file ``name`` could not be read or parsed."""
    if isinstance(error, UnicodeDecodeError):
        return f"{name}: not UTF-8 (byte {error.start})"
    if isinstance(error, json.JSONDecodeError):
        if not error.doc.strip():
            return f"{name}: empty (half-written?)"
        return f"{name}: not JSON ({error.msg}, line {error.lineno} column {error.colno})"
    return f"{name}: {type(error).__name__}: {str(error)[:200]}"


@overload
def read_status(output_path: str, *, tolerant: Literal[False] = False) -> StepStatus | None: ...
@overload
def read_status(output_path: str, *, tolerant: Literal[True]) -> StatusReading: ...
def read_status(output_path: str, *, tolerant: bool = False) -> StepStatus | StatusReading | None:
    """The step's ``.executor_status``, read one of two ways.

    Strict (the executor, which acts on it): None when there is no file, a `StatusFileError` naming
    the file when it is malformed. ``tolerant`` (the dashboard and ``soda info``, which show it):
    never raises; a `StatusReading` with what could be read and what is wrong with the rest.
    """
    url = fileio.join(output_path, STATUS_FILE)
    reading = _read_status_file(url)
    if tolerant:
        return reading
    if reading.status == STATUS_WAITING:
        return None
    if reading.error is not None or reading.time is None:
        raise StatusFileError(f"{url}: {reading.error}")
    return StepStatus(reading.status, reading.time)


def _read_status_file(url: str) -> StatusReading:
    try:
        data = json.loads(fileio.read_bytes(url).decode("utf-8"))
    except FileNotFoundError:
        return StatusReading(STATUS_WAITING, None, None)
    except (OSError, ValueError) as error:  # JSON and UTF-8 errors are ValueErrors
        return StatusReading(STATUS_UNKNOWN, None, describe_read_error(STATUS_FILE, error))
    if not isinstance(data, dict):
        return StatusReading(STATUS_UNKNOWN, None, f"{STATUS_FILE}: expected a JSON dict, found {type(data).__name__}")
    status, when = data.get("status"), data.get("time")
    if not isinstance(status, str):
        return StatusReading(STATUS_UNKNOWN, None, f"{STATUS_FILE}: no 'status'")
    if not isinstance(when, (int, float)) or isinstance(when, bool):
        return StatusReading(status, None, f"{STATUS_FILE}: no numeric 'time'")
    return StatusReading(status, float(when), None)


def write_status(output_path: str, status: str) -> None:
    fileio.atomic_write_json(fileio.join(output_path, STATUS_FILE), {"status": status, "time": time.time()})

"""Fencing: the leases this process holds, checked before every commit into their steps' outputs.

An attempt of a step (the executor thread, the Ray task running the step, the Ray tasks of its
shards) registers its `Fence` (the step's output path, the lease owner and the fencing token of
its lease) with `holding`. While registered, every commit into that output directory (an atomic
write or rename via `soda_jax.fileio`, an appended metrics row, a cache batch) first re-reads the
lease: if another executor took the step over (the lease went stale while this attempt was paused
or cut off), the commit raises `LeaseLost` instead of landing next to the new owner's work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from soda_jax import fileio
from soda_jax.execution.status import LEASE_FILE, LeaseTiming, StepLease


@dataclass(frozen=True)
class Fence:
    """What an attempt must still hold to commit into ``output_path`` (picklable, for Ray tasks)."""

    output_path: str
    owner: str
    """The lease owner of the attempt (host:pid:thread of its executor)."""
    token: int
    """The lease's fencing token when the attempt acquired it."""

    @staticmethod
    def of(lease: StepLease) -> Fence:
        if lease.fence is None:
            raise ValueError(f"{lease.output_path}: lease not acquired")
        return Fence(lease.output_path, lease.owner, lease.fence)

    def covers(self, url: str) -> bool:
        root = self.output_path.rstrip("/")
        return (url == root or url.startswith(root + "/")) and not url.endswith("/" + LEASE_FILE)

    def check(self) -> None:
        """Raise `LeaseLost` if the lease no longer carries this owner and token."""
        lease = StepLease(self.output_path, self.owner, LeaseTiming())
        lease.fence = self.token
        lease.check()


_lock = threading.Lock()
_held: list[Fence] = []


@contextmanager
def holding(fences: Fence | Iterable[Fence]) -> Iterator[None]:
    """Register ``fences`` for this process while the block runs (nesting allowed)."""
    fences = [fences] if isinstance(fences, Fence) else list(fences)
    with _lock:
        _held.extend(fences)
    try:
        yield
    finally:
        with _lock:
            for fence in fences:
                _held.remove(fence)


def held() -> tuple[Fence, ...]:
    """The fences registered in this process (handed on to the Ray tasks a step starts)."""
    with _lock:
        return tuple(dict.fromkeys(_held))


def check_commit(url: str) -> None:
    """The commit guard: every registered fence whose output directory holds ``url`` must still hold."""
    for fence in held():
        if fence.covers(url):
            fence.check()


fileio.add_commit_guard(check_commit)

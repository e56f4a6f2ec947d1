"""Playground jobs: run one at a time on a worker thread, never on the request thread.

``POST /api/play`` queues a `Job` and answers at once; the page polls ``/api/play/job/{id}``
for its state (queued with how many ahead, loading the model, generating, done or failed). One
worker means a second request waits its turn, and the model cache (`play_models.ModelCache`) is
never asked for two loads at once.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

QUEUED = "queued"
LOADING = "loading model"
GENERATING = "generating"
DONE = "done"
FAILED = "failed"
MAX_JOBS_KEPT = 200
"""Finished jobs remembered for polling (oldest forgotten first); their results stay on disk."""


@dataclasses.dataclass
class Job:
    id: str
    task: str
    checkpoint: str
    submitted: float = dataclasses.field(default_factory=time.time)
    state: str = QUEUED
    started: float | None = None
    finished: float | None = None
    loaded_model: bool | None = None
    """True when this job loaded its model, False when it found it loaded (None: not got that far)."""
    error: str | None = None
    result: dict[str, Any] | None = None
    """The result's row (`play_results.result_row`) when done."""

    def as_json(self, ahead: int) -> dict[str, Any]:
        now = time.time()
        return dataclasses.asdict(self) | {
            "ahead": ahead,
            "elapsed_s": ((self.finished or now) - self.started) if self.started else None,
            "waited_s": ((self.started or now) - self.submitted),
        }


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)
"""Failures that are the input's or the model's (their message is shown as is); anything else is
logged with its traceback and shown as an internal error."""


class JobQueue:
    """Jobs by id, run in submission order by one worker thread."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="soda-play")
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._lock = threading.Lock()

    def submit(self, job: Job, work: Callable[[Job], dict[str, Any]]) -> Job:
        """Queue ``work(job)``; its return value becomes ``job.result``."""
        with self._lock:
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.state in (DONE, FAILED)]
            for key in finished[: max(0, len(self._jobs) - MAX_JOBS_KEPT)]:
                del self._jobs[key]
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Job], dict[str, Any]]) -> None:
        job.started = time.time()
        try:
            job.result = work(job)
            job.state = DONE
        except EXPECTED_ERRORS as error:
            job.error, job.state = str(error), FAILED
        except Exception as error:  # the worker must survive any job
            logger.exception("playground job %s failed", job.id)
            job.error, job.state = f"internal error: {type(error).__name__}: {str(error)[:300]}", FAILED
        finally:
            job.finished = time.time()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def ahead_of(self, job: Job) -> int:
        """Jobs submitted earlier and not finished: how many run before ``job`` starts."""
        with self._lock:
            ahead = 0
            for other in self._jobs.values():
                if other is job:
                    return ahead if job.state == QUEUED else 0
                ahead += other.state not in (DONE, FAILED)
        return 0

    def shutdown(self) -> None:
        """Drop queued jobs; a running one finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)

"""A step's failure as people need it: the exception's type, its message, and its traceback.

Ray wraps an exception raised in a task (``RayTaskError(ValueError)``, nested once more when the
step's own shard tasks failed) and its text starts with the worker's process title in terminal
colours. `describe_failure` unwraps to the exception the step raised and strips the escape codes,
so the run's summary and log say what went wrong, not where Ray ran it.
"""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import dataclass

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
SUMMARY_CHARS = 2000
"""Longest message kept in a run's summary (the full text is in the log and provenance)."""


def strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


@dataclass(frozen=True)
class Failure:
    type: str
    """The class name of the exception the step raised (never ``RayTaskError``)."""
    message: str
    """Its message, without terminal escape codes."""
    traceback: str
    """Where it was raised: the remote traceback for a Ray task, else the local one."""

    def summary(self) -> str:
        """``Type: message`` for a run's summary, long messages cut, continuation lines indented."""
        message = self.message if len(self.message) <= SUMMARY_CHARS else self.message[:SUMMARY_CHARS] + " ..."
        return f"{self.type}: {message}".replace("\n", "\n      ")

    def as_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}


def root_cause(error: BaseException) -> BaseException:
    """The exception a Ray task raised, through any number of ``RayTaskError`` wrappers."""
    if "ray" not in sys.modules:  # no Ray in this process: nothing wrapped (and no import just to ask)
        return error
    from ray.exceptions import RayTaskError

    while isinstance(error, RayTaskError) and isinstance(getattr(error, "cause", None), BaseException):
        error = error.cause
    return error


def describe_failure(error: BaseException) -> Failure:
    cause = root_cause(error)
    if cause is not error:  # Ray's text holds the remote traceback
        where = "Traceback (in the Ray task):\n" + strip_ansi(str(error))
    else:
        where = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return Failure(type=type(cause).__name__, message=strip_ansi(str(cause)), traceback=strip_ansi(where))

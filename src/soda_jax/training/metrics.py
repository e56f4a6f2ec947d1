"""Per-step metrics: the JSON-lines log (``metrics.jsonl``) the dashboard reads, plus levanter trackers.

Every completed step gets one row: ``step`` (0-based, as levanter counts), ``loss``, ``lr``,
``grad_norm``, ``tokens``, ``tokens_per_second``, ``model_flops_per_second``, ``mfu`` (percent, when a
device peak is known) and, at evaluation steps, ``validation_loss`` and ``validation/{name}/loss``.
A resumed run first drops the rows at or after its resume step (they were lost with the state),
so the file always holds one row per step of the run that produced the final state.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import METRICS_FILE

logger = logging.getLogger(__name__)

REMOTE_REWRITE_EVERY = 100
"""On object stores (no append), rewrite the whole file every this many rows."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as "nan"/"inf"
    return value


class MetricsLog:
    """Append-only JSON-lines log of step rows under a run directory."""

    def __init__(self, run_dir: str, *, resume_step: int):
        self.path = fileio.join(run_dir, METRICS_FILE)
        self._local = fileio.is_local(self.path)
        self._rows = [row for row in self._read_existing() if row["step"] < resume_step]
        self._unwritten = 0
        self._rewrite()  # atomically drop rows the resumed state never reached

    def _read_existing(self) -> list[dict]:
        if not fileio.exists(self.path):
            return []
        fs, path = fileio.filesystem(self.path)
        rows = []
        with fs.open(path, "rt") as f:
            for number, line in enumerate(f, 1):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    logger.warning("%s:%d: unreadable row dropped (a killed run's last write)", self.path, number)
        return rows

    def _rewrite(self) -> None:
        text = "".join(json.dumps(row) + "\n" for row in self._rows)
        fileio.atomic_write_text(self.path, text)
        self._unwritten = 0

    @property
    def rows(self) -> list[dict]:
        return list(self._rows)

    def write(self, row: Mapping[str, Any]) -> None:
        row = {key: _jsonable(value) for key, value in row.items()}
        self._rows.append(row)
        if self._local:
            fs, path = fileio.filesystem(self.path)
            fileio.check_commit(self.path)
            with fs.open(path, "at") as f:
                f.write(json.dumps(row) + "\n")
        else:
            self._unwritten += 1
            if self._unwritten >= REMOTE_REWRITE_EVERY:
                self._rewrite()

    def update_last(self, extra: Mapping[str, Any]) -> None:
        """Add fields (validation losses) to the latest row; the file is rewritten."""
        if not self._rows:
            return
        self._rows[-1].update({key: _jsonable(value) for key, value in extra.items()})
        self._rewrite()

    def flush(self) -> None:
        if not self._local and self._unwritten:
            self._rewrite()


def throughput(
    *,
    batch_size: int,
    seq_len: int,
    step_seconds: float,
    training_flops_per_token: float,
    peak_flops: float | None,
) -> dict[str, float]:
    """tokens/s, model FLOP/s and MFU (percent of ``peak_flops``, all devices) of one step."""
    if step_seconds <= 0:
        return {}
    tokens_per_second = batch_size * seq_len / step_seconds
    model_flops = tokens_per_second * training_flops_per_token
    out = {"tokens_per_second": tokens_per_second, "model_flops_per_second": model_flops}
    if peak_flops:
        out["mfu"] = 100.0 * model_flops / peak_flops
    return out

"""Training curves from ``metrics.jsonl``, downsampled so a 1M-row log plots in well under a second.

Rows are picked before they are parsed: lines evenly spread over the file (the first and last
always), plus every line carrying a validation loss (evaluations are rare and each one matters). Only the picked
lines are decoded; a line that is not UTF-8 or not JSON (a run killed mid-write) is skipped and
counted, and the first few are named.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import METRICS_FILE
from soda_jax.dashboard.files import describe_error

MAX_POINTS = 2000
"""Rows kept per curve for plotting."""
CURVES = ("loss", "validation_loss", "tokens_per_second", "lr", "grad_norm")
"""The series a training step's page plots, one chart each."""
ALWAYS_KEPT = b'"validation'
"""Lines containing this are kept whatever the stride (evaluation rows)."""
MAX_ERRORS_NAMED = 5


@dataclass
class Curves:
    steps: list[int] = field(default_factory=list)
    series: dict[str, list[float | None]] = field(default_factory=dict)
    """Metric name -> value per kept row (None where the row lacks it)."""
    rows: int = 0
    """Lines in the file (before downsampling)."""
    skipped: int = 0
    """Picked lines that could not be read."""
    errors: list[str] = field(default_factory=list)
    exists: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "exists": self.exists,
            "rows": self.rows,
            "kept": len(self.steps),
            "skipped": self.skipped,
            "errors": self.errors,
            "step": self.steps,
            "series": self.series,
        }


def line_starts(data: bytes, max_points: int) -> list[int]:
    """Byte offsets of the lines to parse: about ``max_points`` evenly spread over the file (the
    first and last always) plus every evaluation line. Works on offsets with C-speed searches, so
    a 1M-line log is never split into a million Python objects."""
    size = len(data)
    if not size:
        return []
    starts = {0, data.rfind(b"\n", 0, size - 1) + 1}  # the last line (a trailing newline ignored)
    if data.count(b"\n") <= max_points:
        position = data.find(b"\n")
        while position != -1 and position + 1 < size:
            starts.add(position + 1)
            position = data.find(b"\n", position + 1)
        return sorted(starts)
    for k in range(1, max_points):
        starts.add(data.rfind(b"\n", 0, k * size // max_points) + 1)
    position = data.find(ALWAYS_KEPT)
    while position != -1:
        starts.add(data.rfind(b"\n", 0, position) + 1)
        end = data.find(b"\n", position)
        position = -1 if end == -1 else data.find(ALWAYS_KEPT, end)
    return sorted(starts)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    return None  # MetricsLog writes non-finite values as "nan"/"inf": gaps in the curve


def read_curves(run_dir: str, max_points: int = MAX_POINTS) -> Curves:
    url = fileio.join(run_dir, METRICS_FILE)
    try:
        data = fileio.read_bytes(url)
    except FileNotFoundError:
        return Curves()
    curves = Curves(rows=data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1), exists=True)
    keys: dict[str, None] = {}
    parsed: list[tuple[int, dict[str, Any]]] = []
    line_number, previous = 1, 0
    for start in line_starts(data, max_points):
        line_number += data.count(b"\n", previous, start)  # counted incrementally: one pass in all
        previous = start
        end = data.find(b"\n", start)
        line = data[start : end if end != -1 else len(data)]
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise TypeError("not a JSON object with an integer 'step'")
        except Exception as e:  # a torn or foreign line: skip it, count it, name the first few
            curves.skipped += 1
            if len(curves.errors) < MAX_ERRORS_NAMED:
                curves.errors.append(describe_error(f"{METRICS_FILE} line {line_number}", e))
            continue
        parsed.append((row["step"], row))
        keys.update((k, None) for k, v in row.items() if k != "step" and as_number(v) is not None)
    curves.steps = [step for step, _ in parsed]
    curves.series = {key: [as_number(row.get(key)) for _, row in parsed] for key in keys}
    return curves


class CurveCache:
    """Curves of recently viewed runs, re-read only when the file changed (live pages poll)."""

    def __init__(self, size: int = 64):
        self.size = size
        self._cache: OrderedDict[tuple[str, int], tuple[Any, Curves]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_dir: str, max_points: int = MAX_POINTS) -> Curves:
        fs, path = fileio.filesystem(fileio.join(run_dir, METRICS_FILE))
        try:
            info = fs.info(path)
            stamp = (info.get("size"), info.get("mtime") or info.get("updated") or info.get("generation"))
        except FileNotFoundError:
            return Curves()
        key = (run_dir, max_points)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(key)
                return hit[1]
        curves = read_curves(run_dir, max_points)
        with self._lock:
            self._cache[key] = (stamp, curves)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return curves

"""The evaluation results as a plain-text table (what `make demo` prints)."""

from __future__ import annotations

import math
from typing import Any


def _number(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"


def results_table(results: dict) -> str:
    """One row per task and metric: value, items scored, items skipped (by reason)."""
    rows = [("task", "metric", "value", "items", "skipped")]
    for task, summary in results.get("tasks", {}).items():
        skipped = summary.get("skipped") or {}
        skip_text = ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())) or "-"
        count = summary.get("items", summary.get("documents", (summary.get("wer") or {}).get("utterances", "")))
        for i, (name, value) in enumerate((summary.get("metrics") or {}).items()):
            rows.append((task if i == 0 else "", name, _number(value), str(count) if i == 0 else "", skip_text if i == 0 else ""))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

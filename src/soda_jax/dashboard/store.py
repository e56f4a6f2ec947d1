"""What the dashboard shows, read from an executor prefix (any fsspec URL)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from soda_jax import io
from soda_jax.execution.executor import EXPERIMENTS_DIR, INFO_FILE
from soda_jax.execution.provenance import PROVENANCE_FILE
from soda_jax.execution.status import read_status

METRICS_FILE = "metrics.jsonl"
"""Per-step metrics (JSON lines with a "step" key), written by training runs."""
SUMMARY_FILES = ("summary.json", "stats.json", "results.json")
"""Small result files a step may leave (results.json: an evaluation's, docs/evaluation.md); shown on its page."""


@dataclass
class StepView:
    name: str
    output_path: str
    status: str
    info: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    summaries: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentView:
    key: str
    """File name under {prefix}/experiments, without .json."""
    record: dict[str, Any]

    @property
    def description(self) -> str:
        return self.record.get("description") or ""

    @property
    def created_at(self) -> str:
        return self.record.get("created_at", "")


class PrefixStore:
    def __init__(self, prefix: str):
        self.prefix = prefix.rstrip("/")

    def experiments(self) -> list[ExperimentView]:
        fs, path = io.filesystem(io.join(self.prefix, EXPERIMENTS_DIR))
        if not fs.exists(path):
            return []
        views = []
        for entry in sorted(fs.ls(path, detail=False)):
            if entry.endswith(".json"):
                key = entry.rsplit("/", 1)[-1][: -len(".json")]
                views.append(ExperimentView(key, self.experiment_record(key)))
        return sorted(views, key=lambda v: v.created_at, reverse=True)

    def experiment_record(self, key: str) -> dict[str, Any]:
        return io.read_json(io.join(self.prefix, EXPERIMENTS_DIR, f"{key}.json"))

    def step(self, output_path: str, name: str = "") -> StepView:
        status = read_status(output_path)
        summaries = {}
        for fname in SUMMARY_FILES:
            data = io.read_json_or_none(io.join(output_path, fname))
            if data is not None:
                summaries[fname] = data
        return StepView(
            name=name,
            output_path=output_path,
            status=status.status if status else "NOT RUN",
            info=io.read_json_or_none(io.join(output_path, INFO_FILE)) or {},
            provenance=io.read_json_or_none(io.join(output_path, PROVENANCE_FILE)) or {},
            summaries=summaries,
        )

    def steps_of(self, key: str) -> list[StepView]:
        return [self.step(s["output_path"], s["name"]) for s in self.experiment_record(key)["steps"]]

    def metrics(self, output_path: str) -> list[dict[str, Any]]:
        """Rows of ``metrics.jsonl`` (malformed lines are skipped: a run may be mid-write)."""
        try:
            text = io.read_text(io.join(output_path, METRICS_FILE))
        except FileNotFoundError:
            return []
        rows = []
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "step" in row:
                rows.append(row)
        return rows

    def is_step_path(self, output_path: str) -> bool:
        """Only paths under the prefix that hold executor metadata may be shown."""
        return output_path.startswith(self.prefix + "/") and io.exists(io.join(output_path, INFO_FILE))

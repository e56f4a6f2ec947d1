"""What an evaluation writes, and how a killed one resumes.

    {out}/items/{task}.jsonl     one JSON object per item: "id", the item's scores and outputs, or
                                 "skipped": reason + "detail" for bad input (counted per reason)
    {out}/tasks/{task}.json      the task's summary, written once the task is finished
    {out}/audio/{task}/*.wav     generated audio (generative tasks)
    {out}/results.json           {"metrics": {"{task}/{metric}": value}, "tasks": {task: summary}}

Item files are rewritten whole (write then rename) after every batch, so a kill loses at most the
batch in flight and never leaves a torn line; a finished task's summary marks it done. On resume a
finished task is read back, not recomputed, and an unfinished one skips the items already in its file.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import EVAL_AUDIO_DIR as AUDIO_DIR
from soda_jax.contracts import EVAL_ITEMS_DIR as ITEMS_DIR
from soda_jax.contracts import EVAL_RESULTS_FILE as RESULTS_FILE
from soda_jax.contracts import EVAL_TASKS_DIR as TASKS_DIR

logger = logging.getLogger(__name__)

SKIPPED = "skipped"
MAX_EXAMPLES_PER_REASON = 5
"""Bad-input examples kept per reason in a summary (all of them are in the item file)."""


class TaskStore:
    """Items of one task: those already written (from a previous attempt) plus the new ones."""

    def __init__(self, output_path: str, task: str):
        self.task = task
        self.items_path = fileio.join(output_path, ITEMS_DIR, f"{task}.jsonl")
        self.summary_path = fileio.join(output_path, TASKS_DIR, f"{task}.json")
        self.audio_dir = fileio.join(output_path, AUDIO_DIR, task)
        self._items: dict[str, dict] = {}
        if fileio.exists(self.items_path):
            for line in fileio.read_text(self.items_path).splitlines():
                if line.strip():
                    record = json.loads(line)
                    self._items[record["id"]] = record
            logger.info("%s: resuming with %d items already done", task, len(self._items))

    # ------------------------------------------------------------------------------ items
    def done(self, item_id: str) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Record finished items (each with a unique "id") and persist the file."""
        added = 0
        for record in records:
            if "id" not in record:
                raise ValueError(f"{self.task}: an item record needs an 'id': {dict(record)}")
            self._items[str(record["id"])] = dict(record, id=str(record["id"]))
            added += 1
        if added:
            fileio.atomic_write_text(self.items_path, "".join(json.dumps(r) + "\n" for r in self._items.values()))

    def skip(self, item_id: str, reason: str, detail: str) -> None:
        """Record an item that bad input kept from being scored."""
        logger.warning("%s: skipped %s (%s): %s", self.task, item_id, reason, detail)
        self.add([{"id": item_id, SKIPPED: reason, "detail": detail}])

    def load_or_skip(self, item_id: str, audio: Any) -> Any:
        """``audio.load()`` (an `eval.readers` audio reference), or None with the item recorded as
        skipped for the `BadInput` that loading raised."""
        from soda_jax.eval.readers import BadInput  # the readers' module: not needed by the store's readers

        try:
            return audio.load()
        except BadInput as error:
            self.skip(item_id, error.reason, error.detail)
            return None

    def pending(
        self, items: Iterable[Any], audio_of: Callable[[Any], Any], max_items: int | None = None
    ) -> Iterator[tuple[int, Any, Any]]:
        """``(index, item, waveform)`` of each of the first ``max_items`` records a reader yields that is
        not yet in the store; a `BadItem` record, or audio (``audio_of(item)``) that fails to load, is
        recorded as skipped by its reason, never fatal."""
        from soda_jax.eval.readers import BadItem

        for index, item in enumerate(items):
            if max_items is not None and index >= max_items:
                return
            if isinstance(item, BadItem):
                if not self.done(item.item_id):
                    self.skip(item.item_id, item.reason, item.detail)
                continue
            if self.done(item.id):
                continue
            wave = self.load_or_skip(item.id, audio_of(item))
            if wave is not None:
                yield index, item, wave

    def scored(self) -> list[dict]:
        """Records of the items that were scored (not skipped), in the order they were added."""
        return [r for r in self._items.values() if SKIPPED not in r]

    def skip_counts(self) -> dict[str, int]:
        return dict(collections.Counter(r[SKIPPED] for r in self._items.values() if SKIPPED in r))

    def skip_examples(self) -> dict[str, list[str]]:
        examples: dict[str, list[str]] = collections.defaultdict(list)
        for record in self._items.values():
            if SKIPPED in record and len(examples[record[SKIPPED]]) < MAX_EXAMPLES_PER_REASON:
                examples[record[SKIPPED]].append(f"{record['id']}: {record['detail']}")
        return dict(examples)

    # ---------------------------------------------------------------------------- summary
    def finished_summary(self) -> dict | None:
        return fileio.read_json_or_none(self.summary_path)

    def finish(self, summary: Mapping[str, Any]) -> dict:
        """Write the task's summary (with its bad-input counts): the task is done."""
        full = dict(summary, skipped=self.skip_counts(), skipped_examples=self.skip_examples())
        fileio.atomic_write_json(self.summary_path, full)
        return full


def headline_metrics(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``{task}/{metric}`` -> value over every task's numeric ``metrics``."""
    flat = {}
    for task, summary in summaries.items():
        for name, value in (summary.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                flat[f"{task}/{name}"] = float(value)
    return flat


def write_results(output_path: str, summaries: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any]) -> dict:
    results = {"metrics": headline_metrics(summaries), "tasks": dict(summaries), "settings": dict(settings)}
    fileio.atomic_write_json(fileio.join(output_path, RESULTS_FILE), results)
    return results

"""Likelihood pairs: sWUGGY, sBLIMP, SALMon (speech) and tWUGGY, tBLIMP (text).

Each item is a (positive, negative) pair. Speech is scored as ``<bos> <|audio_start|> A
<|audio_end|>``, text as ``<bos> <|text_start|> T <|text_end|>``; an utterance's score is the
**mean** log-prob of its content tokens only (the predictions of the markers are dropped, as in
SODA), and the item is correct when positive > negative strictly (a tie is wrong, and counted).

``num_codebooks=k`` scores the first k codebooks of every frame (`codebooks.codebook_mask`), not the
first k/8 of the time span as SODA's script did.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterator

import numpy as np
from tqdm.auto import tqdm

from soda_jax.eval.codebooks import codebook_mask
from soda_jax.eval.context import EvalContext
from soda_jax.eval.layouts import TOO_LONG, BadInput, audio_cell, read_table_rows, table_base_dir, text_cell
from soda_jax.eval.store import TaskStore

SPEECH = "speech"
TEXT = "text"
CONTENT_START = 2
"""Content starts after <bos> and the opening marker."""


@dataclasses.dataclass(frozen=True)
class PairTask:
    """A likelihood-pair benchmark read from a table (parquet / arrow / save_to_disk directory)."""

    name: str
    """Task name in results (``swuggy``, ``sblimp``, ``salmon``, ``twuggy``, ``tblimp``)."""
    path: str
    """The table: a file, or a directory of parquet/arrow files."""
    modality: str = SPEECH
    """``speech`` (audio cells) or ``text`` (string cells)."""
    positive_field: str = "positive"
    negative_field: str = "negative"
    group_field: str | None = None
    """Sub-task column (SALMon's ``task``): accuracy is also reported per group."""
    id_field: str | None = None
    """Column naming each item (default: its row position)."""
    lowercase: bool = False
    """Lowercase text before tokenizing (SODA does for tBLIMP)."""
    num_codebooks: int | None = None
    """Score only the first k codebooks of each frame (None: all the model's)."""
    max_items: int | None = None
    """Evaluate the first N items only (None: all)."""


def swuggy(path: str, **kw) -> PairTask:
    return PairTask("swuggy", path, SPEECH, "positive", "negative", **kw)


def sblimp(path: str, **kw) -> PairTask:
    return PairTask("sblimp", path, SPEECH, "positive", "negative", **kw)


def salmon(path: str, **kw) -> PairTask:
    return PairTask("salmon", path, SPEECH, "positive_audio", "negative_audio", group_field="task", **kw)


def twuggy(path: str, **kw) -> PairTask:
    """Text version of sWUGGY: its ``positive_word`` / ``negative_word`` columns."""
    return PairTask("twuggy", path, TEXT, "positive_word", "negative_word", **kw)


def tblimp(path: str, **kw) -> PairTask:
    """Text version of sBLIMP: its transcriptions, lowercased as SODA does."""
    return PairTask("tblimp", path, TEXT, "positive_transcription", "negative_transcription", lowercase=True, **kw)


@dataclasses.dataclass
class _Pending:
    id: str
    group: str | None
    content: list  # positive, negative: waves (speech) or texts


def _items(task: PairTask, store: TaskStore) -> Iterator[_Pending]:
    base = table_base_dir(task.path)
    for index, (where, row) in enumerate(read_table_rows(task.path)):
        if task.max_items is not None and index >= task.max_items:
            return
        item_id = str(row.get(task.id_field)) if task.id_field else str(index)
        if store.done(item_id):
            continue
        content: list[np.ndarray] | list[str]
        try:
            if task.modality == SPEECH:
                content = [audio_cell(row, f, where, base).load() for f in (task.positive_field, task.negative_field)]
            else:
                texts = [text_cell(row, f, where) for f in (task.positive_field, task.negative_field)]
                content = [t.lower() if task.lowercase else t for t in texts]
        except BadInput as error:
            store.skip(item_id, error.reason, error.detail)
            continue
        yield _Pending(item_id, str(row.get(task.group_field)) if task.group_field else None, content)


def bodies_of(ctx: EvalContext, task: PairTask, contents: list) -> list[np.ndarray]:
    """Content token ids: audio ids of speech waves, or text ids."""
    return ctx.audio_ids(contents) if task.modality == SPEECH else ctx.vocab.encode_texts(contents)


def wrap(ctx: EvalContext, modality: str, body: np.ndarray) -> np.ndarray:
    """``<bos> <|audio_start|> A <|audio_end|>`` or ``<bos> <|text_start|> T <|text_end|>``."""
    vocab = ctx.vocab
    start, end = (vocab.audio_start_id, vocab.audio_end_id) if modality == SPEECH else (vocab.text_start_id, vocab.text_end_id)
    return np.concatenate([[vocab.bos_id, start], body, [end]]).astype(np.int32)


def content_logprobs(ctx: EvalContext, modality: str, bodies: list[np.ndarray]) -> list[np.ndarray]:
    """Per body, the log-probs of its content tokens only (the markers' predictions dropped)."""
    logprobs = ctx.score([wrap(ctx, modality, body) for body in bodies])
    # log-prob j scores token j + 1; content tokens sit at CONTENT_START .. CONTENT_START + n - 1
    return [lp[CONTENT_START - 1 : CONTENT_START - 1 + body.size] for lp, body in zip(logprobs, bodies)]


def utterance_score(content: np.ndarray, modality: str, num_codebooks: int | None, frame_size: int) -> float:
    """An utterance's score: the mean of its (selected) content log-probs."""
    if modality == SPEECH and num_codebooks is not None:
        content = content[codebook_mask(content.size, num_codebooks, frame_size=frame_size)]
    return float(np.mean(content)) if content.size else math.nan


def run_pairs(ctx: EvalContext, task: PairTask, store: TaskStore) -> dict:
    progress = tqdm(desc=task.name, unit="pair", initial=len(store))
    batch: list[_Pending] = []

    def flush():
        if not batch:
            return
        bodies = bodies_of(ctx, task, [c for item in batch for c in item.content])
        records, scorable = [], []
        for i, item in enumerate(batch):
            longest = max(bodies[2 * i].size, bodies[2 * i + 1].size) + CONTENT_START + 1
            if longest > ctx.context_length:
                store.skip(item.id, TOO_LONG, f"{longest} tokens; the model's context is {ctx.context_length}")
            else:
                scorable.append(i)
        contents = content_logprobs(ctx, task.modality, [bodies[2 * i + k] for i in scorable for k in (0, 1)])
        for j, i in enumerate(scorable):
            positive, negative = (utterance_score(contents[2 * j + k], task.modality, task.num_codebooks, ctx.num_codebooks) for k in (0, 1))
            records.append({
                "id": batch[i].id, "group": batch[i].group, "positive": positive, "negative": negative,
                "correct": bool(positive > negative), "tie": bool(positive == negative),
            })  # fmt: skip
        store.add(records)
        progress.update(len(batch))
        batch.clear()

    for item in _items(task, store):
        batch.append(item)
        if len(batch) * 2 >= ctx.batch_size:
            flush()
    flush()
    progress.close()
    return summarize_pairs(task, store.scored())


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of an accuracy (well behaved at 0, 1 and small counts)."""
    if total == 0:
        return (math.nan, math.nan)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (centre - half, centre + half)


def summarize_pairs(task: PairTask, records: list[dict]) -> dict:
    correct = sum(r["correct"] for r in records)
    total = len(records)
    metrics = {"accuracy": correct / total if total else math.nan}
    groups = collections.defaultdict(list)
    for r in records:
        if r.get("group") is not None:
            groups[r["group"]].append(r["correct"])
    per_group = {g: sum(v) / len(v) for g, v in sorted(groups.items())}
    for g, accuracy in per_group.items():
        metrics[f"accuracy/{g}"] = accuracy
    if per_group:
        metrics["accuracy_macro"] = float(np.mean(list(per_group.values())))
    return {
        "metrics": metrics,
        "headline": "accuracy",
        "items": total,
        "correct": correct,
        "ties": sum(r["tie"] for r in records),
        "accuracy_interval95": wilson_interval(correct, total),
        "settings": {**dataclasses.asdict(task), "score": "mean content-token log-prob", "correct_if": "positive > negative"},
    }

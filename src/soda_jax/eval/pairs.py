"""Likelihood pairs: sWUGGY, sBLIMP, SALMon (speech), tWUGGY, tBLIMP (text) and text-speech alignment.

Each item is a (positive, negative) pair. Speech is scored as ``<bos> <|audio_start|> A
<|audio_end|>``, text as ``<bos> <|text_start|> T <|text_end|>``; an utterance's score is the
**mean** log-prob of its content tokens only (the predictions of the markers are dropped, as in
SODA), and the item is correct when positive > negative strictly (a tie is wrong, and counted).

**Text-speech alignment** (``tts_alignment``, on a LibriSpeech-layout split): an utterance's audio A
is scored after SODA's TTS prompt of its own transcript, ``<bos> <|text_start|> T <|text_end|>
<|audio_start|> A <|audio_end|>`` (positive), and after the transcript of another utterance with the
same number of words (negative: the next one in id order, cyclically, whose normalised text differs);
the score is the mean log-prob of A. Transcripts are normalised as N-shot ASR's (`soda_normalize`:
lower case, no punctuation), the form training text has. An utterance with no such other is skipped
(``no_other_transcript``). Chance is 0.5; a model that reads the text it is given before the speech
scores near 1.

``num_codebooks=k`` scores the first k codebooks of every frame (`codebooks.codebook_mask`), not the
first k/8 of the time span as SODA's script did.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import posixpath
from collections.abc import Iterator

import numpy as np
from tqdm.auto import tqdm

from soda_jax.eval.codebooks import codebook_mask
from soda_jax.eval.context import EvalContext
from soda_jax.eval.normalize import soda_normalize
from soda_jax.eval.readers import (
    TOO_LONG,
    BadInput,
    audio_cell,
    read_librispeech,
    read_table_rows,
    table_base_dir,
    text_cell,
)
from soda_jax.eval.report import wilson_interval
from soda_jax.eval.results import TaskStore
from soda_jax.inference.prompts import tts_prompt

SPEECH = "speech"
TEXT = "text"
ALIGNMENT = "alignment"
"""Modalities: audio cells, text cells, or a LibriSpeech-layout split's audio after transcripts."""
NO_OTHER_TRANSCRIPT = "no_other_transcript"
"""Skip reason of an alignment item: no other utterance of the split has as many words and another text."""
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
    """``speech`` (audio cells), ``text`` (string cells) or ``alignment`` (``path`` is a LibriSpeech
    split directory, ``{root}/test-clean``)."""
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


def tts_alignment(path: str, **kw) -> PairTask:
    """Text-speech alignment on the LibriSpeech-layout split directory ``path`` (``{root}/test-clean``):
    each utterance's audio after its own transcript against after another's of as many words."""
    return PairTask("tts_alignment", path, ALIGNMENT, "own_transcript", "other_transcript", **kw)


@dataclasses.dataclass
class _Pending:
    id: str
    group: str | None
    content: list  # positive, negative: waves (speech) or texts


def other_transcript(texts: list[str], index: int) -> int | None:
    """The index of the negative transcript of item ``index``: the next text (cyclically) with as
    many words as ``texts[index]`` and another wording; None when there is none."""
    words = len(texts[index].split())
    for step in range(1, len(texts)):
        j = (index + step) % len(texts)
        if len(texts[j].split()) == words and texts[j] != texts[index]:
            return j
    return None


def _alignment_items(task: PairTask, store: TaskStore) -> Iterator[_Pending]:
    """Each readable utterance of the split with (own transcript, wave) and (another's, the same wave)."""
    root, split = posixpath.split(task.path.rstrip("/"))
    utterances = []
    for utterance in read_librispeech(root, split):
        if isinstance(utterance, BadInput):
            if not store.done(utterance.item_id):
                store.skip(utterance.item_id, utterance.reason, utterance.detail)
            continue
        utterances.append(utterance)
    texts = [soda_normalize(u.text) for u in utterances]
    for index, utterance in enumerate(utterances):
        if task.max_items is not None and index >= task.max_items:
            return
        if store.done(utterance.id):
            continue
        other = other_transcript(texts, index)
        if other is None:
            store.skip(
                utterance.id,
                NO_OTHER_TRANSCRIPT,
                f"{task.path}: no other transcript of {len(texts[index].split())} words",
            )
            continue
        wave = store.load_or_skip(utterance.id, utterance.audio)
        if wave is None:
            continue
        yield _Pending(utterance.id, None, [(texts[index], wave), (texts[other], wave)])


def _items(task: PairTask, store: TaskStore) -> Iterator[_Pending]:
    if task.modality == ALIGNMENT:
        yield from _alignment_items(task, store)
        return
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


@dataclasses.dataclass(frozen=True)
class Scored:
    """A sequence to score and where its content lies in it."""

    tokens: np.ndarray
    start: int
    """Index of the first content token."""
    size: int
    """Content tokens."""


def scored_sequences(ctx: EvalContext, task: PairTask, contents: list) -> list[Scored]:
    """The sequence of every side of every pair: `wrap` of its audio or text ids, or (alignment) SODA's
    TTS prompt of the text followed by the audio and ``<|audio_end|>``."""
    vocab = ctx.vocab
    if task.modality == ALIGNMENT:
        audio = ctx.audio_ids([wave for _, wave in contents])
        prompts = [tts_prompt(vocab, text) for text, _ in contents]
        return [
            Scored(np.concatenate([prompt, body, [vocab.audio_end_id]]).astype(np.int32), prompt.size, body.size)
            for prompt, body in zip(prompts, audio)
        ]
    bodies = ctx.audio_ids(contents) if task.modality == SPEECH else vocab.encode_texts(contents)
    return [Scored(wrap(ctx, task.modality, body), CONTENT_START, body.size) for body in bodies]


def wrap(ctx: EvalContext, modality: str, body: np.ndarray) -> np.ndarray:
    """``<bos> <|audio_start|> A <|audio_end|>`` or ``<bos> <|text_start|> T <|text_end|>``."""
    vocab = ctx.vocab
    start, end = (
        (vocab.audio_start_id, vocab.audio_end_id) if modality == SPEECH else (vocab.text_start_id, vocab.text_end_id)
    )
    return np.concatenate([[vocab.bos_id, start], body, [end]]).astype(np.int32)


def content_logprobs(ctx: EvalContext, modality: str, bodies: list[np.ndarray]) -> list[np.ndarray]:
    """Per body (audio or text ids), the log-probs of its content tokens only (the markers' predictions dropped)."""
    return sequence_logprobs(ctx, [Scored(wrap(ctx, modality, body), CONTENT_START, body.size) for body in bodies])


def sequence_logprobs(ctx: EvalContext, sequences: list[Scored]) -> list[np.ndarray]:
    """Per sequence, the log-probs of its content tokens only (the markers' and prompt's predictions dropped)."""
    logprobs = ctx.score([s.tokens for s in sequences])
    # log-prob j scores token j + 1; content tokens sit at start .. start + size - 1
    return [lp[s.start - 1 : s.start - 1 + s.size] for lp, s in zip(logprobs, sequences)]


def utterance_score(content: np.ndarray, modality: str, num_codebooks: int | None, frame_size: int) -> float:
    """An utterance's score: the mean of its (selected) content log-probs."""
    if modality != TEXT and num_codebooks is not None:
        content = content[codebook_mask(content.size, num_codebooks, frame_size=frame_size)]
    return float(np.mean(content)) if content.size else math.nan


def run_pairs(ctx: EvalContext, task: PairTask, store: TaskStore) -> dict:
    progress = tqdm(desc=task.name, unit="pair", initial=len(store))
    batch: list[_Pending] = []

    def flush():
        if not batch:
            return
        sequences = scored_sequences(ctx, task, [c for item in batch for c in item.content])
        records, scorable = [], []
        for i, item in enumerate(batch):
            longest = max(sequences[2 * i].tokens.size, sequences[2 * i + 1].tokens.size)
            if longest > ctx.context_length:
                store.skip(item.id, TOO_LONG, f"{longest} tokens; the model's context is {ctx.context_length}")
            else:
                scorable.append(i)
        contents = sequence_logprobs(ctx, [sequences[2 * i + k] for i in scorable for k in (0, 1)])
        for j, i in enumerate(scorable):
            positive, negative = (
                utterance_score(contents[2 * j + k], task.modality, task.num_codebooks, ctx.num_codebooks)
                for k in (0, 1)
            )
            records.append(
                {
                    "id": batch[i].id,
                    "group": batch[i].group,
                    "positive": positive,
                    "negative": negative,
                    "correct": bool(positive > negative),
                    "tie": bool(positive == negative),
                }
            )
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
        "settings": {
            **dataclasses.asdict(task),
            "score": "mean content-token log-prob",
            "correct_if": "positive > negative",
        },
    }

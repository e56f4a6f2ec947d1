"""ASR on the LibriSpeech layout, 0-shot and N-shot (SODA's prompts, `soda_jax.inference.prompts`).

0-shot: ``<bos> <|audio_start|> A <|audio_end|> <|text_start|>``, generation stops at
``<|text_end|>``. N-shot: N in-context examples from another split (``shot_split``), each
``<bos> A_i <|text_start|> T_i <|text_end|> <eos>`` with its transcript normalised, then the 0-shot
prompt. Shots are drawn per item (seeded by the seed and the item's position) unless ``same_shots``
reproduces SODA's script (one draw for every item). Both transcripts are normalised (``soda`` by
default, ``whisper`` as an option) and WER is reported as corpus WER and mean per-utterance WER.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from soda_jax.eval.context import EvalContext, text_until_marker
from soda_jax.eval.normalize import normalizer, soda_normalize
from soda_jax.eval.readers import TOO_LONG, BadInput, Utterance, read_librispeech
from soda_jax.eval.results import TaskStore
from soda_jax.eval.sampling_choice import Sampling, describe, sampling_params
from soda_jax.eval.wer import word_error_rate
from soda_jax.inference.prompts import asr_nshot_prompt, asr_prompt, choose_shots


@dataclasses.dataclass(frozen=True)
class AsrTask:
    """Speech recognition by the model itself on a LibriSpeech-layout directory."""

    name: str
    path: str
    """LibriSpeech root (holding ``{split}/{speaker}/{chapter}/``)."""
    split: str = "test-clean"
    shot_split: str = "dev-clean"
    """Where N-shot examples come from (never the test split)."""
    num_shots: int = 0
    same_shots: bool = False
    """SODA's script's behaviour: the same shots for every item."""
    shot_pool: int = 64
    """Shots are drawn from the first this many utterances of ``shot_split``."""
    normalizer: str = "soda"
    """``soda`` or ``whisper`` (`soda_jax.eval.normalize`)."""
    max_items: int | None = None
    sampling: Sampling = Sampling()


def pending_utterances(path: str, split: str, max_items: int | None, store: TaskStore):
    """``(index, utterance, waveform)`` of every LibriSpeech-layout item not yet in ``store``; bad
    records and unreadable audio are counted in ``store`` by reason, never fatal."""
    return store.pending(read_librispeech(path, split), lambda utterance: utterance.audio, max_items)


def load_shots(ctx: EvalContext, task: AsrTask) -> list[tuple[np.ndarray, str]]:
    """The shot pool: (audio ids, normalised transcript) of the first ``shot_pool`` readable utterances."""
    pool: list[tuple[np.ndarray, str]] = []
    for utterance in read_librispeech(task.path, task.shot_split):
        if len(pool) >= task.shot_pool:
            break
        if isinstance(utterance, BadInput):
            continue
        try:
            wave = utterance.audio.load()
        except BadInput:
            continue
        pool.append((ctx.audio_ids([wave])[0], soda_normalize(utterance.text)))
    if len(pool) < task.num_shots:
        raise ValueError(f"{task.path}/{task.shot_split}: {len(pool)} usable utterances, {task.num_shots} shots needed")
    return pool


def build_prompt(ctx: EvalContext, task: AsrTask, pool, audio: np.ndarray, index: int) -> np.ndarray:
    if task.num_shots == 0:
        return asr_prompt(ctx.vocab, audio)
    chosen = choose_shots(
        len(pool), task.num_shots, item_index=index, seed=task.sampling.seed, same_for_every_item=task.same_shots
    )
    return asr_nshot_prompt(ctx.vocab, [pool[i] for i in chosen], audio)


def generate_for_utterances(
    ctx: EvalContext,
    store: TaskStore,
    utterances: Iterable[tuple[int, Utterance, np.ndarray]],
    *,
    desc: str,
    kind: str,
    sampling: Sampling,
    prompt_of: Callable[[int, np.ndarray], np.ndarray],
    records_of: Callable[[list[tuple[Utterance, np.ndarray, np.ndarray]], list], list[dict]],
) -> None:
    """Generate from a prompt per utterance, ``ctx.batch_size`` at a time: encode each batch's audio,
    build prompts with ``prompt_of(index, audio_ids)``, skip (counted as too long) any that fill the
    model's context, generate, and store ``records_of(kept, generations)`` where ``kept`` lists the
    (utterance, wave, audio_ids) that were prompted."""
    progress = tqdm(desc=desc, unit="utt", initial=len(store))
    batch: list[tuple[int, Utterance, np.ndarray]] = []

    def flush():
        if not batch:
            return
        audio = ctx.audio_ids([wave for _, _, wave in batch])
        prompts, params, kept = [], [], []
        for (index, utterance, wave), ids in zip(batch, audio):
            prompt = prompt_of(index, ids)
            if prompt.size >= ctx.context_length:
                store.skip(
                    utterance.id,
                    TOO_LONG,
                    f"prompt of {prompt.size} tokens; the model's context is {ctx.context_length}",
                )
                continue
            prompts.append(prompt)
            params.append(sampling_params(ctx.vocab, kind, sampling, index))
            kept.append((utterance, wave, ids))
        generations = ctx.generate(prompts, params) if prompts else []
        store.add(records_of(kept, generations))
        progress.update(len(batch))
        batch.clear()

    for item in utterances:
        batch.append(item)
        if len(batch) >= ctx.batch_size:
            flush()
    flush()
    progress.close()


def run_asr(ctx: EvalContext, task: AsrTask, store: TaskStore) -> dict:
    kind = "asr_nshot" if task.num_shots else "asr"
    pool = load_shots(ctx, task) if task.num_shots else []

    def records_of(kept, generations):
        return [
            {
                "id": u.id,
                "reference": u.text,
                "hypothesis": text_until_marker(ctx.vocab, g.tokens),
                "finish": g.finish_reason,
            }
            for (u, _, _), g in zip(kept, generations)
        ]

    generate_for_utterances(
        ctx,
        store,
        pending_utterances(task.path, task.split, task.max_items, store),
        desc=task.name,
        kind=kind,
        sampling=task.sampling,
        prompt_of=lambda index, ids: build_prompt(ctx, task, pool, ids, index),
        records_of=records_of,
    )
    records = store.scored()
    wer = word_error_rate(
        [r["reference"] for r in records], [r["hypothesis"] for r in records], normalizer(task.normalizer)
    )
    return {
        "metrics": {"wer": wer.corpus_wer, "mean_utterance_wer": wer.mean_utterance_wer},
        "headline": "wer",
        "items": len(records),
        "wer": wer.to_dict(),
        "settings": {**dataclasses.asdict(task), "sampling": describe(kind, task.sampling)},
    }

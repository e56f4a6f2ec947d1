"""Speech-to-text translation, CoVoST2 layout (parquet / arrow tables with an audio column and a
``translation`` column), N-shot, scored by sacrebleu.

Shots ``<bos> <|audio_start|> A_i <|audio_end|> <|text_start|>Translation: T_i<|text_end|> <eos>``
then the item's prompt ending ``<|text_start|>Translation:`` (SODA's). Items whose prompt exceeds
``max_prompt_tokens`` (SODA: 8000) or the model's context are skipped and counted. Reported:
corpus BLEU and mean sentence BLEU.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tqdm.auto import tqdm

from soda_jax.eval.context import EvalContext, text_until_marker
from soda_jax.eval.readers import TOO_LONG, BadInput, audio_cell, read_table_rows, table_base_dir, text_cell
from soda_jax.eval.results import TaskStore
from soda_jax.eval.sampling_choice import Sampling, describe, sampling_params
from soda_jax.inference.prompts import choose_shots, translation_prompt


@dataclasses.dataclass(frozen=True)
class TranslationTask:
    name: str
    path: str
    """Test table (file or directory)."""
    shots_path: str
    """Table the shots come from (another split)."""
    num_shots: int = 3
    same_shots: bool = False
    shot_pool: int = 64
    audio_field: str = "audio"
    translation_field: str = "translation"
    id_field: str | None = "id"
    max_prompt_tokens: int = 8000
    max_items: int | None = None
    sampling: Sampling = Sampling()


def _rows(ctx: EvalContext, task: TranslationTask, path: str):
    base = table_base_dir(path)
    for index, (where, row) in enumerate(read_table_rows(path)):
        item_id = str(row.get(task.id_field, index)) if task.id_field else str(index)
        try:
            yield (
                index,
                item_id,
                audio_cell(row, task.audio_field, where, base),
                text_cell(row, task.translation_field, where),
            )
        except BadInput as error:
            yield index, item_id, error, None


def run_translation(ctx: EvalContext, task: TranslationTask, store: TaskStore) -> dict:
    import sacrebleu

    pool: list[tuple[np.ndarray, str]] = []
    for _, _, audio, text in _rows(ctx, task, task.shots_path):
        if len(pool) >= task.shot_pool:
            break
        if isinstance(audio, BadInput):
            continue
        try:
            pool.append((ctx.audio_ids([audio.load()])[0], text))
        except BadInput:
            continue
    if len(pool) < task.num_shots:
        raise ValueError(f"{task.shots_path}: {len(pool)} usable shots, {task.num_shots} needed")
    limit = min(task.max_prompt_tokens, ctx.context_length - 1)
    progress = tqdm(desc=task.name, unit="utt", initial=len(store))
    for index, item_id, audio, reference in _rows(ctx, task, task.path):
        if task.max_items is not None and index >= task.max_items:
            break
        if store.done(item_id):
            continue
        try:
            if isinstance(audio, BadInput):
                raise audio
            ids = ctx.audio_ids([audio.load()])[0]
        except BadInput as error:
            store.skip(item_id, error.reason, error.detail)
            continue
        chosen = choose_shots(
            len(pool), task.num_shots, item_index=index, seed=task.sampling.seed, same_for_every_item=task.same_shots
        )
        prompt = translation_prompt(ctx.vocab, [pool[i] for i in chosen], ids)
        if prompt.size > limit:
            store.skip(item_id, TOO_LONG, f"prompt of {prompt.size} tokens > {limit}")
            continue
        generation = ctx.generate([prompt], [sampling_params(ctx.vocab, "translation", task.sampling, index)])[0]
        store.add(
            [{"id": item_id, "reference": reference, "hypothesis": text_until_marker(ctx.vocab, generation.tokens)}]
        )
        progress.update()
    progress.close()
    records = store.scored()
    hypotheses, references = [r["hypothesis"] for r in records], [r["reference"] for r in records]
    corpus = sacrebleu.corpus_bleu(hypotheses, [references]).score if records else float("nan")
    sentence = (
        float(np.mean([sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(hypotheses, references)]))
        if records
        else float("nan")
    )
    return {
        "metrics": {"bleu": corpus, "mean_sentence_bleu": sentence},
        "headline": "bleu",
        "items": len(records),
        "settings": {**dataclasses.asdict(task), "sampling": describe("translation", task.sampling)},
    }

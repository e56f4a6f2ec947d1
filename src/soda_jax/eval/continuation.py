"""Speech continuation: the model continues the first seconds of each recording.

Prompt ``<bos> <|audio_start|> A`` of the first ``prompt_seconds`` (SODA: 3 s; sampling at
temperature 1.0, top-p 0.9, 1200 new tokens). Kept per item: the WAV of prompt + continuation,
the speaker similarity of the continuation to the prompt, whether its audio is well formed
(`context.frame_valid`; summarised as ``frame_valid_rate``), and the ASR transcript of the whole.
There is no reference to score the transcript against: it is there to be read.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.eval.asr import generate_for_utterances, pending_utterances
from soda_jax.eval.context import EvalContext, audio_until_marker, frame_valid, frame_valid_rate, to_16k
from soda_jax.eval.results import TaskStore
from soda_jax.eval.sampling_choice import Sampling, describe
from soda_jax.eval.speaker import cosine_similarities
from soda_jax.eval.tts import Scorers, write_wav
from soda_jax.inference.prompts import continuation_prompt


@dataclasses.dataclass(frozen=True)
class ContinuationTask:
    name: str
    path: str
    """LibriSpeech-layout root; every utterance of ``split`` gives a prompt."""
    split: str = "test-clean"
    prompt_seconds: float = 3.0
    scorers: Scorers = Scorers()
    max_items: int | None = None
    sampling: Sampling = Sampling()


def run_continuation(ctx: EvalContext, task: ContinuationTask, store: TaskStore) -> dict:
    prompt_samples = int(round(task.prompt_seconds * MIMI_SAMPLE_RATE))

    def records_of(kept, generations):
        records, whole, continued, prompt_waves = [], [], [], []
        for (_, wave, ids), generation in zip(kept, generations):
            new = audio_until_marker(ctx.vocab, generation.tokens, ctx.num_codebooks)
            whole.append(ctx.decode_audio_ids(np.concatenate([ids, new])))
            continued.append(ctx.decode_audio_ids(new))
            prompt_waves.append(wave)
        transcripts = (
            ctx.asr(task.scorers.asr, task.scorers.asr_model).transcribe([to_16k(w) for w in whole]) if whole else []
        )
        voiced = [i for i, w in enumerate(continued) if w.size]
        similarity = [math.nan] * len(kept)
        if voiced:
            encoder = ctx.speaker(task.scorers.speaker, task.scorers.speaker_model)
            for i, s in zip(
                voiced,
                cosine_similarities(
                    encoder, [to_16k(continued[i]) for i in voiced], [to_16k(prompt_waves[i]) for i in voiced]
                ),
            ):
                similarity[i] = float(s)
        for (utterance, _, _), generation, wave, cont, text, sim in zip(
            kept, generations, whole, continued, transcripts, similarity
        ):
            path = fileio.join(store.audio_dir, f"{utterance.id}.wav")
            write_wav(path, wave)
            records.append(
                {
                    "id": utterance.id,
                    "transcript": text,
                    "speaker_similarity": sim,
                    "wav": path,
                    "generated_seconds": cont.size / MIMI_SAMPLE_RATE,
                    "finish": generation.finish_reason,
                    "frame_valid": frame_valid(ctx.vocab, generation.tokens, ctx.num_codebooks),
                }
            )
        return records

    generate_for_utterances(
        ctx,
        store,
        (
            (index, utterance, wave[:prompt_samples])
            for index, utterance, wave in pending_utterances(task.path, task.split, task.max_items, store)
        ),
        desc=task.name,
        kind="continuation",
        sampling=task.sampling,
        prompt_of=lambda index, ids: continuation_prompt(ctx.vocab, ids),
        records_of=records_of,
    )
    records = store.scored()
    similarities = [r["speaker_similarity"] for r in records if not math.isnan(r["speaker_similarity"])]
    return {
        "metrics": {
            "speaker_similarity": float(np.mean(similarities)) if similarities else math.nan,
            "generated_seconds": float(np.mean([r["generated_seconds"] for r in records])) if records else math.nan,
            "frame_valid_rate": frame_valid_rate(records),
        },
        "headline": "speaker_similarity",
        "items": len(records),
        "no_audio": sum(r["generated_seconds"] == 0 for r in records),
        "backends": {"asr": task.scorers.asr, "speaker": task.scorers.speaker},
        "settings": {**dataclasses.asdict(task), "sampling": describe("continuation", task.sampling)},
    }

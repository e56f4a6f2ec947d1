"""Voice-conditioned TTS on the Seed-TTS eval layout, scored by an ASR backend and a speaker encoder.

Prompt (SODA's): ``<bos> <|text_start|> prompt_text <|text_end|> <|audio_start|> prompt A
<|audio_end|> <|text_start|> target_text <|text_end|> <|audio_start|>``; generation stops at
``<|audio_end|>``, is cut to whole frames, Mimi-decoded and written as a 24 kHz WAV. Scores:

* WER of the ASR transcript against ``target_text`` (Seed-TTS normaliser): the mean of
  per-utterance WERs x 100 (Seed-TTS eval's number) and corpus WER;
* speaker similarity: cosine between the output's and the **prompt** wav's speaker embeddings;
* frame-valid rate: the share of generations whose audio is whole frames in codebook order, closed by
  ``<|audio_end|>`` (`context.frame_valid`), not cut off by the token budget.

A generation without a single whole frame is scored as an empty transcript (WER 1) and has no
similarity; it is counted in ``no_audio``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.eval.context import EvalContext, audio_until_marker, frame_valid, frame_valid_rate, to_16k
from soda_jax.eval.normalize import normalizer
from soda_jax.eval.readers import TOO_LONG, TtsItem, audio_bytes_of, read_seed_tts
from soda_jax.eval.results import TaskStore
from soda_jax.eval.sampling_choice import Sampling, describe, sampling_params
from soda_jax.eval.speaker import cosine_similarities
from soda_jax.eval.wer import utterance_errors, word_error_rate
from soda_jax.inference.prompts import voice_tts_prompt


@dataclasses.dataclass(frozen=True)
class Scorers:
    """Which ASR and speaker backends judge generated speech (`asr_backends`, `speaker`)."""

    asr: str = "pocketsphinx"
    """``pocketsphinx`` (offline) or ``whisper``."""
    asr_model: str | None = None
    """Whisper weights (local dir or cached hub id); None: ``openai/whisper-large-v3``."""
    speaker: str = "resemblyzer"
    """``resemblyzer`` (offline) or ``wavlm``."""
    speaker_model: str | None = None


@dataclasses.dataclass(frozen=True)
class TtsTask:
    name: str
    meta_path: str
    """A Seed-TTS eval ``meta.lst``."""
    scorers: Scorers = Scorers()
    normalizer: str = "seed_tts"
    max_items: int | None = None
    sampling: Sampling = Sampling()


def write_wav(path: str, wave: np.ndarray) -> None:
    fileio.atomic_write_bytes(path, audio_bytes_of(wave, MIMI_SAMPLE_RATE))


def run_tts(ctx: EvalContext, task: TtsTask, store: TaskStore) -> dict:
    norm = normalizer(task.normalizer)
    progress = tqdm(desc=task.name, unit="utt", initial=len(store))
    batch: list[tuple[int, TtsItem, np.ndarray]] = []

    def flush():
        if not batch:
            return
        prompt_ids = ctx.audio_ids([wave for _, _, wave in batch])
        prompts, params, kept = [], [], []
        for (index, item, wave), ids in zip(batch, prompt_ids):
            try:
                prompt = voice_tts_prompt(ctx.vocab, item.prompt_text, ids, item.target_text)
            except ValueError as error:
                store.skip(item.id, "malformed_record", f"{task.meta_path}: {item.id}: {error}")
                continue
            if prompt.size >= ctx.context_length:
                store.skip(
                    item.id, TOO_LONG, f"prompt of {prompt.size} tokens; the model's context is {ctx.context_length}"
                )
                continue
            prompts.append(prompt)
            params.append(sampling_params(ctx.vocab, "voice_tts", task.sampling, index))
            kept.append((item, wave))
        generations = ctx.generate(prompts, params) if prompts else []
        outputs = [
            ctx.decode_audio_ids(audio_until_marker(ctx.vocab, g.tokens, ctx.num_codebooks)) for g in generations
        ]
        voiced = [i for i, wave in enumerate(outputs) if wave.size]
        transcripts = [""] * len(outputs)
        if voiced:
            asr = ctx.asr(task.scorers.asr, task.scorers.asr_model)
            for i, text in zip(voiced, asr.transcribe([to_16k(outputs[i]) for i in voiced])):
                transcripts[i] = text
        similarity = [math.nan] * len(outputs)
        if voiced:
            encoder = ctx.speaker(task.scorers.speaker, task.scorers.speaker_model)
            scores = cosine_similarities(
                encoder, [to_16k(outputs[i]) for i in voiced], [to_16k(kept[i][1]) for i in voiced]
            )
            for i, s in zip(voiced, scores):
                similarity[i] = float(s)
        records = []
        for (item, _), wave, generation, text, sim in zip(kept, outputs, generations, transcripts, similarity):
            wav_path = fileio.join(store.audio_dir, f"{item.id}.wav")
            if wave.size:
                write_wav(wav_path, wave)
            reference = norm(item.target_text)
            errors, words = utterance_errors(reference, norm(text)) if reference else (0, 0)
            records.append(
                {
                    "id": item.id,
                    "target_text": item.target_text,
                    "transcript": text,
                    "utterance_wer": errors / words if words else math.nan,
                    "speaker_similarity": sim,
                    "seconds": wave.size / MIMI_SAMPLE_RATE,
                    "finish": generation.finish_reason,
                    "frame_valid": frame_valid(ctx.vocab, generation.tokens, ctx.num_codebooks),
                    "wav": wav_path if wave.size else None,
                }
            )
        store.add(records)
        progress.update(len(batch))
        batch.clear()

    for index, item, wave in store.pending(
        read_seed_tts(task.meta_path), lambda item: item.prompt_audio, task.max_items
    ):
        batch.append((index, item, wave))
        if len(batch) >= ctx.batch_size:
            flush()
    flush()
    progress.close()
    return summarize_generated_speech(task, store.scored(), norm, describe("voice_tts", task.sampling))


def summarize_generated_speech(task, records: list[dict], norm, sampling: dict) -> dict:
    wer = word_error_rate([r["target_text"] for r in records], [r["transcript"] for r in records], norm)
    similarities = [r["speaker_similarity"] for r in records if not math.isnan(r["speaker_similarity"])]
    return {
        "metrics": {
            "wer_x100": 100 * wer.mean_utterance_wer,
            "corpus_wer": wer.corpus_wer,
            "speaker_similarity": float(np.mean(similarities)) if similarities else math.nan,
            "frame_valid_rate": frame_valid_rate(records),
        },
        "headline": "wer_x100",
        "items": len(records),
        "wer": wer.to_dict(),
        "no_audio": sum(r["wav"] is None for r in records),
        "backends": {
            "asr": task.scorers.asr,
            "asr_model": task.scorers.asr_model,
            "speaker": task.scorers.speaker,
            "speaker_model": task.scorers.speaker_model,
            "note": "comparable to the paper only with SODA's backends (whisper-large-v3, WavLM-large)",
        },
        "settings": {**dataclasses.asdict(task), "sampling": sampling},
    }

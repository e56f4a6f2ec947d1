"""One call per task, from raw inputs (text, audio files) to output files: what ``soda generate`` runs.

Each call writes ``{out_dir}/{name}.wav`` (audio tasks) or ``{name}.txt`` (ASR) and
``{name}.json``: the task, checkpoint, inputs, prompt ids, sampling parameters (seed included),
generated ids, finish reason and what was written.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from soda_jax import fileio
from soda_jax.audio.audio_io import load_audio
from soda_jax.inference import prompts
from soda_jax.inference.generate import Generation, PromptTooLongError, generate
from soda_jax.inference.loader import LoadedModel
from soda_jax.inference.parse import codes_to_wav, generated_audio, generated_text
from soda_jax.inference.sampling import SamplingParams

logger = logging.getLogger(__name__)

CLI_TASKS = {"tts": "tts", "voice-tts": "voice_tts", "asr": "asr", "continue": "continuation"}
"""``soda generate`` task name -> `prompts.TASK_DEFAULTS` key."""
DEFAULT_PROMPT_SECONDS = 3.0
"""Continuation prompts keep the first 3 s of the input (SODA's setting)."""


class TaskInputError(ValueError):
    """Input a task cannot use; the message names the file or argument."""


@dataclasses.dataclass(frozen=True)
class TaskResult:
    generation: Generation
    record: dict[str, Any]
    """What ``{name}.json`` holds."""
    output_path: str
    """The WAV or text file written."""


def audio_ids(loaded: LoadedModel, codec, path: str, *, max_seconds: float | None = None) -> np.ndarray:
    """Read an audio file, encode it with ``codec`` and return frame-major audio ids (whole frames,
    the first ``max_seconds`` when given)."""
    wave = load_audio(path, codec.sample_rate)  # AudioReadError names the file (unreadable or empty)
    if max_seconds is not None:
        wave = wave[: int(round(max_seconds * codec.sample_rate))]
    if not wave.size:
        raise TaskInputError(f"{path}: no audio samples")
    [codes] = codec.encode([wave])
    codes = codes[: loaded.num_codebooks]
    if codes.max(initial=0) >= loaded.vocab.codebook_size:
        raise TaskInputError(
            f"{path}: the codec gave code {int(codes.max())} but the model's vocabulary has "
            f"{loaded.vocab.codebook_size} codes per codebook"
        )
    return loaded.vocab.codes_to_ids(codes)


def build_prompt(
    task: str,
    loaded: LoadedModel,
    codec,
    *,
    text=None,
    audio=None,
    ref_text=None,
    ref_audio=None,
    shots=None,
    prompt_seconds=DEFAULT_PROMPT_SECONDS,
) -> np.ndarray:
    """The prompt ids of a `TASK_DEFAULTS` task from raw inputs (errors name the missing/bad input).

    ``shots`` (``asr_nshot``): the in-context examples as (audio file, transcript) pairs, in order."""
    vocab = loaded.vocab

    def need(value, flag):
        if value is None or value == "":
            raise TaskInputError(f"task {task} needs {flag}")
        return value

    def text_ids(value, flag):
        # whitespace-only text is nothing to say, though byte-level BPE would give it ids
        if not need(value, flag).strip() or not vocab.encode_text(value).size:
            raise TaskInputError(f"{flag} {value!r} tokenizes to nothing")
        return value

    if task == "tts":
        return prompts.tts_prompt(vocab, text_ids(text, "--text"))
    if task == "voice_tts":
        ref = audio_ids(loaded, codec, need(ref_audio, "--ref-audio"))
        return prompts.voice_tts_prompt(vocab, text_ids(ref_text, "--ref-text"), ref, text_ids(text, "--text"))
    if task == "asr":
        return prompts.asr_prompt(vocab, audio_ids(loaded, codec, need(audio, "--audio")))
    if task == "asr_nshot":
        examples = [
            (audio_ids(loaded, codec, a), text_ids(t, f"the transcript of {a}")) for a, t in need(shots, "shots")
        ]
        return prompts.asr_nshot_prompt(vocab, examples, audio_ids(loaded, codec, need(audio, "--audio")))
    if task == "continuation":
        return prompts.continuation_prompt(
            vocab, audio_ids(loaded, codec, need(audio, "--audio"), max_seconds=prompt_seconds)
        )
    raise TaskInputError(f"unknown task {task!r}; known: {sorted(prompts.TASK_DEFAULTS)}")


def run_task(
    task: str,
    loaded: LoadedModel,
    out_dir: str,
    *,
    params: SamplingParams,
    codec=None,
    name: str | None = None,
    inputs: dict[str, Any] | None = None,
    prompt_seconds: float = DEFAULT_PROMPT_SECONDS,
) -> TaskResult:
    """Build the prompt from ``inputs`` (text, audio, ref_text, ref_audio, shots), generate, write the files."""
    inputs = {k: v for k, v in (inputs or {}).items() if v is not None}
    defaults = prompts.TASK_DEFAULTS[task]
    needs_codec = defaults.output == "audio" or "audio" in inputs or "ref_audio" in inputs
    if codec is None and needs_codec:
        codec = loaded.mimi_codec()
    prompt = build_prompt(task, loaded, codec, prompt_seconds=prompt_seconds, **inputs)
    if prompt.size >= loaded.context_length:
        source = ", ".join(f"{k}={v}" for k, v in inputs.items())
        raise PromptTooLongError(
            f"the {task} prompt from {source} has {prompt.size} tokens; the model's context is {loaded.context_length}"
        )
    [generation] = generate(loaded, [prompt], params)
    name = name or task
    record: dict[str, Any] = {
        "task": task,
        "checkpoint": loaded.source,
        "inputs": inputs,
        "num_codebooks": loaded.num_codebooks,
        "prompt_ids": prompt.tolist(),
        "sampling": dataclasses.asdict(params),
        "seed": params.seed,
        "generated_ids": generation.tokens.tolist(),
        "finish_reason": generation.finish_reason,
        "mean_logprob": float(generation.logprobs.mean()) if generation.logprobs.size else None,
    }
    if defaults.output == "audio":
        codes = generated_audio(loaded.vocab, prompt, generation.tokens, loaded.num_codebooks)
        output = fileio.join(out_dir, f"{name}.wav")
        record["frames"] = int(codes.shape[1])
        if codes.shape[1]:
            wave = codes_to_wav(codec, codes, output)
            record.update(
                samples=int(wave.shape[0]), sample_rate=codec.sample_rate, seconds=wave.shape[0] / codec.sample_rate
            )
        else:
            output = ""
            logger.warning("%s generated no whole audio frame; no WAV written", task)
        record["codec"] = codec.describe()
    else:
        transcript = generated_text(loaded.vocab, generation.tokens)
        output = fileio.join(out_dir, f"{name}.txt")
        fileio.atomic_write_text(output, transcript + "\n")
        record["text"] = transcript
    record["output"] = output
    fileio.atomic_write_json(fileio.join(out_dir, f"{name}.json"), record)
    return TaskResult(generation, record, output)

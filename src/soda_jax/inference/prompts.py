"""SODA's prompts, exactly as its evaluation code builds them, and the per-task sampling defaults.

Every id comes from `AudioTextVocab` (nothing is hard-coded); audio enters as vocabulary ids,
frame-major (``vocab.codes_to_ids(codes)``). With Llama-3's tokenizer these are SODA's prompts
token for token (docs/inference.md lists them):

    continuation   <bos> <|audio_start|> A                                    -> audio, stop <|audio_end|>
                                                                                 (or SODA's: on through text spans,
                                                                                 `CONTINUATION_TEXT`)
    tts            <bos> <|text_start|> T <|text_end|> <|audio_start|>        -> audio, stop <|audio_end|>
    voice_tts      <bos> <|text_start|> T_ref <|text_end|> <|audio_start|> A_ref <|audio_end|>
                         <|text_start|> T <|text_end|> <|audio_start|>        -> audio, stop <|audio_end|>
    asr            <bos> <|audio_start|> A <|audio_end|> <|text_start|>       -> text, stop <|text_end|>
    asr_nshot      per shot <bos> <|audio_start|> A_i <|audio_end|> <|text_start|> T_i <|text_end|> <eos>,
                   then the asr prompt of the test item (its own <bos>)
    translation    as asr_nshot, each text span opening with "Translation:" (CoVoST2 style)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.inference.sampling import SamplingParams

TRANSLATION_PREFIX = "Translation:"
"""What SODA's CoVoST2 prompts put after <|text_start|> before the translation."""

AudioIds = np.ndarray
"""Audio as vocabulary ids, frame-major (`AudioTextVocab.codes_to_ids`)."""
Shot = tuple[AudioIds, str]
"""An in-context example: (audio ids, its transcript or translation)."""


def _ids(*parts) -> np.ndarray:
    return np.concatenate([np.atleast_1d(np.asarray(p, dtype=np.int32)) for p in parts]).astype(np.int32)


def _audio(vocab: AudioTextVocab, audio: AudioIds) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.int32)
    if audio.ndim != 1 or not audio.size:
        raise ValueError(f"audio must be a non-empty 1-D array of audio ids, got shape {audio.shape}")
    if not vocab.is_audio(audio).all():
        bad = int(np.argmin(vocab.is_audio(audio)))
        raise ValueError(f"audio position {bad} holds id {int(audio[bad])}, which is not an audio id")
    return audio


def _text(vocab: AudioTextVocab, text: str) -> np.ndarray:
    ids = vocab.encode_text(text)
    if not ids.size:
        raise ValueError(f"text {text!r} tokenizes to nothing")
    return ids


def continuation_prompt(vocab: AudioTextVocab, audio: AudioIds) -> np.ndarray:
    """``<bos> <|audio_start|> A``: the model continues the speech."""
    return _ids(vocab.bos_id, vocab.audio_start_id, _audio(vocab, audio))


def tts_prompt(vocab: AudioTextVocab, text: str) -> np.ndarray:
    """``<bos> <|text_start|> T <|text_end|> <|audio_start|>``: the model speaks ``text``."""
    return _ids(vocab.bos_id, vocab.text_start_id, _text(vocab, text), vocab.text_end_id, vocab.audio_start_id)


def voice_tts_prompt(vocab: AudioTextVocab, reference_text: str, reference_audio: AudioIds, text: str) -> np.ndarray:
    """TTS in the voice of a reference utterance (Seed-TTS eval): reference transcript and audio,
    then the target text, then an open audio span."""
    return _ids(
        vocab.bos_id,
        vocab.text_start_id,
        _text(vocab, reference_text),
        vocab.text_end_id,
        vocab.audio_start_id,
        _audio(vocab, reference_audio),
        vocab.audio_end_id,
        vocab.text_start_id,
        _text(vocab, text),
        vocab.text_end_id,
        vocab.audio_start_id,
    )


def asr_prompt(vocab: AudioTextVocab, audio: AudioIds, *, text_prefix: str = "") -> np.ndarray:
    """``<bos> <|audio_start|> A <|audio_end|> <|text_start|>`` (+ ``text_prefix`` ids): the model transcribes."""
    prefix = vocab.encode_text(text_prefix) if text_prefix else np.zeros(0, np.int32)
    return _ids(
        vocab.bos_id, vocab.audio_start_id, _audio(vocab, audio), vocab.audio_end_id, vocab.text_start_id, prefix
    )


def _shot(vocab: AudioTextVocab, audio: AudioIds, text: str, text_prefix: str) -> np.ndarray:
    body = f"{text_prefix} {text}" if text_prefix else text
    return _ids(
        vocab.bos_id,
        vocab.audio_start_id,
        _audio(vocab, audio),
        vocab.audio_end_id,
        vocab.text_start_id,
        _text(vocab, body),
        vocab.text_end_id,
        vocab.eos_id,
    )


def asr_nshot_prompt(vocab: AudioTextVocab, shots: Sequence[Shot], audio: AudioIds) -> np.ndarray:
    """Each shot ``<bos> <|audio_start|> A_i <|audio_end|> <|text_start|> T_i <|text_end|> <eos>``,
    concatenated, then the 0-shot prompt of ``audio``."""
    return _ids(*[_shot(vocab, a, t, "") for a, t in shots], asr_prompt(vocab, audio))


def translation_prompt(vocab: AudioTextVocab, shots: Sequence[Shot], audio: AudioIds) -> np.ndarray:
    """As `asr_nshot_prompt`, with every text span opening ``Translation:`` (shots: (audio, translation))."""
    return _ids(
        *[_shot(vocab, a, t, TRANSLATION_PREFIX) for a, t in shots],
        asr_prompt(vocab, audio, text_prefix=TRANSLATION_PREFIX),
    )


def choose_shots(
    pool_size: int, num_shots: int, *, item_index: int, seed: int, same_for_every_item: bool = False
) -> list[int]:
    """Indices of the in-context examples of test item ``item_index``: drawn per item by an RNG
    seeded with (seed, item), or the same draw for every item (SODA's script's behaviour)."""
    if num_shots > pool_size:
        raise ValueError(f"{num_shots} shots asked from a pool of {pool_size}")
    rng = np.random.default_rng([seed] if same_for_every_item else [seed, item_index])
    return sorted(int(i) for i in rng.choice(pool_size, size=num_shots, replace=False))


@dataclasses.dataclass(frozen=True)
class TaskDefaults:
    """Sampling defaults of one task (SODA's evaluation settings); every field can be overridden."""

    temperature: float
    """0 is greedy."""
    top_p: float
    top_k: int
    """0: no top-k cut."""
    max_new_tokens: int
    stop: tuple[str, ...]
    """Stop markers by name: ``text_end``, ``audio_end``, ``eos`` (resolved with `stop_ids`)."""
    output: str
    """What the task generates: ``audio`` or ``text``."""


CONTINUATION_TEXT: dict[str, tuple[str, ...]] = {
    "stop": ("audio_end", "eos"),
    "drop": ("eos",),
}
"""What a continuation does when the model closes the audio span, by option: the stop markers.

``stop``: generation ends at the model's first <|audio_end|>: the output is the prompt's utterance
continued, audio only. ``drop``: SODA's behaviour (its demo: "text tokens, if generated, are
omitted in audio conversion"): the model may close the span, write a text span (in SODA's
audio-first documents, the transcript of the utterance just spoken) and open another audio span, as
often as the token budget allows; generation ends at EOS or the budget, and converting to audio keeps
the audio spans' whole frames and drops the text (`soda_jax.inference.parse.generated_audio`;
`generated_text_spans` gives what was dropped). The frame constraint holds in both: text only
between the markers, each audio span whole frames from codebook 0."""
DEFAULT_CONTINUATION_TEXT = "stop"
"""The default continuation ends at the first <|audio_end|>: its audio is one stretch of speech the
model generated without interruption, which is what the continuation evaluation scores (speaker
similarity of the continuation to its prompt, the ASR transcript of prompt + continuation), and
every token of the budget goes to audio. ``drop`` (SODA's) splices the next utterances' audio after
each text span the model writes, as SODA's demo did (docs/inference.md)."""

TASK_DEFAULTS: dict[str, TaskDefaults] = {
    # SODA: 3 s prompt, temperature 1.0, top-p 0.9, 1200 new tokens.
    "continuation": TaskDefaults(1.0, 0.9, 0, 1200, CONTINUATION_TEXT[DEFAULT_CONTINUATION_TEXT], "audio"),
    # SODA's Seed-TTS eval settings, used for plain TTS too.
    "tts": TaskDefaults(0.9, 0.8, 0, 1500, ("audio_end", "eos"), "audio"),
    "voice_tts": TaskDefaults(0.9, 0.8, 0, 1500, ("audio_end", "eos"), "audio"),
    # SODA's ASR script: 0-shot sampled at 0.5 / 0.8; N-shot at temperature 1e-4 (greedy in effect: 0 here).
    "asr": TaskDefaults(0.5, 0.8, 0, 200, ("text_end", "eos"), "text"),
    "asr_nshot": TaskDefaults(0.0, 0.8, 0, 200, ("text_end", "eos"), "text"),
    "translation": TaskDefaults(0.0, 0.8, 0, 200, ("text_end", "eos"), "text"),
}
"""Per-task sampling defaults (docs/inference.md)."""


def stop_ids(vocab: AudioTextVocab, names: Sequence[str]) -> tuple[int, ...]:
    """Ids of stop markers named ``text_end``, ``audio_end``, ``eos``."""
    table = {"text_end": vocab.text_end_id, "audio_end": vocab.audio_end_id, "eos": vocab.eos_id}
    unknown = set(names) - set(table)
    if unknown:
        raise ValueError(f"unknown stop names {sorted(unknown)}; known: {sorted(table)}")
    return tuple(table[n] for n in names)


def continuation_stop(continuation_text: str) -> tuple[str, ...]:
    """The stop markers of a continuation under ``continuation_text`` (a `CONTINUATION_TEXT` option)."""
    if continuation_text not in CONTINUATION_TEXT:
        raise ValueError(f"unknown continuation_text {continuation_text!r}; choose from {sorted(CONTINUATION_TEXT)}")
    return CONTINUATION_TEXT[continuation_text]


def sampling_params(
    task: str, vocab: AudioTextVocab, *, continuation_text: str | None = None, **overrides
) -> SamplingParams:
    """`SamplingParams` of ``task`` from `TASK_DEFAULTS`, any field overridden (e.g. ``seed=3``,
    ``max_new_tokens=50``; ``stop_ids`` replaces the task's stop markers).

    ``continuation_text`` (continuation only): ``"stop"`` or ``"drop"`` (SODA's), see `CONTINUATION_TEXT`;
    None: `DEFAULT_CONTINUATION_TEXT`.
    """
    if task not in TASK_DEFAULTS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASK_DEFAULTS)}")
    defaults = TASK_DEFAULTS[task]
    stop = defaults.stop
    if continuation_text is not None:
        if task != "continuation":
            raise ValueError(f"continuation_text={continuation_text!r} applies to the continuation task, not {task!r}")
        stop = continuation_stop(continuation_text)
    fields: dict[str, Any] = dict(
        temperature=defaults.temperature,
        top_p=defaults.top_p,
        top_k=defaults.top_k,
        max_new_tokens=defaults.max_new_tokens,
        stop_ids=stop_ids(vocab, stop),
    )
    fields.update(overrides)
    return SamplingParams(**fields)

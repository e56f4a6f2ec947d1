"""Tasks as prompt/response token pairs, in the vocabulary's own markers (SODA's prompt formats).

A task is a list of *spans*, each text or audio, split into the ones the model is given (prompt)
and the ones it must produce (response). Every span is wrapped in its markers, and the opening
marker of the first response span ends the prompt: it is the cue that says which modality to
answer in, so the model is never trained to guess it::

    ASR   <bos><|audio_start|>A<|audio_end|><|text_start|>   ->   T<|text_end|><eos>
    TTS   <bos><|text_start|>T<|text_end|><|audio_start|>    ->   A<|audio_end|><eos>
    S2ST  <bos><|audio_start|>S<|audio_end|>[<|text_start|>St<|text_end|>]<|text_start|>
                                                             ->   Tt<|text_end|><|audio_start|>TA<|audio_end|><eos>

(the inference issue's ASR and TTS prompts: a model fine-tuned here is prompted by exactly the
prompt part). The response ends with <eos>, as SODA's SFT template
``<bos>{prompt}{% generation %}{response}<eos>{% endgeneration %}`` has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from soda_jax.audio.vocab import AudioTextVocab

TEXT, AUDIO = "text", "audio"
SPAN_KINDS = (TEXT, AUDIO)


@dataclass(frozen=True)
class Span:
    """One text or audio stretch of a task, as vocabulary ids without markers."""

    kind: str
    """``text`` or ``audio``."""
    ids: np.ndarray
    """Text ids, or frame-major audio ids (`AudioTextVocab.codes_to_ids`)."""

    def __post_init__(self):
        if self.kind not in SPAN_KINDS:
            raise ValueError(f"span kind must be one of {SPAN_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class PromptResponse:
    """A task instance as token ids: the model sees ``prompt`` and is trained on ``response``."""

    prompt: np.ndarray
    response: np.ndarray


def _markers(vocab: AudioTextVocab, kind: str) -> tuple[int, int]:
    return (vocab.text_start_id, vocab.text_end_id) if kind == TEXT else (vocab.audio_start_id, vocab.audio_end_id)


def prompt_response(vocab: AudioTextVocab, prompt: Sequence[Span], response: Sequence[Span]) -> PromptResponse:
    """The token pair of a task (module docstring); ``response`` must have at least one span."""
    if not response:
        raise ValueError("a task needs at least one response span")
    prompt_parts: list = [[vocab.bos_id]]
    for span in prompt:
        start, end = _markers(vocab, span.kind)
        prompt_parts += [[start], span.ids, [end]]
    first_start, first_end = _markers(vocab, response[0].kind)
    prompt_parts.append([first_start])
    response_parts: list = [response[0].ids, [first_end]]
    for span in response[1:]:
        start, end = _markers(vocab, span.kind)
        response_parts += [[start], span.ids, [end]]
    response_parts.append([vocab.eos_id])

    def as_ids(parts: list) -> np.ndarray:
        return np.concatenate([np.asarray(p, dtype=np.int32) for p in parts])

    return PromptResponse(prompt=as_ids(prompt_parts), response=as_ids(response_parts))


def asr_pair(vocab: AudioTextVocab, audio: np.ndarray, text: np.ndarray) -> PromptResponse:
    """Speech recognition: audio in, its transcript out."""
    return prompt_response(vocab, [Span(AUDIO, audio)], [Span(TEXT, text)])


def tts_pair(vocab: AudioTextVocab, text: np.ndarray, audio: np.ndarray) -> PromptResponse:
    """Speech synthesis: text in, its audio out."""
    return prompt_response(vocab, [Span(TEXT, text)], [Span(AUDIO, audio)])


S2ST_RESPONSES = ("text_audio", "audio")
"""What a speech-to-speech translation answers: the target text then its audio, or the audio alone."""


def s2st_pair(
    vocab: AudioTextVocab,
    source_audio: np.ndarray,
    target_audio: np.ndarray,
    *,
    target_text: np.ndarray | None = None,
    source_text: np.ndarray | None = None,
    response: str = "text_audio",
) -> PromptResponse:
    """Speech-to-speech translation: source audio (and its transcript, if given) in; the target
    text and audio (``response="text_audio"``) or the target audio alone out."""
    if response not in S2ST_RESPONSES:
        raise ValueError(f"response must be one of {S2ST_RESPONSES}, got {response!r}")
    prompt = [Span(AUDIO, source_audio)] + ([Span(TEXT, source_text)] if source_text is not None else [])
    if response == "text_audio":
        if target_text is None:
            raise ValueError("response 'text_audio' needs the target text")
        answer = [Span(TEXT, target_text), Span(AUDIO, target_audio)]
    else:
        answer = [Span(AUDIO, target_audio)]
    return prompt_response(vocab, prompt, answer)

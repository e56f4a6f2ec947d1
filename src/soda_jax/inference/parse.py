"""Generated ids -> text and whole frames of audio codes -> 24 kHz WAV files.

Built on `soda_jax.data.parse` (the one parser of the interleaved layout); this module adds what
model output needs: text decoded to strings, audio cut to whole frames, the generated part of a
span that began in the prompt, and Mimi decoding to WAV.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence

import numpy as np
import soundfile as sf

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab, codebooks_for
from soda_jax.data import parse as document_parse


@dataclasses.dataclass(frozen=True)
class TextSpan:
    text: str
    ids: np.ndarray
    """Text ids of the span (markers excluded)."""
    terminated: bool = True
    """False when the sequence ended inside the span (no <|text_end|>)."""


@dataclasses.dataclass(frozen=True)
class AudioSpan:
    codes: np.ndarray
    """Codes ``[num_codebooks, frames]`` (int16), whole frames only."""
    terminated: bool = True
    """False when the sequence ended inside the span (no <|audio_end|>)."""
    dropped_tokens: int = 0
    """Tokens of an incomplete frame cut off (trailing, or leading when the span began in a prompt)."""


Span = TextSpan | AudioSpan


def _audio_span(vocab: AudioTextVocab, ids: np.ndarray, num_codebooks: int, terminated: bool, skip: int = 0) -> AudioSpan:
    """Whole frames of ``ids[skip:]``, starting at the first frame boundary of the span at or after ``skip``."""
    lead = (-skip) % num_codebooks
    codes, report = vocab.ids_to_codes(np.asarray(ids)[skip + lead :], codebooks_for(num_codebooks), repair=True)
    return AudioSpan(codes, terminated, report.dropped_tokens + lead)


def parse_document(vocab: AudioTextVocab, ids: Sequence[int] | np.ndarray, num_codebooks: int, *, start: int = 0) -> list[Span]:
    """The spans of ``ids`` in order: text decoded to ``str``, audio as whole frames of codes.

    The last span may be unterminated (model output). With ``start``, only what lies at or after
    position ``start`` is returned (the generated part of ``prompt + generated``): a span the prompt
    opened is clipped to its generated tokens, audio from the next whole frame of the span.
    Malformed layouts raise `soda_jax.data.parse.DocumentParseError` naming the position.
    """
    spans: list[Span] = []
    for span in document_parse.parse_document(ids, vocab, partial=True):
        end = span.start + span.ids.shape[0]
        if span.start < start and end <= start:
            continue
        skip = max(0, start - span.start)
        if span.kind == document_parse.TEXT:
            text_ids = np.asarray(span.ids[skip:], dtype=np.int32)
            spans.append(TextSpan(vocab.decode_text(text_ids), text_ids, span.terminated))
        else:
            spans.append(_audio_span(vocab, span.ids, num_codebooks, span.terminated, skip))
    return spans


def generated_spans(vocab: AudioTextVocab, prompt: np.ndarray, tokens: np.ndarray, num_codebooks: int) -> list[Span]:
    """The spans of a generation (``tokens`` after ``prompt``), as `parse_document` returns them."""
    prompt = np.asarray(prompt)
    return parse_document(vocab, np.concatenate([prompt, np.asarray(tokens)]), num_codebooks, start=prompt.shape[0])


def generated_text(vocab: AudioTextVocab, tokens: np.ndarray) -> str:
    """The text a text task generated: the ids before the first non-text id (a marker, EOS or
    audio), decoded. Never fails, so an evaluation can score whatever came out."""
    tokens = np.asarray(tokens)
    non_text = np.flatnonzero((tokens >= vocab.text_size) | (tokens == vocab.eos_id) | (tokens < 0))
    end = int(non_text[0]) if non_text.size else tokens.shape[0]
    return vocab.decode_text(tokens[:end]).strip()


def generated_audio(vocab: AudioTextVocab, prompt: np.ndarray, tokens: np.ndarray, num_codebooks: int) -> np.ndarray:
    """Codes ``[K, frames]`` of the audio a generation produced: its audio spans' whole frames joined,
    in order. Text the generation wrote between them (SODA's continuation, ``continuation_text="drop"``
    in `soda_jax.inference.prompts`) is not audio and is dropped; `generated_text_spans` returns it."""
    audio = [s.codes for s in generated_spans(vocab, prompt, tokens, num_codebooks) if isinstance(s, AudioSpan)]
    if not audio:
        return np.zeros((num_codebooks, 0), np.int16)
    return np.concatenate(audio, axis=1)


def generated_text_spans(vocab: AudioTextVocab, prompt: np.ndarray, tokens: np.ndarray, num_codebooks: int) -> list[str]:
    """The text spans of a generation, decoded, in order: what converting it to audio drops."""
    return [s.text for s in generated_spans(vocab, prompt, tokens, num_codebooks) if isinstance(s, TextSpan)]


def write_wav(path: str, wave: np.ndarray, sample_rate: int = 24_000) -> None:
    """Write float audio as a 16-bit PCM WAV (atomic; local path or fsspec URL)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(wave, np.float32), -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    fileio.atomic_write_bytes(path, buffer.getvalue())


def codes_to_wav(codec, codes: np.ndarray, path: str) -> np.ndarray:
    """Decode codes ``[K, frames]`` with ``codec`` (a `MimiCodec`) and write the 24 kHz WAV; returns
    the waveform (``frames * 1920`` samples)."""
    if codes.shape[1] == 0:
        raise ValueError(f"{path}: no whole audio frame to decode")
    wave = codec.decode([np.asarray(codes)])[0]
    write_wav(path, wave, codec.sample_rate)
    return wave

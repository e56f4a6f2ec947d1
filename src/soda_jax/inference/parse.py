"""Generated ids -> text and whole frames of audio codes -> 24 kHz WAV files.

Built on `soda_jax.data.parse` (the one parser of the interleaved layout, and its one `Span`); this
module adds what model output needs: the spans of the generated part of ``prompt + generated``,
text decoded to strings, audio cut to whole frames, and Mimi decoding to WAV.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data.parse import AUDIO, TEXT, Span, parse_document, span_codes


def generated_spans(vocab: AudioTextVocab, prompt: np.ndarray, tokens: np.ndarray) -> list[Span]:
    """The spans of a generation (``tokens`` after ``prompt``), in order: a span the prompt opened is
    clipped to its generated tokens, and the last span may be unterminated. Malformed layouts raise
    `soda_jax.data.parse.DocumentParseError` naming the position."""
    prompt = np.asarray(prompt)
    return parse_document(np.concatenate([prompt, np.asarray(tokens)]), vocab, partial=True, start=prompt.shape[0])


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
    in `soda_jax.inference.prompts`) is not audio and is dropped; `generated_text_spans` returns it.
    Each span starts at a whole frame and loses an incomplete last one."""
    spans = generated_spans(vocab, prompt, tokens)
    audio = [span_codes(s, vocab, num_codebooks, repair=True)[0] for s in spans if s.kind == AUDIO]
    if not audio:
        return np.zeros((num_codebooks, 0), np.int16)
    return np.concatenate(audio, axis=1)


def generated_text_spans(vocab: AudioTextVocab, prompt: np.ndarray, tokens: np.ndarray) -> list[str]:
    """The text spans of a generation, decoded, in order: what converting it to audio drops."""
    return [vocab.decode_text(s.ids) for s in generated_spans(vocab, prompt, tokens) if s.kind == TEXT]


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

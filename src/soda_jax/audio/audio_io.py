"""Reading audio of any format into the codec's input: mono float32 at Mimi's 24 kHz.

soundfile (libsndfile) decodes WAV, FLAC, OGG/Vorbis/Opus and MP3; soxr resamples (the "HQ"
quality is transparent for speech and ~100x real time per core). Paths are fsspec URLs, so
the same call reads local files, ``gs://`` objects or bytes already pulled out of a tar member.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

from soda_jax import fileio

MIMI_SAMPLE_RATE = 24_000
"""Mimi's input and output sample rate (Hz)."""


class AudioReadError(ValueError):
    """Audio that could not be decoded; the message names the file."""


def to_mono(wave: np.ndarray) -> np.ndarray:
    """Average the channels of ``[samples, channels]`` audio (1-D input is returned as is)."""
    if wave.ndim == 1:
        return wave
    if wave.ndim != 2:
        raise ValueError(f"audio must be [samples] or [samples, channels], got shape {wave.shape}")
    return wave.mean(axis=1)


def resample(wave: np.ndarray, from_rate: int, to_rate: int = MIMI_SAMPLE_RATE) -> np.ndarray:
    """Resample 1-D float audio with soxr (a no-op when the rates already match)."""
    if from_rate == to_rate:
        return wave
    return soxr.resample(wave, from_rate, to_rate, quality="HQ")


def decode_native(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Encoded audio bytes (any soundfile format) -> (mono float32, the file's own sample rate).

    ``name`` is only used in the error message, so a failure points at the file or tar member.
    """
    try:
        wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioReadError(f"{name}: cannot decode audio ({type(e).__name__}: {e})") from e
    if wave.shape[0] == 0:
        raise AudioReadError(f"{name}: audio has no samples")
    return to_mono(wave), int(rate)


def decode_audio(data: bytes, name: str, sample_rate: int = MIMI_SAMPLE_RATE) -> np.ndarray:
    """Encoded audio bytes (any soundfile format) -> mono float32 at ``sample_rate``."""
    wave, rate = decode_native(data, name)
    return np.ascontiguousarray(resample(wave, rate, sample_rate), dtype=np.float32)


def load_audio(url: str, sample_rate: int = MIMI_SAMPLE_RATE) -> np.ndarray:
    """Read an audio file (local path or fsspec URL) as mono float32 at ``sample_rate``."""
    return decode_audio(fileio.read_bytes(url), url, sample_rate)

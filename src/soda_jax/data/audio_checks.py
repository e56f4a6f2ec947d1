"""Plausibility checks on a record's audio and transcript, each failure a counted skip reason.

The corpus readers call two functions: `decode_checked` on a file's bytes (decodable, a plausible
sample rate, finite samples, the duration its metadata states) and `plausible_utterance` on each
utterance cut from it (not silent, a speaking rate a person can reach). `transcript` turns a
metadata value into text, so a JSON ``null`` is an empty transcript and never the text "None".

The limits are deliberately wide: they catch broken files (a truncated MP3, a header claiming
100 Hz, NaN samples, a stereo pair in opposite phase that mixes down to nothing), not unusual
speech.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE, AudioReadError, decode_native, resample
from soda_jax.data.sources.utterance import UNREADABLE_AUDIO, SkipCounter

DURATION_MISMATCH = "duration_mismatch"
IMPLAUSIBLE_SAMPLE_RATE = "implausible_sample_rate"
IMPLAUSIBLE_SPEAKING_RATE = "implausible_speaking_rate"
NON_FINITE_AUDIO = "non_finite_audio"
SILENT_AUDIO = "silent_audio"

SAMPLE_RATE_RANGE = (8_000, 192_000)
"""Hz. Telephone speech (8 kHz) to studio masters (192 kHz); anything else is a broken header."""
DURATION_TOLERANCE_SECONDS = 0.25
"""Decoded length may differ from the metadata's ``duration`` by this much plus ..."""
DURATION_TOLERANCE_FRACTION = 0.05
"""... this share of the stated duration (MP3/Opus encoder delay and padding, rounding)."""
CHARS_PER_SECOND_RANGE = (0.3, 40.0)
"""Transcript characters (whitespace excluded) per second of audio. Read English is ~15/s and
Mandarin ~5/s; a cut-short file holding a whole sentence, or a three-word caption over ten minutes,
falls outside."""
SILENCE_RMS = 1e-4
"""RMS floor (-80 dBFS of full scale 1.0): quieter audio is silence, whatever its transcript says.
16-bit dither alone is ~1e-5."""


def transcript(value: Any) -> str:
    """A metadata text value as a stripped transcript; ``None`` (JSON null) is the empty text."""
    return "" if value is None else str(value).strip()


def duration_mismatch(decoded_seconds: float, stated_seconds: float) -> bool:
    """Whether a decoded length is too far from the length the metadata states."""
    tolerance = DURATION_TOLERANCE_SECONDS + DURATION_TOLERANCE_FRACTION * stated_seconds
    return abs(decoded_seconds - stated_seconds) > tolerance


def decode_checked(
    data: bytes, where: str, skips: SkipCounter, stated_seconds: float | None = None
) -> np.ndarray | None:
    """Mono float32 at 24 kHz, or None when the file fails a check (the reason counted in ``skips``)."""
    try:
        wave, rate = decode_native(data, where)
    except AudioReadError as e:
        skips.skip(UNREADABLE_AUDIO, where, str(e))
        return None
    if not SAMPLE_RATE_RANGE[0] <= rate <= SAMPLE_RATE_RANGE[1]:
        skips.skip(
            IMPLAUSIBLE_SAMPLE_RATE, where, f"{rate} Hz (plausible: {SAMPLE_RATE_RANGE[0]}..{SAMPLE_RATE_RANGE[1]})"
        )
        return None
    bad = np.size(wave) - int(np.isfinite(wave).sum())
    if bad:
        skips.skip(NON_FINITE_AUDIO, where, f"{bad} NaN/Inf samples")
        return None
    audio = np.ascontiguousarray(resample(wave, rate, MIMI_SAMPLE_RATE), dtype=np.float32)
    seconds = len(audio) / MIMI_SAMPLE_RATE
    if stated_seconds is not None and duration_mismatch(seconds, stated_seconds):
        skips.skip(DURATION_MISMATCH, where, f"decodes to {seconds:.2f} s, metadata says {stated_seconds:.2f} s")
        return None
    return audio


def plausible_utterance(text: str, audio: np.ndarray, where: str, skips: SkipCounter) -> bool:
    """Whether an utterance's audio is audible and fits its transcript; if not, counted in ``skips``."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms < SILENCE_RMS:
        skips.skip(SILENT_AUDIO, where, f"RMS {rms:.1e} < {SILENCE_RMS:.0e}")
        return False
    seconds = len(audio) / MIMI_SAMPLE_RATE
    chars = sum(not c.isspace() for c in text)
    rate = chars / seconds
    if not CHARS_PER_SECOND_RANGE[0] <= rate <= CHARS_PER_SECOND_RANGE[1]:
        skips.skip(
            IMPLAUSIBLE_SPEAKING_RATE,
            where,
            f"{chars} characters in {seconds:.2f} s = {rate:.2f}/s "
            f"(plausible: {CHARS_PER_SECOND_RANGE[0]}..{CHARS_PER_SECOND_RANGE[1]})",
        )
        return False
    return True

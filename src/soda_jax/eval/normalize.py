"""Transcript normalisers applied to both reference and hypothesis before WER.

* ``soda``: SODA's LibriSpeech normaliser (potsawee/blueberry-eval): delete ``. , ! ? ; : " ' - ( ) [ ] { }``
  and curly quotes, collapse whitespace, strip, lowercase.
* ``seed_tts``: Seed-TTS eval's: punctuation removed except apostrophes, lowercased.
* ``whisper``: Whisper's English normaliser (transformers' ``EnglishTextNormalizer``: contractions,
  numbers spelled as digits, British spellings when a mapping is given), for comparison with
  Whisper-based papers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

SODA_DELETED = set(".,!?;:\"'-()[]{}") | set("\u2018\u2019\u201c\u201d")
"""Characters SODA's normaliser deletes (ASCII punctuation it lists plus curly quotes)."""
_SODA_TABLE = str.maketrans({c: None for c in SODA_DELETED})
_WHITESPACE = re.compile(r"\s+")


def soda_normalize(text: str) -> str:
    """SODA's ASR normaliser: ``"Hello, World!  It's (me)."`` -> ``"hello world its me"``."""
    return _WHITESPACE.sub(" ", text.translate(_SODA_TABLE)).strip().lower()


def seed_tts_normalize(text: str) -> str:
    """Seed-TTS eval's normaliser: every Unicode punctuation mark but the apostrophe removed, lowercased."""
    kept = "".join(" " if unicodedata.category(c).startswith("P") and c not in "'\u2019" else c for c in text).replace(
        "\u2019", "'"
    )
    return _WHITESPACE.sub(" ", kept).strip().lower()


def whisper_normalize(text: str) -> str:
    """Whisper's English normaliser (no British-to-American spelling map: that file ships with
    Whisper's tokenizer, which is not available offline)."""
    return _whisper()(text)


_WHISPER = None


def _whisper():
    global _WHISPER
    if _WHISPER is None:
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        _WHISPER = EnglishTextNormalizer({})
    return _WHISPER


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "soda": soda_normalize,
    "seed_tts": seed_tts_normalize,
    "whisper": whisper_normalize,
    "none": lambda text: text,
}


def normalizer(name: str) -> Callable[[str], str]:
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown normaliser {name!r}; known: {sorted(NORMALIZERS)}") from None

"""Speech recognisers that score generated speech (TTS WER, continuation transcripts).

* ``pocketsphinx``: CMU PocketSphinx 5; its wheel ships an US-English acoustic model, language
  model and dictionary, so it runs offline anywhere: the default, and what the tests use. Much
  weaker than Whisper: its WERs are for comparing our own models, not for the paper's table.
* ``whisper``: Whisper through transformers (SODA used ``openai/whisper-large-v3``, English,
  16 kHz input), from a local directory or a hub id already in the local cache.

`asr_backend(name, model)` builds one; ``transcribe`` takes mono float32 waves at 16 kHz.
`PocketSphinxAsr.align` force-aligns a known transcript (word times), which cuts held-out
recordings into word-aligned excerpts for the demo's mini task sets (`eval.heldout`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

ASR_SAMPLE_RATE = 16_000
"""Both recognisers take 16 kHz audio."""
ALIGN_FRAMES_PER_SECOND = 100
"""PocketSphinx's feature frame rate (10 ms frames): the unit of its segment times."""
WHISPER_DEFAULT = "openai/whisper-large-v3"


class AsrBackend(Protocol):
    name: str

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[str]:
        """One transcript per mono float32 16 kHz wave."""


class PocketSphinxAsr:
    """PocketSphinx with the English model its wheel ships."""

    name = "pocketsphinx"

    def __init__(self):
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")
        self._aligner: Decoder | None = None
        """Its own decoder for `align`: alignment mode would stick to ``transcribe``'s."""

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[str]:
        out = []
        for wave in waves:
            self._decoder.start_utt()
            self._decoder.process_raw(_pcm16(wave), full_utt=True)
            self._decoder.end_utt()
            hypothesis = self._decoder.hyp()
            out.append(hypothesis.hypstr if hypothesis is not None else "")
        return out

    def align(self, wave: np.ndarray, text: str) -> list[tuple[str, float, float]]:
        """Forced alignment of ``text`` (lower-case words of the dictionary) to a 16 kHz wave:
        ``(word, start_s, end_s)`` of every segment in time order, fillers included (``<sil>``,
        ``<s>``, ``</s>``; pronunciation variants as ``word(2)``). Empty when it cannot align (a word
        not in the dictionary). A search that ends early reports only the words it reached."""
        from pocketsphinx import Decoder

        if self._aligner is None:
            self._aligner = Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")
        aligner = self._aligner
        try:
            aligner.set_align_text(text)
        except RuntimeError:
            return []
        aligner.start_utt()
        aligner.process_raw(_pcm16(wave), full_utt=True)
        aligner.end_utt()
        rate = ALIGN_FRAMES_PER_SECOND
        return [(s.word, s.start_frame / rate, (s.end_frame + 1) / rate) for s in aligner.seg()]


def _pcm16(wave: np.ndarray) -> bytes:
    return (np.clip(np.asarray(wave, np.float32), -1, 1) * 32767).astype("<i2").tobytes()


class WhisperAsr:
    """Whisper (transformers), English transcription, greedy."""

    name = "whisper"

    def __init__(self, model: str = WHISPER_DEFAULT, *, batch_size: int = 8):
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.model_name, self.batch_size = model, batch_size
        self._processor = WhisperProcessor.from_pretrained(model)
        self._model = WhisperForConditionalGeneration.from_pretrained(model, torch_dtype=torch.float32).eval()

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[str]:
        import torch

        out: list[str] = []
        for start in range(0, len(waves), self.batch_size):
            batch = [np.asarray(w, np.float32) for w in waves[start : start + self.batch_size]]
            features = self._processor(batch, sampling_rate=ASR_SAMPLE_RATE, return_tensors="pt").input_features
            with torch.no_grad():
                ids = self._model.generate(features, language="en", task="transcribe")
            out += [t.strip() for t in self._processor.batch_decode(ids, skip_special_tokens=True)]
        return out


def asr_backend(name: str, model: str | None = None) -> AsrBackend:
    """``pocketsphinx`` or ``whisper`` (``model``: a local directory or cached hub id)."""
    if name == "pocketsphinx":
        return PocketSphinxAsr()
    if name == "whisper":
        return WhisperAsr(model or WHISPER_DEFAULT)
    raise ValueError(f"unknown ASR backend {name!r}; known: pocketsphinx, whisper")

"""Speaker similarity: cosine between speaker embeddings of two recordings.

* ``resemblyzer``: a GE2E d-vector encoder (256-d) whose weights ship in its wheel: offline, the
  default and what the tests use.
* ``wavlm``: WavLM speaker verification x-vectors through transformers (``WavLMForXVector``; SODA
  used WavLM-large), from a local directory or cached hub id.

Numbers are comparable between models scored with the same backend only; results name it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

SPEAKER_SAMPLE_RATE = 16_000
WAVLM_DEFAULT = "microsoft/wavlm-base-plus-sv"


class SpeakerEncoder(Protocol):
    name: str

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-norm embeddings ``[N, D]`` of mono float32 16 kHz waves."""


class ResemblyzerSpeaker:
    name = "resemblyzer"

    def __init__(self):
        from resemblyzer import VoiceEncoder

        self._encoder = VoiceEncoder(device="cpu", verbose=False)

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        from resemblyzer import preprocess_wav

        rows = []
        for wave in waves:
            trimmed = preprocess_wav(np.asarray(wave, np.float32), source_sr=SPEAKER_SAMPLE_RATE)
            # Voice-activity trimming can remove everything from a silent or noise-only clip;
            # embed the untrimmed wave then, so the item still gets a (low) similarity.
            rows.append(self._encoder.embed_utterance(trimmed if trimmed.size else np.asarray(wave, np.float32)))
        return _unit(np.stack(rows))


class WavLMSpeaker:
    name = "wavlm"

    def __init__(self, model: str = WAVLM_DEFAULT):
        from transformers import AutoFeatureExtractor, WavLMForXVector

        self.model_name = model
        self._features = AutoFeatureExtractor.from_pretrained(model)
        self._model = WavLMForXVector.from_pretrained(model).eval()

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        rows = []
        for wave in waves:  # one at a time: padding changes x-vectors
            inputs = self._features(
                [np.asarray(wave, np.float32)], sampling_rate=SPEAKER_SAMPLE_RATE, return_tensors="pt"
            )
            with torch.no_grad():
                rows.append(self._model(**inputs).embeddings[0].numpy())
        return _unit(np.stack(rows))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cosine_similarities(encoder: SpeakerEncoder, a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """Cosine similarity of each pair ``(a[i], b[i])``."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} recordings against {len(b)}")
    if not len(a):
        return np.zeros(0, np.float32)
    return np.sum(encoder.embed(a) * encoder.embed(b), axis=-1)


def speaker_encoder(name: str, model: str | None = None) -> SpeakerEncoder:
    """``resemblyzer`` or ``wavlm`` (``model``: a local directory or cached hub id)."""
    if name == "resemblyzer":
        return ResemblyzerSpeaker()
    if name == "wavlm":
        return WavLMSpeaker(model or WAVLM_DEFAULT)
    raise ValueError(f"unknown speaker backend {name!r}; known: resemblyzer, wavlm")

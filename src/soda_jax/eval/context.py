"""What every task needs from the model under evaluation: scoring, generation, the codec, scorers.

One `EvalContext` per evaluation: the model loads once (inference's loader, sharded on its mesh),
the Mimi codec and the ASR / speaker backends are built on first use and shared by the tasks.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Sequence

import numpy as np

from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE, resample
from soda_jax.audio.codec import CodecConfig, MimiCodec
from soda_jax.audio.vocab import AudioTokenError, codebooks_for
from soda_jax.eval.asr_backends import ASR_SAMPLE_RATE, AsrBackend, asr_backend
from soda_jax.eval.speaker import SpeakerEncoder, speaker_encoder
from soda_jax.inference.generate import Generation, generate, score
from soda_jax.inference.loader import LoadedModel
from soda_jax.inference.sampling import SamplingParams

logger = logging.getLogger(__name__)


class EvalContext:
    """The loaded model and the shared, lazily built helpers of one evaluation."""

    def __init__(self, loaded: LoadedModel, *, codec: CodecConfig | None = None, batch_size: int = 32):
        """``codec``: the Mimi that made the model's audio tokens (None: the one its data recorded)."""
        self.loaded = loaded
        self.vocab = loaded.vocab
        self.codec_config = codec
        self.batch_size = batch_size
        self._asr: dict[tuple[str, str | None], AsrBackend] = {}
        self._speaker: dict[tuple[str, str | None], SpeakerEncoder] = {}

    @property
    def num_codebooks(self) -> int:
        return self.loaded.num_codebooks

    @property
    def context_length(self) -> int:
        return self.loaded.context_length

    # ---------------------------------------------------------------------------- the model
    def score(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per sequence of length T: the T - 1 log-probs of each token given its prefix."""
        return score(self.loaded, sequences, max_batch=self.batch_size)

    def generate(self, prompts: Sequence[np.ndarray], params: Sequence[SamplingParams]) -> list[Generation]:
        return generate(self.loaded, prompts, params, max_batch=self.batch_size)

    # ---------------------------------------------------------------------------- audio
    @functools.cached_property
    def codec(self):
        if self.codec_config is None:
            return self.loaded.mimi_codec()
        return MimiCodec.from_config(dataclasses.replace(self.codec_config, num_codebooks=self.num_codebooks))

    def audio_ids(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """24 kHz waves -> frame-major audio ids of the model's codebooks."""
        if not waves:
            return []
        books = codebooks_for(self.num_codebooks)
        return [self.vocab.codes_to_ids(codes[: len(books)], books) for codes in self.codec.encode(list(waves))]

    def decode_audio_ids(self, ids: np.ndarray) -> np.ndarray:
        """Frame-major audio ids (a trailing partial frame dropped) -> a 24 kHz wave (empty if no frame)."""
        codes, _ = self.vocab.ids_to_codes(np.asarray(ids), codebooks_for(self.num_codebooks), repair=True)
        if codes.shape[1] == 0:
            return np.zeros(0, np.float32)
        return self.codec.decode([codes])[0]

    # ---------------------------------------------------------------------------- scorers
    def asr(self, name: str, model: str | None = None) -> AsrBackend:
        """The ``name`` backend (``model`` weights), built on first use and kept for this context."""
        if (name, model) not in self._asr:
            self._asr[name, model] = asr_backend(name, model)
        return self._asr[name, model]

    def speaker(self, name: str, model: str | None = None) -> SpeakerEncoder:
        """The ``name`` speaker encoder (``model`` weights), built on first use and kept for this context."""
        if (name, model) not in self._speaker:
            self._speaker[name, model] = speaker_encoder(name, model)
        return self._speaker[name, model]


def to_16k(wave: np.ndarray) -> np.ndarray:
    """A 24 kHz wave at the scorers' 16 kHz."""
    return resample(np.asarray(wave, np.float32), MIMI_SAMPLE_RATE, ASR_SAMPLE_RATE).astype(np.float32)


def text_until_marker(vocab, tokens: np.ndarray) -> str:
    """The text a generation wrote before its first non-text id (stop marker, EOS or anything else)."""
    tokens = np.asarray(tokens)
    stop = np.flatnonzero((tokens >= vocab.text_size) | (tokens == vocab.eos_id) | (tokens == vocab.bos_id))
    return vocab.decode_text(tokens[: stop[0]] if stop.size else tokens).strip()


def frame_valid(vocab, tokens: np.ndarray, num_codebooks: int) -> bool:
    """Whether a generated audio span is well formed: at least one whole frame, every id in the
    codebook its position calls for (0..K-1 repeating), and closed by ``<|audio_end|>`` at a frame
    boundary, not cut off by the token budget or the context."""
    tokens = np.asarray(tokens)
    stop = np.flatnonzero(~vocab.is_audio(tokens))
    if not stop.size or stop[0] == 0 or int(tokens[stop[0]]) != vocab.audio_end_id:
        return False
    try:
        vocab.ids_to_codes(tokens[: stop[0]], codebooks_for(num_codebooks))
    except AudioTokenError:
        return False
    return True


def frame_valid_rate(records: list[dict]) -> float:
    """The share of generations whose audio span is well formed (`frame_valid`); records written before
    the field existed are left out, NaN when none has it."""
    known = [r["frame_valid"] for r in records if "frame_valid" in r]
    return float(np.mean(known)) if known else math.nan


def audio_until_marker(vocab, tokens: np.ndarray, num_codebooks: int) -> np.ndarray:
    """The audio ids a generation wrote before its first non-audio id, cut to whole frames."""
    tokens = np.asarray(tokens)
    stop = np.flatnonzero(~vocab.is_audio(tokens))
    audio = tokens[: stop[0]] if stop.size else tokens
    return audio[: audio.shape[0] - audio.shape[0] % num_codebooks]

"""The one audio-text vocabulary: text tokenizer ids, four specials, then 16,384 audio ids.

Layout (every offset derives from the text tokenizer; nothing is hard-coded)::

    [0, T)                       the text tokenizer, its own specials included (T = len(tokenizer))
    T, T+1, T+2, T+3             <|text_start|> <|text_end|> <|audio_start|> <|audio_end|>
    [T+4, T+4+8*2048)            audio: audio_offset + codebook * 2048 + code

With the Llama-3 tokenizer (T = 128,256) this is exactly SODA's released layout (vocab 144,644),
so SODA checkpoints load unchanged. All 8 codebooks always have ids, whatever a document uses:
a semantic-only document (codebook 0) or a 4-codebook one shares the same vocabulary.

Audio in a token sequence is flattened frame-major: f0c0 f0c1 .. f0c{K-1} f1c0 .. (K codebooks
kept, in order). `codes_to_ids` / `ids_to_codes` convert, vectorised, and validate positions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from soda_jax import fileio
from soda_jax.contracts import TEXT_TOKENIZER_DIR, VOCAB_FILE

logger = logging.getLogger(__name__)

MIMI_CODEBOOKS = 8
"""Codebooks SODA keeps from Mimi's 32: 0 is semantic, 1-7 acoustic."""
CODEBOOK_SIZE = 2048
"""Codes per Mimi codebook."""
SPECIAL_TOKENS = ("<|text_start|>", "<|text_end|>", "<|audio_start|>", "<|audio_end|>")
LLAMA3_TEXT_SIZE = 128_256
"""Ids of Llama-3's tokenizer (SODA's text tokenizer), its own specials included."""


def audio_text_vocab_size(text_size: int, codebook_size: int = CODEBOOK_SIZE) -> int:
    """`AudioTextVocab.size` over a text tokenizer of ``text_size`` ids, without loading it."""
    return text_size + len(SPECIAL_TOKENS) + MIMI_CODEBOOKS * codebook_size


SODA_VOCAB_SIZE = audio_text_vocab_size(LLAMA3_TEXT_SIZE)
"""SODA's released vocabulary: Llama-3's 128,256 text ids + 4 markers + 8 x 2048 audio ids (144,644)."""


class AudioTokenError(ValueError):
    """A token sequence that is not valid audio for the requested codebook layout."""


def codebooks_for(num_codebooks: int) -> tuple[int, ...]:
    """The codebooks kept when a layout uses the first ``num_codebooks`` (1 = semantic only)."""
    if not 1 <= num_codebooks <= MIMI_CODEBOOKS:
        raise ValueError(f"num_codebooks must be in 1..{MIMI_CODEBOOKS}, got {num_codebooks}")
    return tuple(range(num_codebooks))


@dataclass(frozen=True)
class TrimReport:
    """What `ids_to_codes(..., repair=True)` removed to make a sequence whole frames."""

    dropped_tokens: int
    """Trailing tokens that did not complete a frame."""


class AudioTextVocab:
    """A text tokenizer extended with SODA's four specials and 8 x 2048 Mimi audio ids."""

    def __init__(self, text_tokenizer: Any, *, codebook_size: int = CODEBOOK_SIZE):
        """``text_tokenizer``: a transformers tokenizer with BOS and EOS tokens."""
        if text_tokenizer.bos_token_id is None or text_tokenizer.eos_token_id is None:
            raise ValueError(f"text tokenizer {type(text_tokenizer).__name__} needs BOS and EOS tokens")
        self.text_tokenizer = text_tokenizer
        self.codebook_size = codebook_size
        self.text_size = len(text_tokenizer)
        self.text_start_id, self.text_end_id, self.audio_start_id, self.audio_end_id = (
            self.text_size + i for i in range(len(SPECIAL_TOKENS))
        )
        self.audio_offset = self.text_size + len(SPECIAL_TOKENS)
        self.size = audio_text_vocab_size(self.text_size, codebook_size)
        self.bos_id = int(text_tokenizer.bos_token_id)
        self.eos_id = int(text_tokenizer.eos_token_id)

    # ----------------------------------------------------------------- construction and storage
    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs: Any) -> AudioTextVocab:
        """Load the text tokenizer from a directory (local or any fsspec URL, e.g. a copy in a bucket)
        or a hub id (e.g. Llama-3's)."""
        from transformers import AutoTokenizer

        if "://" not in name_or_path:  # a local directory or a hub id: transformers finds either
            return cls(AutoTokenizer.from_pretrained(name_or_path, **kwargs))
        with fileio.local_directory(name_or_path) as local:
            return cls(AutoTokenizer.from_pretrained(local, **kwargs))

    def save(self, directory: str) -> None:
        """Write vocab.json and the text tokenizer, so a cache always carries its vocabulary."""
        from soda_jax.audio.text_tokenizers import save_tokenizer

        save_tokenizer(self.text_tokenizer, fileio.join(directory, TEXT_TOKENIZER_DIR))
        fileio.atomic_write_json(fileio.join(directory, VOCAB_FILE), self.describe())

    @classmethod
    def load(cls, directory: str) -> AudioTextVocab:
        """Load a vocabulary written by `save`, checking its recorded layout still holds."""
        from transformers import AutoTokenizer

        recorded = fileio.read_json(fileio.join(directory, VOCAB_FILE))
        with fileio.local_directory(fileio.join(directory, TEXT_TOKENIZER_DIR)) as local:
            vocab = cls(AutoTokenizer.from_pretrained(local), codebook_size=recorded["codebook_size"])
        if vocab.describe() != recorded:
            raise ValueError(
                f"{fileio.join(directory, VOCAB_FILE)}: recorded layout {recorded} does not match the "
                f"tokenizer stored beside it {vocab.describe()}"
            )
        return vocab

    def describe(self) -> dict[str, Any]:
        """The layout as plain data (what vocab.json holds)."""
        return {
            "size": self.size,
            "text_size": self.text_size,
            "special_tokens": dict(zip(SPECIAL_TOKENS, self.special_ids)),
            "audio_offset": self.audio_offset,
            "num_audio_codebooks": MIMI_CODEBOOKS,
            "codebook_size": self.codebook_size,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "text_tokenizer": type(self.text_tokenizer).__name__,
        }

    @property
    def special_ids(self) -> tuple[int, int, int, int]:
        return (self.text_start_id, self.text_end_id, self.audio_start_id, self.audio_end_id)

    # ----------------------------------------------------------------------------------- text
    def encode_text(self, text: str) -> np.ndarray:
        """Text ids (int32) without BOS/EOS."""
        return np.asarray(self.text_tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int32)

    def encode_texts(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Batch `encode_text` (the fast tokenizer parallelises the batch)."""
        if not texts:
            return []
        batch = self.text_tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [np.asarray(ids, dtype=np.int32) for ids in batch]

    def decode_text(self, ids: Sequence[int] | np.ndarray) -> str:
        """Decode text ids; any non-text id is an error (strip specials and audio first)."""
        ids = np.asarray(ids)
        bad = np.flatnonzero((ids < 0) | (ids >= self.text_size))
        if bad.size:
            raise ValueError(f"id {int(ids[bad[0]])} at position {int(bad[0])} is not a text id")
        return self.text_tokenizer.decode(ids.tolist(), skip_special_tokens=True)

    # ---------------------------------------------------------------------------------- audio
    def is_audio(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        return (ids >= self.audio_offset) & (ids < self.size)

    def codes_to_ids(self, codes: np.ndarray, codebooks: Sequence[int] | None = None) -> np.ndarray:
        """Codes ``[K, frames]`` -> frame-major audio ids ``[K * frames]`` (int32).

        ``codebooks`` names which Mimi codebook each of the K rows is (default 0..K-1).
        """
        codes = np.asarray(codes)
        if codes.ndim != 2:
            raise AudioTokenError(f"codes must be [codebooks, frames], got shape {codes.shape}")
        books = np.asarray(codebooks if codebooks is not None else range(codes.shape[0]), dtype=np.int64)
        if books.shape[0] != codes.shape[0]:
            raise AudioTokenError(f"{codes.shape[0]} code rows but {books.shape[0]} codebooks named")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise AudioTokenError(f"codes must be in [0, {self.codebook_size}), got [{codes.min()}, {codes.max()}]")
        row_offsets = (self.audio_offset + books * self.codebook_size)[:, None]
        return (codes.astype(np.int64) + row_offsets).T.reshape(-1).astype(np.int32)

    def ids_to_codes(
        self, ids: np.ndarray, codebooks: Sequence[int], *, repair: bool = False
    ) -> tuple[np.ndarray, TrimReport]:
        """Frame-major audio ids -> codes ``[K, frames]`` for the given codebook layout.

        A length that is not a multiple of K is an error, or with ``repair=True`` a trim of the
        incomplete trailing frame, reported in the returned `TrimReport`. An id in the wrong
        codebook position (or not audio at all) is always an error naming the position.
        """
        ids = np.asarray(ids, dtype=np.int64)
        books = np.asarray(codebooks, dtype=np.int64)
        k = books.shape[0]
        dropped = ids.shape[0] % k
        if dropped:
            if not repair:
                raise AudioTokenError(
                    f"{ids.shape[0]} audio ids is not a whole number of {k}-codebook frames "
                    f"(incomplete frame starts at position {ids.shape[0] - dropped})"
                )
            ids = ids[: ids.shape[0] - dropped]
        frames = ids.reshape(-1, k) - self.audio_offset
        codebook_of = np.floor_divide(frames, self.codebook_size)
        wrong = codebook_of != books[None, :]
        if wrong.any():
            frame, slot = (int(v) for v in np.argwhere(wrong)[0])
            bad_id = int(ids[frame * k + slot])
            raise AudioTokenError(
                f"position {frame * k + slot} (frame {frame}, slot {slot}) holds id {bad_id}, "
                f"which is not an audio id of codebook {int(books[slot])}"
            )
        codes = (frames - books[None, :] * self.codebook_size).T.astype(np.int16)
        return codes, TrimReport(dropped_tokens=int(dropped))

    def token_kinds(self, ids: np.ndarray) -> dict[str, int]:
        """Counts of text (BOS/EOS included), special and audio ids in a sequence (for cache statistics)."""
        ids = np.asarray(ids)
        audio = int(self.is_audio(ids).sum())
        special = int(np.isin(ids, self.special_ids).sum())
        return {"text": int(ids.shape[0]) - audio - special, "special": special, "audio": audio}

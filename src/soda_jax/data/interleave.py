"""SODA's document patterns: one recording (segments s1..sn in time order) -> one token document.

Every pattern is a plain function of per-segment token arrays that are already vocabulary ids
(`audio_ids` converts raw Mimi codes). ``T_i`` is segment i's transcript ids, ``S_i`` its optional
speaker marker ids (e.g. the text ``[0]``), ``A_i`` its frame-major audio ids::

    text_first    (SODA type1)  <bos> [<|text_start|> S_i T_i <|text_end|> <|audio_start|> A_i <|audio_end|>]... <eos>
    audio_first   (SODA type2)  <bos> [<|audio_start|> A_i <|audio_end|> <|text_start|> S_i T_i <|text_end|>]... <eos>
    audio_only    (8 codebooks) <bos> [<|audio_start|> A_i <|audio_end|>]... <eos>
    semantic_only (codebook 0)  <bos> [<|audio_start|> A_i <|audio_end|>]... <eos>
    text_only     (text corpora) <bos> T <eos>

A document is built with one ``np.concatenate`` over views of the segment arrays, so the cost is a
single copy of the output (see benchmarks/bench_interleave.py). `split_segments` cuts a long
recording into several documents at segment boundaries, never inside a segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from soda_jax.audio.vocab import AudioTextVocab

TOKEN_DTYPE = np.int32
"""dtype of every token array (levanter caches store ``input_ids`` as int32)."""
DOCUMENT_OVERHEAD = 2
"""Tokens every document adds around its segments: <bos> and <eos>."""
SEGMENT_MARKERS_WITH_TEXT = 4
"""<|text_start|> <|text_end|> <|audio_start|> <|audio_end|> around one text+audio segment."""
SEGMENT_MARKERS_AUDIO_ONLY = 2
"""<|audio_start|> <|audio_end|> around one audio-only segment."""
SEMANTIC_CODEBOOK = 0
"""Mimi's codebook 0 carries the semantic (distilled) content; 1-7 are acoustic."""
FRAMES_PER_CONVERSION_BLOCK = 512
"""Frames per row when adding codebook offsets (a wide row keeps numpy's inner loop long)."""


@dataclass(frozen=True)
class Markers:
    """The six structural ids of the vocabulary, as 1-element arrays ready to concatenate."""

    bos: np.ndarray
    eos: np.ndarray
    text_start: np.ndarray
    text_end: np.ndarray
    audio_start: np.ndarray
    audio_end: np.ndarray
    text_end_audio_start: np.ndarray
    """<|text_end|> <|audio_start|>: adjacent in text_first, so one piece instead of two."""
    audio_end_text_start: np.ndarray
    """<|audio_end|> <|text_start|>: adjacent in audio_first."""

    @classmethod
    def from_vocab(cls, vocab: AudioTextVocab) -> Markers:
        def ids(*values: int) -> np.ndarray:
            return np.asarray(values, dtype=TOKEN_DTYPE)

        return cls(
            bos=ids(vocab.bos_id),
            eos=ids(vocab.eos_id),
            text_start=ids(vocab.text_start_id),
            text_end=ids(vocab.text_end_id),
            audio_start=ids(vocab.audio_start_id),
            audio_end=ids(vocab.audio_end_id),
            text_end_audio_start=ids(vocab.text_end_id, vocab.audio_start_id),
            audio_end_text_start=ids(vocab.audio_end_id, vocab.text_start_id),
        )


# ------------------------------------------------------------------------------------ audio ids
def audio_ids(
    codes: np.ndarray, num_codebooks: int, vocab: AudioTextVocab, *, semantic_only: bool = False
) -> np.ndarray:
    """Raw frame-major codes (f0c0 .. f0c{K-1} f1c0 ..; any number of whole frames) -> audio ids.

    All K codebooks: ``audio_offset + (position % K) * codebook_size + code``, order unchanged.
    ``semantic_only``: codebook 0 of each frame only. ``codes`` may hold many segments back to
    back (a whole shard): frames never straddle segments, so the conversion is one vectorised pass.
    """
    codes = np.asarray(codes)
    if codes.shape[0] % num_codebooks:
        raise ValueError(f"{codes.shape[0]} codes is not a whole number of {num_codebooks}-codebook frames")
    frames = codes.reshape(-1, num_codebooks)
    if semantic_only:
        return frames[:, SEMANTIC_CODEBOOK].astype(TOKEN_DTYPE) + TOKEN_DTYPE(vocab.audio_offset)
    row_offsets = (vocab.audio_offset + np.arange(num_codebooks) * vocab.codebook_size).astype(TOKEN_DTYPE)
    # Broadcasting a K-wide offset row gives numpy a tiny inner loop; tile it to a wide block.
    block = num_codebooks * FRAMES_PER_CONVERSION_BLOCK
    whole = codes.shape[0] - codes.shape[0] % block
    out = np.empty(codes.shape[0], dtype=TOKEN_DTYPE)
    np.add(codes[:whole].reshape(-1, block), np.tile(row_offsets, FRAMES_PER_CONVERSION_BLOCK), out=out[:whole].reshape(-1, block))
    np.add(codes[whole:].reshape(-1, num_codebooks), row_offsets, out=out[whole:].reshape(-1, num_codebooks))
    return out


# -------------------------------------------------------------------------------------- patterns
def _assemble(pieces: list[np.ndarray], out: np.ndarray | None) -> np.ndarray:
    """Concatenate ``pieces`` into a new array, or into the front of ``out`` (returning that view)."""
    if out is None:
        return np.concatenate(pieces)
    total = sum(len(p) for p in pieces)
    return np.concatenate(pieces, out=out[:total])


def _speaker(speakers: Sequence[np.ndarray] | None, i: int) -> list[np.ndarray]:
    return [speakers[i]] if speakers is not None else []


def text_first(
    texts: Sequence[np.ndarray],
    audios: Sequence[np.ndarray],
    m: Markers,
    speakers: Sequence[np.ndarray] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """SODA type1: ``<bos> [<|text_start|> S_i T_i <|text_end|> <|audio_start|> A_i <|audio_end|>]... <eos>``."""
    pieces = [m.bos]
    for i, (text, audio) in enumerate(zip(texts, audios, strict=True)):
        pieces += [m.text_start, *_speaker(speakers, i), text, m.text_end_audio_start, audio, m.audio_end]
    pieces.append(m.eos)
    return _assemble(pieces, out)


def audio_first(
    texts: Sequence[np.ndarray],
    audios: Sequence[np.ndarray],
    m: Markers,
    speakers: Sequence[np.ndarray] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """SODA type2: ``<bos> [<|audio_start|> A_i <|audio_end|> <|text_start|> S_i T_i <|text_end|>]... <eos>``."""
    pieces = [m.bos]
    for i, (text, audio) in enumerate(zip(texts, audios, strict=True)):
        pieces += [m.audio_start, audio, m.audio_end_text_start, *_speaker(speakers, i), text, m.text_end]
    pieces.append(m.eos)
    return _assemble(pieces, out)


def audio_only(
    texts: Sequence[np.ndarray],
    audios: Sequence[np.ndarray],
    m: Markers,
    speakers: Sequence[np.ndarray] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``<bos> [<|audio_start|> A_i <|audio_end|>]... <eos>``; texts and speakers are ignored.

    Used for both `audio_only` (A_i holds all codebooks) and `semantic_only` (A_i holds codebook 0).
    """
    del texts, speakers
    pieces = [m.bos]
    for audio in audios:
        pieces += [m.audio_start, audio, m.audio_end]
    pieces.append(m.eos)
    return _assemble(pieces, out)


def text_only(text: np.ndarray, m: Markers) -> np.ndarray:
    """A text-corpus document: ``<bos> T <eos>`` (no markers: plain text, as in text pretraining)."""
    return np.concatenate([m.bos, np.asarray(text, dtype=TOKEN_DTYPE), m.eos])


@dataclass(frozen=True)
class Pattern:
    """How one document pattern lays out a recording."""

    name: str
    build: Callable[..., np.ndarray]
    """``build(texts, audios, markers, speakers=None, out=None) -> ids`` (into ``out`` if given)."""
    uses_text: bool
    """Whether transcripts (and speaker markers) appear in the document."""
    semantic_only: bool
    """Whether audio keeps only codebook 0 (else every codebook the codec kept)."""

    @property
    def markers_per_segment(self) -> int:
        return SEGMENT_MARKERS_WITH_TEXT if self.uses_text else SEGMENT_MARKERS_AUDIO_ONLY

    def segment_lengths(self, text_lengths: np.ndarray, audio_lengths: np.ndarray) -> np.ndarray:
        """Tokens each segment takes in this pattern (``text_lengths`` include speaker markers)."""
        lengths = np.asarray(audio_lengths, dtype=np.int64) + self.markers_per_segment
        return lengths + np.asarray(text_lengths, dtype=np.int64) if self.uses_text else lengths


PATTERNS: dict[str, Pattern] = {
    "text_first": Pattern("text_first", text_first, uses_text=True, semantic_only=False),
    "audio_first": Pattern("audio_first", audio_first, uses_text=True, semantic_only=False),
    "audio_only": Pattern("audio_only", audio_only, uses_text=False, semantic_only=False),
    "semantic_only": Pattern("semantic_only", audio_only, uses_text=False, semantic_only=True),
}
"""The recording patterns by name (``text_only`` is for text corpora, see `text_only`)."""
SODA_TYPE_ALIASES = {"type1": "text_first", "type2": "audio_first"}
"""SODA's names for the two interleaved patterns."""


def get_pattern(name: str) -> Pattern:
    """The `Pattern` called ``name`` (SODA's ``type1``/``type2`` accepted)."""
    name = SODA_TYPE_ALIASES.get(name, name)
    if name not in PATTERNS:
        raise ValueError(f"unknown document pattern {name!r}; choose from {sorted(PATTERNS)} or {sorted(SODA_TYPE_ALIASES)}")
    return PATTERNS[name]


# --------------------------------------------------------------------------- document length cap
def split_segments(segment_lengths: np.ndarray, max_document_tokens: int | None) -> list[slice]:
    """Group consecutive segments into documents of at most ``max_document_tokens`` tokens.

    Greedy, in time order; a document's length is its segments' plus <bos>/<eos>. A single segment
    that alone exceeds the cap becomes a document of its own (segments are never cut): callers
    count these (`oversized`).
    """
    n = len(segment_lengths)
    if max_document_tokens is None or n == 0:
        return [slice(0, n)]
    if max_document_tokens <= DOCUMENT_OVERHEAD:
        raise ValueError(f"max_document_tokens must exceed {DOCUMENT_OVERHEAD}, got {max_document_tokens}")
    budget = max_document_tokens - DOCUMENT_OVERHEAD
    groups, start, used = [], 0, 0
    for i, length in enumerate(np.asarray(segment_lengths).tolist()):
        if i > start and used + length > budget:
            groups.append(slice(start, i))
            start, used = i, 0
        used += length
    groups.append(slice(start, n))
    return groups


def oversized(segment_lengths: np.ndarray, max_document_tokens: int | None) -> int:
    """How many segments alone exceed the cap (each becomes a document longer than the cap)."""
    if max_document_tokens is None:
        return 0
    return int((np.asarray(segment_lengths) + DOCUMENT_OVERHEAD > max_document_tokens).sum())


def interleave_recording(
    pattern: Pattern,
    texts: Sequence[np.ndarray],
    audios: Sequence[np.ndarray],
    markers: Markers,
    *,
    speakers: Sequence[np.ndarray] | None = None,
    max_document_tokens: int | None = None,
    out: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One recording -> its documents in ``pattern`` (one, or several if it exceeds the cap).

    ``audios`` must already hold the ids the pattern wants (`audio_ids` with ``semantic_only``
    matching the pattern). With ``out``, the documents are written back to back at its front
    (views are returned), so packing a whole shard needs no second copy.
    """
    if max_document_tokens is None:
        return [pattern.build(texts, audios, markers, speakers, out)]
    lengths = segment_lengths(pattern, texts, audios, speakers)
    documents, position = [], 0
    for g in split_segments(lengths, max_document_tokens):
        target = out[position:] if out is not None else None
        documents.append(pattern.build(texts[g], audios[g], markers, speakers[g] if speakers is not None else None, target))
        position += len(documents[-1])
    return documents


def segment_lengths(
    pattern: Pattern,
    texts: Sequence[np.ndarray | None],
    audios: Sequence[np.ndarray],
    speakers: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Tokens each segment of a recording takes in ``pattern``."""
    text_lengths = np.fromiter((len(t) if t is not None else 0 for t in texts), dtype=np.int64, count=len(texts))
    if speakers is not None:
        text_lengths += np.fromiter((len(s) for s in speakers), dtype=np.int64, count=len(speakers))
    audio_lengths = np.fromiter((len(a) for a in audios), dtype=np.int64, count=len(audios))
    return pattern.segment_lengths(text_lengths, audio_lengths)

"""SODA's document patterns: one recording (segments s1..sn in time order) -> one token document.

Segments are already vocabulary ids (`audio_ids` converts raw Mimi codes). ``T_i`` is segment
i's transcript ids, ``S_i`` its optional speaker marker ids (e.g. the text ``[0]``), ``A_i`` its
frame-major audio ids::

    text_first    (SODA type1)  <bos> [<|text_start|> S_i T_i <|text_end|> <|audio_start|> A_i <|audio_end|>]... <eos>
    audio_first   (SODA type2)  <bos> [<|audio_start|> A_i <|audio_end|> <|text_start|> S_i T_i <|text_end|>]... <eos>
    audio_only    (8 codebooks) <bos> [<|audio_start|> A_i <|audio_end|>]... <eos>
    semantic_only (codebook 0)  <bos> [<|audio_start|> A_i <|audio_end|>]... <eos>
    text_only     (text corpora) <bos> T <eos>

`interleave_segments` builds the documents of any number of segments (a whole shard) at once:
every token's position is computed with array arithmetic, markers and text are scattered, and
the audio (97% of the tokens) lands with one masked copy, so there is no Python work per segment
(benchmarks/bench_interleave.py). `split_segments` cuts a long recording into several documents
at segment boundaries, never inside a segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from soda_jax.audio.vocab import AudioTextVocab

TOKEN_DTYPE = np.int32
"""dtype of every token array (levanter caches store ``input_ids`` as int32)."""
DOCUMENT_OVERHEAD = 2
"""Tokens every document adds around its segments: <bos> and <eos>."""
SEMANTIC_CODEBOOK = 0
"""Mimi's codebook 0 carries the semantic (distilled) content; 1-7 are acoustic."""
FRAMES_PER_CONVERSION_BLOCK = 512
"""Frames per row when adding codebook offsets (a wide row keeps numpy's inner loop long)."""
CHUNK_AUDIO_IDS = 1 << 20
"""Audio ids per `interleave_segments` call when a shard is built in chunks of recordings: 4 MB of
int32 stays in cache (1.7x faster than a whole 10M-token shard at once, benchmarks/bench_interleave.py)."""


@dataclass(frozen=True)
class Markers:
    """The ids a document is made of: six structural ids, and where the audio ids start."""

    bos: int
    eos: int
    text_start: int
    text_end: int
    audio_start: int
    audio_end: int
    audio_offset: int
    """Id of code 0 of codebook 0."""
    codebook_size: int
    """Codes per codebook (2048 for Mimi)."""

    @classmethod
    def from_vocab(cls, vocab: AudioTextVocab) -> Markers:
        return cls(
            bos=vocab.bos_id,
            eos=vocab.eos_id,
            text_start=vocab.text_start_id,
            text_end=vocab.text_end_id,
            audio_start=vocab.audio_start_id,
            audio_end=vocab.audio_end_id,
            audio_offset=vocab.audio_offset,
            codebook_size=vocab.codebook_size,
        )


def audio_ids(
    codes: np.ndarray, num_codebooks: int, vocab: AudioTextVocab, *, semantic_only: bool = False
) -> np.ndarray:
    """Raw frame-major codes (f0c0 .. f0c{K-1} f1c0 ..; any number of whole frames) -> audio ids.

    All K codebooks: ``audio_offset + (position % K) * codebook_size + code``, order unchanged.
    ``semantic_only``: codebook 0 of each frame only.
    """
    ids = relative_audio_ids(codes, num_codebooks, vocab.codebook_size, semantic_only=semantic_only).astype(TOKEN_DTYPE)
    ids += vocab.audio_offset
    return ids


def relative_audio_ids(
    codes: np.ndarray, num_codebooks: int, codebook_size: int, *, semantic_only: bool = False
) -> np.ndarray:
    """`audio_ids` less the vocabulary's audio offset, as int16 when they fit (half the memory
    traffic: the offset is added later, once, to the whole document buffer)."""
    codes = np.asarray(codes)
    if codes.shape[0] % num_codebooks:
        raise ValueError(f"{codes.shape[0]} codes is not a whole number of {num_codebooks}-codebook frames")
    frames = codes.reshape(-1, num_codebooks)
    if semantic_only:
        return frames[:, SEMANTIC_CODEBOOK].copy()
    dtype = np.int16 if num_codebooks * codebook_size <= np.iinfo(np.int16).max + 1 else TOKEN_DTYPE
    row_offsets = (np.arange(num_codebooks) * codebook_size).astype(dtype)
    relative = codes.astype(dtype)
    # Broadcasting a K-wide offset row gives numpy a tiny inner loop; tile it to a wide block.
    block = num_codebooks * FRAMES_PER_CONVERSION_BLOCK
    whole = codes.shape[0] - codes.shape[0] % block
    np.add(
        relative[:whole].reshape(-1, block),
        np.tile(row_offsets, FRAMES_PER_CONVERSION_BLOCK),
        out=relative[:whole].reshape(-1, block),
    )
    np.add(relative[whole:].reshape(-1, num_codebooks), row_offsets, out=relative[whole:].reshape(-1, num_codebooks))
    return relative


# -------------------------------------------------------------------------------------- patterns
TEXT, SPEAKER, AUDIO = "text", "speaker", "audio"
"""Variable-length parts of a segment; every other part of a layout names a `Markers` field."""


@dataclass(frozen=True)
class Pattern:
    """How one document pattern lays out each segment of a recording."""

    name: str
    segment: tuple[str, ...]
    """One segment, in order: `Markers` field names, `SPEAKER`, `TEXT` and `AUDIO`."""
    semantic_only: bool
    """Whether audio keeps only codebook 0 (else every codebook the codec kept)."""

    @property
    def uses_text(self) -> bool:
        """Whether transcripts (and speaker markers) appear in the document."""
        return TEXT in self.segment

    @property
    def markers_per_segment(self) -> int:
        return sum(part not in (TEXT, SPEAKER, AUDIO) for part in self.segment)

    def audio_lengths(self, code_lengths: np.ndarray, num_codebooks: int) -> np.ndarray:
        """Audio ids each segment shows in this pattern, from its number of raw codes."""
        code_lengths = np.asarray(code_lengths, dtype=np.int64)
        return code_lengths // num_codebooks if self.semantic_only else code_lengths

    def segment_lengths(self, text_lengths: np.ndarray, audio_lengths: np.ndarray) -> np.ndarray:
        """Tokens each segment takes in this pattern (``text_lengths`` include speaker markers)."""
        lengths = np.asarray(audio_lengths, dtype=np.int64) + self.markers_per_segment
        return lengths + np.asarray(text_lengths, dtype=np.int64) if self.uses_text else lengths


_AUDIO_SEGMENT = ("audio_start", AUDIO, "audio_end")
PATTERNS: dict[str, Pattern] = {
    "text_first": Pattern(
        "text_first", ("text_start", SPEAKER, TEXT, "text_end", *_AUDIO_SEGMENT), semantic_only=False
    ),
    "audio_first": Pattern(
        "audio_first", (*_AUDIO_SEGMENT, "text_start", SPEAKER, TEXT, "text_end"), semantic_only=False
    ),
    "audio_only": Pattern("audio_only", _AUDIO_SEGMENT, semantic_only=False),
    "semantic_only": Pattern("semantic_only", _AUDIO_SEGMENT, semantic_only=True),
}
"""The recording patterns by name (``text_only`` is for text corpora, see `text_only`)."""
SODA_TYPE_ALIASES = {"type1": "text_first", "type2": "audio_first"}
"""SODA's names for the two interleaved patterns."""


def get_pattern(name: str) -> Pattern:
    """The `Pattern` called ``name`` (SODA's ``type1``/``type2`` accepted)."""
    name = SODA_TYPE_ALIASES.get(name, name)
    if name not in PATTERNS:
        raise ValueError(
            f"unknown document pattern {name!r}; choose from {sorted(PATTERNS)} or {sorted(SODA_TYPE_ALIASES)}"
        )
    return PATTERNS[name]


def text_only(text: np.ndarray, m: Markers) -> np.ndarray:
    """A text-corpus document: ``<bos> T <eos>`` (no markers: plain text, as in text pretraining)."""
    document = np.empty(len(text) + DOCUMENT_OVERHEAD, dtype=TOKEN_DTYPE)
    document[0], document[1:-1], document[-1] = m.bos, text, m.eos
    return document


@dataclass(frozen=True)
class Documents:
    """Documents back to back in one token array."""

    tokens: np.ndarray
    bounds: np.ndarray
    """Document i is ``tokens[bounds[i]:bounds[i + 1]]``."""

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.bounds[i] : self.bounds[i + 1]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def interleave_segments(
    pattern: Pattern,
    codes: np.ndarray,
    code_lengths: np.ndarray,
    num_codebooks: int,
    markers: Markers,
    *,
    texts: Sequence[np.ndarray] | None = None,
    speakers: Sequence[np.ndarray] | None = None,
    segments_per_document: Sequence[int] | None = None,
    out: np.ndarray | None = None,
) -> Documents:
    """Segments -> documents in ``pattern``, vectorised over any number of segments.

    ``codes``: every segment's raw frame-major codes back to back; ``code_lengths[i]``: segment
    i's share. ``texts`` / ``speakers``: per-segment ids (texts are required when the pattern
    shows text). ``segments_per_document``: how many consecutive segments form each document
    (default: all of them, one document). ``out``: write the documents at the front of this
    int32 buffer instead of a new array.
    """
    code_lengths = np.asarray(code_lengths, dtype=np.int64)
    count = len(code_lengths)
    if int(code_lengths.sum()) != len(codes):
        raise ValueError(f"code_lengths sum to {int(code_lengths.sum())} but codes holds {len(codes)}")
    if pattern.uses_text and (texts is None or len(texts) != count):
        raise ValueError(
            f"pattern {pattern.name} needs one text per segment ({count}), got {None if texts is None else len(texts)}"
        )
    if speakers is not None and len(speakers) != count:
        raise ValueError(f"{len(speakers)} speaker markers for {count} segments")
    per_document = np.asarray([count] if segments_per_document is None else segments_per_document, dtype=np.int64)
    if (per_document <= 0).any() or int(per_document.sum()) != count:
        raise ValueError(f"segments_per_document must be positive and sum to {count}, got {per_document.tolist()}")

    audio_lengths = pattern.audio_lengths(code_lengths, num_codebooks)
    runs: dict[str, tuple[Any, np.ndarray]] = {AUDIO: (None, audio_lengths)}
    if pattern.uses_text:
        assert texts is not None  # checked above
        runs[TEXT] = _flat(texts)
        runs[SPEAKER] = (
            _flat(speakers) if speakers is not None else (np.empty(0, TOKEN_DTYPE), np.zeros(count, np.int64))
        )
    part_lengths = [runs[part][1] if part in runs else np.ones(count, np.int64) for part in pattern.segment]
    part_starts = np.cumsum([np.zeros(count, np.int64), *part_lengths[:-1]], axis=0)
    segment_lengths = np.sum(part_lengths, axis=0)

    # Segment i starts after every earlier segment, the <bos>/<eos> of earlier documents and its own <bos>.
    document_of = np.repeat(np.arange(len(per_document)), per_document)
    segment_starts = _exclusive_cumsum(segment_lengths) + DOCUMENT_OVERHEAD * document_of + 1
    document_lengths = np.add.reduceat(segment_lengths, _exclusive_cumsum(per_document)) + DOCUMENT_OVERHEAD
    bounds = np.concatenate([[0], np.cumsum(document_lengths)])
    tokens = np.empty(int(bounds[-1]), dtype=TOKEN_DTYPE) if out is None else out[: int(bounds[-1])]
    if len(tokens) < bounds[-1]:
        raise ValueError(f"out holds {len(tokens)} tokens; the documents need {int(bounds[-1])}")

    # Audio first, relative to the audio offset, which is then added to the whole buffer at once:
    # every other position is overwritten below.
    relative = relative_audio_ids(codes, num_codebooks, markers.codebook_size, semantic_only=pattern.semantic_only)
    _place_audio(tokens, segment_starts + part_starts[pattern.segment.index(AUDIO)], relative, audio_lengths)
    tokens += markers.audio_offset
    tokens[bounds[:-1]] = markers.bos
    tokens[bounds[1:] - 1] = markers.eos
    for part, starts in zip(pattern.segment, part_starts):
        if part in (TEXT, SPEAKER):
            _scatter_runs(tokens, segment_starts + starts, *runs[part])
        elif part != AUDIO:
            tokens[segment_starts + starts] = getattr(markers, part)
    return Documents(tokens, bounds)


def recording_chunks(audio_ids_per_recording: Sequence[int], chunk_audio_ids: int = CHUNK_AUDIO_IDS) -> list[range]:
    """Consecutive recordings grouped so that each group holds about ``chunk_audio_ids`` audio ids."""
    chunks, start, held = [], 0, 0
    for i, count in enumerate(audio_ids_per_recording):
        if i > start and held + count > chunk_audio_ids:
            chunks.append(range(start, i))
            start, held = i, 0
        held += count
    if start < len(audio_ids_per_recording):
        chunks.append(range(start, len(audio_ids_per_recording)))
    return chunks


def _exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values), dtype=np.int64)
    np.cumsum(values[:-1], out=out[1:])
    return out


def _flat(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    flat = np.concatenate(arrays).astype(TOKEN_DTYPE, copy=False) if len(arrays) else np.empty(0, TOKEN_DTYPE)
    return flat, lengths


def _scatter_runs(tokens: np.ndarray, starts: np.ndarray, flat: np.ndarray, lengths: np.ndarray) -> None:
    """``tokens[starts[i] : starts[i] + lengths[i]] =`` run i of ``flat``, for all i at once."""
    tokens[np.repeat(starts - _exclusive_cumsum(lengths), lengths) + np.arange(len(flat))] = flat


def _place_audio(tokens: np.ndarray, starts: np.ndarray, audio: np.ndarray, lengths: np.ndarray) -> None:
    """Audio runs into ``tokens`` through a mask of audio positions: cheaper than an index per token."""
    ends = starts + lengths
    runs = np.empty(2 * len(starts) + 1, dtype=np.int64)
    runs[0:-1:2] = starts - np.concatenate([[0], ends[:-1]])  # the gaps before each run
    runs[1::2] = lengths
    runs[-1] = len(tokens) - (ends[-1] if len(ends) else 0)
    is_audio = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    tokens[is_audio] = audio


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
    texts: Sequence[np.ndarray | None],
    codes: Sequence[np.ndarray],
    num_codebooks: int,
    markers: Markers,
    *,
    speakers: Sequence[np.ndarray] | None = None,
    max_document_tokens: int | None = None,
) -> list[np.ndarray]:
    """One recording -> its documents in ``pattern`` (one, or several if it exceeds the cap).

    ``codes``: each segment's raw frame-major codes. A shard's worth of recordings goes faster
    through `interleave_segments`.
    """
    code_lengths = np.fromiter((len(c) for c in codes), dtype=np.int64, count=len(codes))
    lengths = segment_lengths(pattern, texts, pattern.audio_lengths(code_lengths, num_codebooks), speakers)
    groups = split_segments(lengths, max_document_tokens)
    documents = interleave_segments(
        pattern,
        np.concatenate(codes),
        code_lengths,
        num_codebooks,
        markers,
        texts=texts if pattern.uses_text else None,  # type: ignore[arg-type]  # a text pattern's texts: checked there
        speakers=speakers,
        segments_per_document=[g.stop - g.start for g in groups],
    )
    return list(documents)


def segment_lengths(
    pattern: Pattern,
    texts: Sequence[np.ndarray | None] | None,
    audio_lengths: np.ndarray,
    speakers: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Tokens each segment takes in ``pattern``, given its audio ids (`Pattern.audio_lengths`)."""
    text_lengths = np.zeros(len(audio_lengths), dtype=np.int64)
    for extra in (texts, speakers):
        if extra is not None:
            text_lengths += np.fromiter(
                (len(t) if t is not None else 0 for t in extra), dtype=np.int64, count=len(extra)
            )
    return pattern.segment_lengths(text_lengths, audio_lengths)

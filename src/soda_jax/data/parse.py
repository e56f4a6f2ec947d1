"""Split a token document (or a model's output) back into its text and audio spans: the one parser
of the interleaved layout.

The inverse of `soda_jax.data.interleave`: `parse_document` walks the four markers and returns the
spans in order; `span_codes` turns an audio span into a code matrix ``[K, frames]`` and
`document_contents` a whole document into transcripts (text ids) and code matrices. Evaluation and
inference use the same parser on generated tokens, where the last span may be unterminated and the
last audio frame incomplete (``partial=True``), and only the part after a prompt is wanted (``start``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from soda_jax.audio.vocab import AudioTextVocab, codebooks_for

TEXT = "text"
AUDIO = "audio"


class DocumentParseError(ValueError):
    """A token sequence that does not follow the interleaved layout."""


@dataclass(frozen=True)
class Span:
    """One run of tokens between markers: ``kind`` is "text" or "audio"; ``ids`` are vocabulary ids."""

    kind: str
    ids: np.ndarray
    start: int
    """Position of the span's first token in the document."""
    terminated: bool = True
    """False for a span the document ends inside (only with ``partial=True``)."""
    clipped: int = 0
    """Tokens of the span before ``start`` left out (a span a prompt opened; only with ``start``)."""


@dataclass(frozen=True)
class DocumentContents:
    """What a document says, in order: transcripts and code matrices."""

    texts: list[np.ndarray] = field(default_factory=list)
    """Text ids of each text span (speaker markers, if any, included)."""
    codes: list[np.ndarray] = field(default_factory=list)
    """Codes ``[K, frames]`` (int16) of each audio span."""
    order: list[str] = field(default_factory=list)
    """The kind of each span in document order ("text"/"audio")."""
    dropped_audio_tokens: int = 0
    """Tokens of incomplete trailing frames removed (``partial=True`` only)."""


def parse_document(
    ids: Sequence[int] | np.ndarray, vocab: AudioTextVocab, *, partial: bool = False, start: int = 0
) -> list[Span]:
    """The text and audio spans of ``ids``, in order.

    Layout: an optional <bos>, then spans ``<|text_start|> .. <|text_end|>`` and
    ``<|audio_start|> .. <|audio_end|>``, then an optional <eos>. Text outside any span (a
    ``text_only`` document) is one text span. Errors name the position: a stray end marker, a
    nested start, audio ids outside an audio span, text ids inside one, or (unless ``partial``)
    a span left open at the end. With ``start`` only what lies at or after that position is
    returned (the generated part of ``prompt + generated``): a span opened before it is clipped.
    """
    spans = _spans(np.asarray(ids), vocab, partial)
    if start:
        spans = [
            _clipped(span, start) for span in spans if span.start >= start or span.start + span.ids.shape[0] > start
        ]
    return spans


def _clipped(span: Span, start: int) -> Span:
    skip = max(0, start - span.start)
    return Span(span.kind, span.ids[skip:], span.start + skip, span.terminated, skip) if skip else span


def _spans(ids: np.ndarray, vocab: AudioTextVocab, partial: bool) -> list[Span]:
    n = ids.shape[0]
    begin = 1 if n and ids[0] == vocab.bos_id else 0
    end = n - 1 if n > begin and ids[-1] == vocab.eos_id else n
    is_marker = np.isin(ids[begin:end], vocab.special_ids)
    positions = (np.flatnonzero(is_marker) + begin).tolist()
    opens = {vocab.text_start_id: (TEXT, vocab.text_end_id), vocab.audio_start_id: (AUDIO, vocab.audio_end_id)}

    spans: list[Span] = []
    cursor = begin
    open_kind: str | None = None
    close_id = -1
    for pos in positions + [end]:
        marker = int(ids[pos]) if pos < end else None
        if open_kind is None:
            if pos > cursor:  # bare text between spans
                spans.append(_checked(Span(TEXT, ids[cursor:pos], cursor), vocab))
            if marker is None:
                break
            if marker not in opens:
                raise DocumentParseError(f"position {pos}: end marker {marker} with no span open")
            open_kind, close_id = opens[marker]
            cursor = pos + 1
        else:
            if marker is None:
                if not partial:
                    raise DocumentParseError(f"{open_kind} span opened at position {cursor - 1} is never closed")
                spans.append(_checked(Span(open_kind, ids[cursor:end], cursor, terminated=False), vocab))
                break
            if marker != close_id:
                raise DocumentParseError(
                    f"position {pos}: marker {marker} inside the {open_kind} span opened at position {cursor - 1}"
                )
            spans.append(_checked(Span(open_kind, ids[cursor:pos], cursor), vocab))
            open_kind, cursor = None, pos + 1
    return spans


def _checked(span: Span, vocab: AudioTextVocab) -> Span:
    audio = vocab.is_audio(span.ids)
    wrong = audio if span.kind == TEXT else ~audio
    if wrong.any():
        pos = span.start + int(np.argmax(wrong))
        what = "an audio id in a text span" if span.kind == TEXT else "a non-audio id in an audio span"
        raise DocumentParseError(f"position {pos}: {what}")
    return span


def span_codes(
    span: Span, vocab: AudioTextVocab, num_codebooks: int, *, repair: bool = False
) -> tuple[np.ndarray, int]:
    """Codes ``[K, frames]`` (int16) of an audio span and the tokens cut to make whole frames.

    A span clipped by ``start`` begins at its next frame boundary (the leading tokens of a frame
    the prompt began are cut). ``repair`` cuts an incomplete trailing frame instead of raising.
    """
    lead = (-span.clipped) % num_codebooks
    codes, report = vocab.ids_to_codes(span.ids[lead:], codebooks_for(num_codebooks), repair=repair)
    return codes, report.dropped_tokens + lead


def document_contents(
    ids: Sequence[int] | np.ndarray,
    vocab: AudioTextVocab,
    *,
    num_codebooks: int,
    partial: bool = False,
) -> DocumentContents:
    """Transcripts and codes of a document whose audio uses the first ``num_codebooks`` codebooks.

    ``partial`` accepts an unterminated final span and trims an incomplete final audio frame
    (reported in ``dropped_audio_tokens``), as model output needs.
    """
    codebooks_for(num_codebooks)  # an unknown layout is an error even for a document without audio
    texts: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    order: list[str] = []
    dropped = 0
    for span in parse_document(ids, vocab, partial=partial):
        order.append(span.kind)
        if span.kind == TEXT:
            texts.append(np.asarray(span.ids, dtype=np.int32))
        else:
            matrix, cut = span_codes(span, vocab, num_codebooks, repair=partial and not span.terminated)
            codes.append(matrix)
            dropped += cut
    return DocumentContents(texts, codes, order, dropped)

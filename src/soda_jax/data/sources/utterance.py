"""What every corpus reader yields (`Utterance`) and how it reports what it skipped (`SkipCounter`)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

EXAMPLES_PER_REASON = 3
"""How many skipped records per reason are logged and kept in stats.json."""

# Reasons a record is skipped. Bad input is skipped and counted, never fatal.
UNREADABLE_AUDIO = "unreadable_audio"
MISSING_AUDIO = "missing_audio"
EMPTY_TEXT = "empty_text"
NO_TRANSCRIPT = "no_transcript"
NON_UTF8 = "non_utf8"
BAD_METADATA = "bad_metadata"
SEGMENT_OUTSIDE_AUDIO = "segment_outside_audio"
CORRUPT_SHARD = "corrupt_shard"
UNPARSABLE_CAPTIONS = "unparsable_captions"
"""A captions file that is not JSON of the published shape (YODAS2 text/*.json); its shard's audio is not read."""
BAD_UTTERANCE_ID = "bad_utterance_id"
"""A caption keyed by something other than ``{audio_id}-{idx:05d}-{start_cs:08d}-{end_cs:08d}`` of its video."""
OTHER_LANGUAGE = "other_language"
"""Not bad input: filtered out by the reader's language filter (counted so nothing vanishes silently)."""
OTHER_LANGUAGE_SHARD = "other_language_shard"
"""A whole shard filed under a selected language whose own name states another (an Emilia ``ZH-B*.tar``
in ``EN/``): skipped unopened, one count per shard."""


@dataclass(frozen=True)
class Utterance:
    """One segment of speech with its transcript, audio already mono at 24 kHz."""

    recording_id: str
    """The long-form recording (YODAS2 audio id; Emilia utterance id)."""
    segment_id: str
    """Unique id of this segment (YODAS2: ``{audio_id}-{idx:05d}-{start_cs:08d}-{end_cs:08d}``)."""
    segment_index: int
    """Position of the segment within its recording (0-based, time order)."""
    start: float
    """Start within the recording, seconds."""
    end: float
    """End within the recording, seconds."""
    text: str
    """Transcript."""
    language: str
    """Language code as given by the source ("" when unknown)."""
    speaker: str
    """Speaker id as given by the source ("" when unknown)."""
    audio: np.ndarray = field(repr=False)

    @classmethod
    def whole(
        cls, utterance_id: str, audio: np.ndarray, text: str, language: str, speaker: str, sample_rate: int
    ) -> Utterance:
        """An utterance that is its own recording (Emilia, MLS): segment 0, spanning all of ``audio``."""
        return cls(
            recording_id=utterance_id,
            segment_id=utterance_id,
            segment_index=0,
            start=0.0,
            end=len(audio) / sample_rate,
            text=text,
            language=language,
            speaker=speaker,
            audio=audio,
        )

    """Mono float32 samples at 24 kHz covering [start, end)."""


class SkipCounter:
    """Counts skipped records per reason and keeps (and logs) the first few of each."""

    def __init__(self, source: str = ""):
        self.source = source
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        """Record that the record at ``where`` (file, member, segment) was skipped for ``reason``."""
        self.counts[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            message = f"{where}: {detail}" if detail else where
            examples.append(message)
            logger.warning("%sskipped (%s) %s", f"{self.source}: " if self.source else "", reason, message)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "examples": dict(sorted(self.examples.items()))}

    def merge(self, other: dict[str, Any]) -> None:
        """Add the counts and examples of another counter's `to_dict` (e.g. from another shard)."""
        self.counts.update(other.get("counts", {}))
        for reason, examples in other.get("examples", {}).items():
            kept = self.examples.setdefault(reason, [])
            kept.extend(examples[: EXAMPLES_PER_REASON - len(kept)])


class SourceShard(Protocol):
    """One unit of a corpus a reader lists (a tar shard, a language's audio tar): read on its own."""

    @property
    def name(self) -> str:
        """Unique within the corpus; names the output parquet shard."""
        ...


class SpeechSource(Protocol):
    """A corpus reader (`soda_jax.data.sources.yodas2`, `.emilia`): lists shards, reads utterances.

    Bad input is skipped and counted in ``skips``, never fatal; a reader yields the utterances of
    a recording in time order.
    """

    NAME: str
    """The source's name in configs (``TokenizeAudioConfig.source``)."""

    def list_shards(self, root: str, languages: Sequence[str] = ()) -> Sequence[SourceShard]:
        """Every shard under ``root`` (only ``languages`` when given), sorted by name."""
        ...

    def read_shard(self, shard: Any, skips: SkipCounter) -> Iterator[Utterance]:
        """The utterances of one shard listed by `list_shards`."""
        ...

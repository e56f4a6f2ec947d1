"""Statistics of a token cache (``{out}/stats.json``): documents, tokens by kind, hours, per split.

Each input shard's worker returns a nested dict of counts; `merge_counts` sums them, so the final
stats are the same whether shards ran in one process or on a Ray cluster.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from soda_jax import fileio
from soda_jax.contracts import SPLITS, STATS_FILE

logger = logging.getLogger(__name__)


@dataclass
class SplitStats:
    """Running counts for one split of one shard."""

    recordings: int = 0
    segments: int = 0
    hours: float = 0.0
    documents: int = 0
    tokens: Counter = field(default_factory=Counter)
    """Tokens by kind: text (BOS/EOS included), special (the 4 markers), audio."""
    documents_by_pattern: Counter = field(default_factory=Counter)
    tokens_by_pattern: Counter = field(default_factory=Counter)
    max_document_tokens: int = 0

    def add_recording(self, segments: int, hours: float) -> None:
        self.recordings += 1
        self.segments += segments
        self.hours += hours

    def add_document(self, pattern: str, kinds: Mapping[str, int]) -> None:
        length = sum(kinds.values())
        self.documents += 1
        self.tokens.update(kinds)
        self.documents_by_pattern[pattern] += 1
        self.tokens_by_pattern[pattern] += length
        self.max_document_tokens = max(self.max_document_tokens, length)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recordings": self.recordings,
            "segments": self.segments,
            "hours": self.hours,
            "documents": self.documents,
            "tokens": {kind: self.tokens.get(kind, 0) for kind in ("text", "special", "audio")},
            "total_tokens": sum(self.tokens.values()),
            "documents_by_pattern": dict(self.documents_by_pattern),
            "tokens_by_pattern": dict(self.tokens_by_pattern),
            "max_document_tokens": self.max_document_tokens,
        }


def merge_counts(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Sum two nested count dicts (keys named ``max_*`` take the maximum)."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = merge_counts(out[key], value)
        elif key.startswith("max_"):
            out[key] = max(out[key], value)
        else:
            out[key] = out[key] + value
    return out


def write_stats(
    output_path: str, shard_stats: Iterable[Mapping[str, Any]], layout: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge per-shard stats, add the layout, write ``{output_path}/stats.json``; return it."""
    total: dict[str, Any] = {}
    for stats in shard_stats:
        total = merge_counts(total, stats)
    total["layout"] = dict(layout)
    fileio.atomic_write_json(fileio.join(output_path, STATS_FILE), total)
    for split in SPLITS:
        s = total.get(split, {})
        logger.info(
            "%s %s: %s documents, %s tokens %s, %.2f hours",
            output_path,
            split,
            s.get("documents", 0),
            s.get("total_tokens", 0),
            s.get("tokens", {}),
            s.get("hours", 0.0),
        )
    if total.get("skipped_segments") or total.get("skipped_records"):
        logger.warning(
            "%s: skipped %s %s", output_path, total.get("skipped_segments", {}), total.get("skipped_records", {})
        )
    return total

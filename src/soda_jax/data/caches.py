"""Levanter token caches: one row per document, field ``input_ids`` (int32), split by recording.

A split directory (``{out}/train``, ``{out}/validation``) is a levanter *sharded* TreeCache: one
sub-cache per input shard, written independently (in parallel, restartable) with levanter's own
`SerialCacheWriter`, plus a top-level ``shard_ledger.json`` listing them, written last. Levanter's
`TreeCache.load` and every dataset built on it (`TokenSeqDataset`, `CausalLmDataset`, mixtures)
read it directly.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from soda_jax import fileio
from soda_jax.contracts import LEDGER_FILE, TRAIN_SPLIT, VALIDATION_SPLIT
from soda_jax.contracts import SPLITS as SPLITS  # re-exported: caches.SPLITS

if TYPE_CHECKING:  # levanter (and with it JAX) is imported where a cache is written or read
    from levanter.store.cache import CacheLedger, TreeCache

logger = logging.getLogger(__name__)

INPUT_IDS = "input_ids"
"""The one cache field (what levanter's text datasets read)."""
TRAIN, VALIDATION = TRAIN_SPLIT, VALIDATION_SPLIT
DEFAULT_WRITE_BATCH = 512
"""Documents buffered per `SerialCacheWriter.write_batch` call (amortises tensorstore writes)."""
_HASH_BYTES = 8
_HASH_SPACE = float(1 << (8 * _HASH_BYTES))


def exemplar() -> dict[str, np.ndarray]:
    """The cache's row structure, as levanter wants it to open a store."""
    return {INPUT_IDS: np.zeros((0,), dtype=np.int32)}


def split_of(key: str, validation_fraction: float, salt: str) -> str:
    """TRAIN or VALIDATION for ``key`` (a recording id), by a salted hash: stable across runs,
    shard layouts and workers, so a recording's segments and documents always land together."""
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=_HASH_BYTES).digest()
    return VALIDATION if int.from_bytes(digest, "little") / _HASH_SPACE < validation_fraction else TRAIN


def is_finished(cache_dir: str) -> bool:
    ledger = fileio.read_json_or_none(fileio.join(cache_dir, LEDGER_FILE))
    return bool(ledger and ledger.get("is_finished"))


class BufferedCacheWriter:
    """Writes rows (dicts of 1-D arrays shaped like ``exemplar``) to one levanter cache, batching
    the writes; every batch checks the step's lease first (`fileio.check_commit`: a taken-over
    attempt cannot write).

    Use as a context manager: the ledger (which makes the cache readable) is written on a clean
    exit only, so an interrupted write leaves an unfinished cache that `TreeCache.load` refuses.
    """

    def __init__(self, cache_dir: str, exemplar_row: dict[str, np.ndarray], *, batch_size: int = DEFAULT_WRITE_BATCH):
        from levanter.store.cache import SerialCacheWriter

        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.documents = 0
        self._buffer: list[dict[str, np.ndarray]] = []
        fs, path = fileio.filesystem(cache_dir)
        if fs.exists(path):  # a previous, interrupted attempt: start clean
            fs.rm(path, recursive=True)
        self._writer = SerialCacheWriter(cache_dir, exemplar_row)

    def write_row(self, row: dict[str, np.ndarray]) -> None:
        self._buffer.append(row)
        self.documents += 1
        if len(self._buffer) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            fileio.check_commit(self.cache_dir)
            self._writer.write_batch(self._buffer)
            self._buffer = []

    def __enter__(self) -> Self:
        self._writer.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._flush()
        self._writer.__exit__(exc_type, exc, tb)


class DocumentCacheWriter(BufferedCacheWriter):
    """Writes documents (1-D int arrays) as the ``input_ids`` rows of one levanter cache."""

    def __init__(self, cache_dir: str, *, batch_size: int = DEFAULT_WRITE_BATCH):
        super().__init__(cache_dir, exemplar(), batch_size=batch_size)
        self.tokens = 0

    def write(self, document: np.ndarray) -> None:
        self.tokens += len(document)
        self.write_row({INPUT_IDS: np.asarray(document, dtype=np.int32)})


def write_documents(cache_dir: str, documents: Iterable[np.ndarray], *, batch_size: int = DEFAULT_WRITE_BATCH) -> int:
    """Write ``documents`` as one (single-shard) cache; returns how many were written."""
    with DocumentCacheWriter(cache_dir, batch_size=batch_size) as writer:
        for document in documents:
            writer.write(document)
    return writer.documents


def finalize_sharded_cache(
    split_dir: str, shard_names: Iterable[str], metadata: Mapping[str, Any] | None = None
) -> CacheLedger:
    """Write ``{split_dir}/shard_ledger.json`` joining the finished sub-caches ``{split_dir}/{shard}``.

    Mirrors levanter's own sharded layout (relative shard paths, per-shard field counts), so
    `TreeCache.load(split_dir, ...)` reads the shards as one dataset, in the order given.
    """
    from levanter.store.cache import CACHE_LAYOUT_SHARDED, CacheLedger, CacheMetadata

    ledger = CacheLedger(
        total_num_rows=0,
        shard_rows={},
        is_finished=True,
        finished_shards=[],
        field_counts={},
        field_counts_by_shard={},
        layout=CACHE_LAYOUT_SHARDED,
        metadata=CacheMetadata(dict(metadata) if metadata else None),
    )
    for shard in shard_names:
        shard_ledger = fileio.read_json_or_none(fileio.join(split_dir, shard, LEDGER_FILE))
        if not shard_ledger or not shard_ledger.get("is_finished"):
            raise FileNotFoundError(f"{fileio.join(split_dir, shard)}: shard cache is missing or unfinished")
        ledger.shard_rows[shard] = shard_ledger["total_num_rows"]
        ledger.finished_shards.append(shard)
        ledger.total_num_rows += shard_ledger["total_num_rows"]
        counts = shard_ledger.get("field_counts") or {INPUT_IDS: 0}
        ledger.field_counts_by_shard[shard] = counts
        for name, count in counts.items():
            ledger.field_counts[name] = ledger.field_counts.get(name, 0) + count
    fileio.atomic_write_text(fileio.join(split_dir, LEDGER_FILE), ledger.to_json())
    return ledger


def open_cache(split_dir: str) -> TreeCache:
    """Levanter's `TreeCache` over a split directory written here."""
    from levanter.store.cache import TreeCache

    return TreeCache.load(split_dir, exemplar())


def read_documents(split_dir: str) -> list[np.ndarray]:
    """Every document of a split, in order (for tests and small inspections)."""
    cache = open_cache(split_dir)
    return [row[INPUT_IDS] for row in cache.get_batch_sync(list(range(len(cache))))] if len(cache) else []

"""The ``tokenize_text`` step: text corpora (jsonl / jsonl.gz / jsonl.zstd / parquet with a ``text``
field; Nemotron-CC as published) -> token caches in the audio-text vocabulary, same layout as
``interleave`` (contract section 2).

Which files are read, and how: `soda_jax.data.text_sources` (partition selection, formats, truncated
files). Each input file is a shard (`soda_jax.data.cache_step`: in parallel, restartable per shard),
named by its path under the input; each record becomes one ``text_only`` document ``<bos> T <eos>``.
Validation is held out by a hash of (shard name, record number), so it is stable across reruns.
Records without a usable ``text`` (missing, not a string, empty, not UTF-8, or an unparseable JSON
line) and files that end early are skipped and counted by reason, with the first few named in the log.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.contracts import SPLITS
from soda_jax.data import caches
from soda_jax.data.cache_stats import SplitStats
from soda_jax.data.cache_step import build_sharded_cache, finish_shard, finished_shard
from soda_jax.data.interleave import Markers, text_only
from soda_jax.data.skip_budget import DEFAULT_MAX_SKIP_FRACTION, enforce_skip_budget
from soda_jax.data.text_sources import NEMOTRON_HQ_ACTUAL, iter_texts, list_text_files

logger = logging.getLogger(__name__)

PATTERN = "text_only"
TOKENIZE_BATCH = 1024
"""Texts per batched tokenizer call."""
LOGGED_BAD_RECORDS = 5
"""Bad records named in the log per shard (all are counted)."""


@dataclass(frozen=True)
class TokenizeTextConfig:
    input_path: str
    """A file, or a directory whose text files (`text_sources.TEXT_SUFFIXES`, at any depth) are the shards."""
    output_path: str
    """Where the caches go (train/, validation/, vocab/, stats.json)."""
    tokenizer: str
    """Text tokenizer (the same one the speech caches use, so the vocabularies match)."""
    text_field: str = "text"
    """The record field holding the document text."""
    validation_fraction: float = 0.001
    """Share of documents held out for validation."""
    split_salt: str = "soda-validation"
    """Salt of the hash that picks validation documents."""
    write_batch_size: int = caches.DEFAULT_WRITE_BATCH
    """Documents per cache write."""
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION
    """Fail the step when more than this share of records is skipped, or when it writes no document."""
    partitions: tuple[str, ...] = NEMOTRON_HQ_ACTUAL
    """In an input with Hive partition directories (Nemotron-CC's ``quality=high/kind=actual/...``), read
    only these (or what lies under them); empty: all. An input without partitions is read whole."""


@dataclass(frozen=True)
class TextShardJob:
    path: str
    shard_name: str
    config: TokenizeTextConfig


def tokenize_text(config: TokenizeTextConfig) -> dict:
    """Run the step; returns the stats written to ``{output_path}/stats.json``."""
    files = list_text_files(config.input_path, config.partitions)
    jobs = [TextShardJob(f.url, f.shard_name, config) for f in files]
    by_name: dict[str, str] = {}
    for job in jobs:
        if job.shard_name in by_name:
            raise ValueError(f"{by_name[job.shard_name]} and {job.path} map to the same shard name {job.shard_name!r}")
        by_name[job.shard_name] = job.path
    vocab = AudioTextVocab.from_pretrained(config.tokenizer)
    layout = {
        "kind": "text",
        "patterns": [PATTERN],
        "text_field": config.text_field,
        "validation_fraction": config.validation_fraction,
        "held_out_by": "file and record number",
        "partitions": sorted({f.partition for f in files if f.partition}),
        "vocab": vocab.describe(),
    }

    def check_skips(shard_stats: Sequence[dict]) -> None:
        skipped: Counter = Counter()
        for s in shard_stats:
            skipped.update(s["skipped_records"])
        enforce_skip_budget(
            f"tokenize_text {config.output_path}",
            sum(s[split]["documents"] for s in shard_stats for split in SPLITS),
            skipped,
            config.max_skip_fraction,
        )

    return build_sharded_cache(
        config.output_path,
        tokenize_text_shard,
        jobs,
        sub_caches=[f"{j.shard_name}.{PATTERN}" for j in jobs],
        vocab=vocab,
        layout=layout,
        desc="tokenize text shards",
        check=check_skips,
    )


def tokenize_text_shard(job: TextShardJob) -> dict:
    """Tokenize one input file into its train/validation sub-caches; returns (and saves) its stats."""
    config = job.config
    previous = finished_shard(config.output_path, job.shard_name)
    if previous is not None:
        logger.info("%s: already tokenized, skipping", job.shard_name)
        return previous
    vocab = AudioTextVocab.from_pretrained(config.tokenizer)
    markers = Markers.from_vocab(vocab)
    skipped: Counter = Counter()
    stats = {split: SplitStats() for split in caches.SPLITS}
    dirs = {split: fileio.join(config.output_path, split, f"{job.shard_name}.{PATTERN}") for split in caches.SPLITS}
    with (
        caches.DocumentCacheWriter(dirs[caches.TRAIN], batch_size=config.write_batch_size) as train,
        caches.DocumentCacheWriter(dirs[caches.VALIDATION], batch_size=config.write_batch_size) as validation,
    ):
        writers = {caches.TRAIN: train, caches.VALIDATION: validation}
        batch: list[tuple[int, str]] = []

        def flush() -> None:
            for (record, _), ids in zip(batch, vocab.encode_texts([text for _, text in batch])):
                split = caches.split_of(f"{job.shard_name}:{record}", config.validation_fraction, config.split_salt)
                document = text_only(ids, markers)
                writers[split].write(document)
                stats[split].add_recording(segments=1, hours=0.0)
                stats[split].add_document(PATTERN, vocab.token_kinds(document))
            batch.clear()

        def skip(record: int, reason: str, detail: str) -> None:
            skipped[reason] += 1
            if sum(skipped.values()) <= LOGGED_BAD_RECORDS:
                logger.warning("%s record %d: skipped (%s) %s", job.path, record, reason, detail)

        for record, text in iter_texts(job.path, config.text_field, skip):
            batch.append((record, text))
            if len(batch) >= TOKENIZE_BATCH:
                flush()
        flush()
    return finish_shard(config.output_path, job.shard_name, stats, skipped_records=dict(skipped))

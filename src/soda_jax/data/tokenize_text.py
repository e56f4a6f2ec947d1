"""The ``tokenize_text`` step: text corpora (jsonl / jsonl.gz / parquet with a ``text`` field) ->
token caches in the audio-text vocabulary, same layout as ``interleave`` (contract section 2).

Each input file is a shard (`soda_jax.data.cache_step`: in parallel, restartable per shard); each record
becomes one ``text_only`` document ``<bos> T <eos>``. Validation is held out by a hash of
(file name, record number), so it is stable across reruns. Records without a usable ``text``
(missing, not a string, empty, or an unparseable JSON line) are skipped and counted by reason,
with the first few named in the log.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow.parquet as pq

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.contracts import SPLITS
from soda_jax.data import caches
from soda_jax.data.cache_stats import SplitStats
from soda_jax.data.cache_step import build_sharded_cache, finish_shard, finished_shard
from soda_jax.data.interleave import Markers, text_only
from soda_jax.data.skip_budget import DEFAULT_MAX_SKIP_FRACTION, enforce_skip_budget

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".parquet")
PATTERN = "text_only"
TOKENIZE_BATCH = 1024
"""Texts per batched tokenizer call."""
LOGGED_BAD_RECORDS = 5
"""Bad records named in the log per shard (all are counted)."""
SKIP_BAD_JSON, SKIP_NO_TEXT, SKIP_EMPTY = "invalid_json", "missing_or_non_string_text", "empty_text"


@dataclass(frozen=True)
class TokenizeTextConfig:
    input_path: str
    """A file, or a directory whose *.jsonl, *.jsonl.gz and *.parquet files are the shards."""
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


@dataclass(frozen=True)
class TextShardJob:
    path: str
    shard_name: str
    config: TokenizeTextConfig


def tokenize_text(config: TokenizeTextConfig) -> dict:
    """Run the step; returns the stats written to ``{output_path}/stats.json``."""
    paths = list_text_files(config.input_path)
    jobs = [TextShardJob(p, _shard_name(p), config) for p in paths]
    if len({j.shard_name for j in jobs}) != len(jobs):
        raise ValueError(f"{config.input_path}: two input files map to the same shard name")
    vocab = AudioTextVocab.from_pretrained(config.tokenizer)
    layout = {
        "kind": "text",
        "patterns": [PATTERN],
        "text_field": config.text_field,
        "validation_fraction": config.validation_fraction,
        "held_out_by": "file and record number",
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
        config.output_path, tokenize_text_shard, jobs, sub_caches=[f"{j.shard_name}.{PATTERN}" for j in jobs],
        vocab=vocab, layout=layout, desc="tokenize text shards", check=check_skips,
    )  # fmt: skip


def list_text_files(input_path: str) -> list[str]:
    fs, path = fileio.filesystem(input_path)
    if fs.isfile(path):
        files = [path]
    else:
        files = sorted(p for p in fs.find(path) if p.endswith(TEXT_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"{input_path}: no {'/'.join(TEXT_SUFFIXES)} files")
    return [fileio.url_of(fs, p) for p in files]


def _shard_name(path: str) -> str:
    name = os.path.basename(path)
    for suffix in TEXT_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


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

        for record, text in _records(job.path, config.text_field, skipped):
            batch.append((record, text))
            if len(batch) >= TOKENIZE_BATCH:
                flush()
        flush()
    return finish_shard(config.output_path, job.shard_name, stats, skipped_records=dict(skipped))


def _records(path: str, text_field: str, skipped: Counter) -> Iterator[tuple[int, str]]:
    """(record number, text) for each usable record of a jsonl or parquet file."""

    def skip(record: int, reason: str) -> None:
        skipped[reason] += 1
        if sum(skipped.values()) <= LOGGED_BAD_RECORDS:
            logger.warning("%s record %d: skipped (%s)", path, record, reason)

    def usable(record: int, text: object) -> bool:
        if not isinstance(text, str):
            skip(record, SKIP_NO_TEXT)
        elif not text:
            skip(record, SKIP_EMPTY)
        return isinstance(text, str) and bool(text)

    if path.endswith(".parquet"):
        fs, fs_path = fileio.filesystem(path)
        with fs.open(fs_path, "rb") as f:
            parquet = pq.ParquetFile(f)
            if text_field not in parquet.schema_arrow.names:
                raise ValueError(f"{path}: no column {text_field!r} (columns: {parquet.schema_arrow.names})")
            record = 0
            for batch in parquet.iter_batches(columns=[text_field]):
                for text in batch.column(0).to_pylist():
                    if usable(record, text):
                        yield record, text
                    record += 1
        return

    compression = "gzip" if path.endswith(".gz") else None
    fs, fs_path = fileio.filesystem(path)
    with fs.open(fs_path, "rt", compression=compression, encoding="utf-8") as f:
        for record, line in enumerate(f):
            if not line.strip():
                continue
            try:
                text = json.loads(line).get(text_field)
            except (json.JSONDecodeError, AttributeError):
                skip(record, SKIP_BAD_JSON)
                continue
            if usable(record, text):
                yield record, text

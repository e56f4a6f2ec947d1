"""The ``interleave`` step: tokenized utterances (contract section 1) -> token caches (section 2).

Each input shard is processed on its own (`soda_jax.data.cache_step`; Ray tasks when Ray runs): its recordings
are split into train/validation by a hash of the recording id (never by segment), each recording
becomes one document per configured pattern (several if it exceeds ``max_document_tokens``), and
the documents go to one levanter sub-cache per (shard, pattern) per split. A shard whose stats file
exists is already done, so a rerun after a crash redoes only unfinished shards. Finally the
sub-caches are joined into ``{out}/train`` and ``{out}/validation``, and ``{out}/vocab/`` and
``{out}/stats.json`` are written.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.contracts import CODEC_FILE, SHARDS_DIR, SPLITS
from soda_jax.data import caches
from soda_jax.data.cache_stats import SplitStats
from soda_jax.data.cache_step import build_sharded_cache, finish_shard, finished_shard
from soda_jax.data.interleave import (
    Markers,
    get_pattern,
    interleave_segments,
    oversized,
    recording_chunks,
    segment_lengths,
    split_segments,
)
from soda_jax.data.skip_budget import DEFAULT_MAX_SKIP_FRACTION, enforce_skip_budget
from soda_jax.data.utterance_shards import read_utterance_shard

logger = logging.getLogger(__name__)

SPEAKER_MARKER = "[{index}]"
"""SODA's TTS speaker marker text; ``index`` numbers a recording's speakers by first appearance."""


@dataclass(frozen=True)
class InterleaveConfig:
    input_path: str
    """A ``tokenize_audio`` output directory (codec.json, shards/*.parquet)."""
    output_path: str
    """Where the caches go (train/, validation/, vocab/, stats.json)."""
    tokenizer: str
    """Text tokenizer: a local directory or hub id (Llama-3's for SODA's exact layout)."""
    patterns: tuple[str, ...] = ("text_first", "audio_first")
    """Document patterns; every recording is written once per pattern (SODA: type1 and type2)."""
    validation_fraction: float = 0.01
    """Share of recordings (by hashed recording id) held out for validation."""
    max_document_tokens: int | None = None
    """Cap on document length; long recordings are split at segment boundaries (None: no cap)."""
    speaker_marker: bool = False
    """Put ``[i]`` (speaker index within the recording) right after each <|text_start|> (SODA's TTS0)."""
    split_salt: str = "soda-validation"
    """Salt of the recording-id hash that picks the validation recordings."""
    write_batch_size: int = caches.DEFAULT_WRITE_BATCH
    """Documents per cache write."""
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION
    """Fail the step when more than this share of segments is skipped, or when it writes no document;
    the error gives the counts by reason."""


@dataclass(frozen=True)
class ShardJob:
    """Everything one worker needs for one input shard (picklable for Ray)."""

    shard_path: str
    shard_name: str
    config: InterleaveConfig
    num_codebooks: int
    frame_rate: float


def interleave(config: InterleaveConfig) -> dict:
    """Run the step; returns the stats written to ``{output_path}/stats.json``."""
    patterns = [get_pattern(p) for p in config.patterns]
    if not patterns:
        raise ValueError("interleave needs at least one pattern")
    codec = fileio.read_json(fileio.join(config.input_path, CODEC_FILE))
    vocab = AudioTextVocab.from_pretrained(config.tokenizer)
    if codec["codebook_size"] != vocab.codebook_size:
        raise ValueError(
            f"{fileio.join(config.input_path, CODEC_FILE)}: codebook_size {codec['codebook_size']} "
            f"!= vocab's {vocab.codebook_size}"
        )
    fs, shards_dir = fileio.filesystem(fileio.join(config.input_path, SHARDS_DIR))
    shard_paths = sorted(p for p in fs.glob(f"{shards_dir}/*.parquet"))
    if not shard_paths:
        raise FileNotFoundError(f"{fileio.join(config.input_path, SHARDS_DIR)}: no *.parquet shards")
    jobs = [
        ShardJob(
            shard_path=fileio.url_of(fs, p),
            shard_name=os.path.basename(p).removesuffix(".parquet"),
            config=config,
            num_codebooks=int(codec["num_codebooks"]),
            frame_rate=float(codec["frame_rate"]),
        )
        for p in shard_paths
    ]
    layout = {
        "kind": "interleaved",
        "patterns": [p.name for p in patterns],
        "num_codebooks": {p.name: 1 if p.semantic_only else int(codec["num_codebooks"]) for p in patterns},
        "max_document_tokens": config.max_document_tokens,
        "speaker_marker": config.speaker_marker,
        "validation_fraction": config.validation_fraction,
        "held_out_by": "recording_id",
        "codec": codec,
        "vocab": vocab.describe(),
    }
    sub_caches = [f"{job.shard_name}.{p.name}" for job in jobs for p in patterns]

    def check_skips(shard_stats: Sequence[dict]) -> None:
        segments = sum(s[split]["segments"] for s in shard_stats for split in SPLITS)
        documents = sum(s[split]["documents"] for s in shard_stats for split in SPLITS)
        enforce_skip_budget(
            f"interleave {config.output_path}",
            segments if documents else 0,
            _sum_counts(s["skipped_segments"] for s in shard_stats),
            config.max_skip_fraction,
        )

    return build_sharded_cache(
        config.output_path,
        interleave_shard,
        jobs,
        sub_caches=sub_caches,
        vocab=vocab,
        layout=layout,
        desc="interleave shards",
        check=check_skips,
    )


def interleave_shard(job: ShardJob) -> dict:
    """Interleave one input shard into its sub-caches; returns (and saves) its stats."""
    config = job.config
    previous = finished_shard(config.output_path, job.shard_name)
    if previous is not None:
        logger.info("%s: already interleaved, skipping", job.shard_name)
        return previous

    vocab = AudioTextVocab.from_pretrained(config.tokenizer)
    markers = Markers.from_vocab(vocab)
    patterns = [get_pattern(p) for p in config.patterns]
    shard = read_utterance_shard(job.shard_path, job.num_codebooks, vocab.codebook_size)
    all_text_ids = _encode_used_texts(shard, vocab, any(p.uses_text for p in patterns))

    stats: dict = {split: SplitStats() for split in caches.SPLITS}
    stats["skipped_segments"] = dict(shard.skipped)
    stats["oversized_segments"] = Counter()
    with contextlib.ExitStack() as stack:
        writers = {
            (split, p.name): stack.enter_context(
                caches.DocumentCacheWriter(
                    fileio.join(config.output_path, split, f"{job.shard_name}.{p.name}"),
                    batch_size=config.write_batch_size,
                )
            )
            for split in caches.SPLITS
            for p in patterns
        }
        splits = []
        for recording_id, rows in zip(shard.recording_ids, shard.recording_rows):
            split = caches.split_of(recording_id, config.validation_fraction, config.split_salt)
            stats[split].add_recording(
                segments=len(rows), hours=float(shard.num_frames[rows].sum()) / job.frame_rate / 3600
            )
            splits.append(split)
        codes_per_recording = [
            int((shard.code_offsets[rows + 1] - shard.code_offsets[rows]).sum()) for rows in shard.recording_rows
        ]
        for chunk in recording_chunks(codes_per_recording):
            chunk_rows = shard.recording_rows[chunk.start : chunk.stop]
            rows = np.concatenate(chunk_rows)
            codes, code_lengths = _rows_codes(shard.codes, shard.code_offsets, rows)
            texts = [all_text_ids[r] for r in rows] if all_text_ids is not None else None
            speakers = (
                [m for rs in chunk_rows for m in _speaker_markers(shard, rs, vocab)] if config.speaker_marker else None
            )
            for pattern in patterns:
                pattern_texts, pattern_speakers = (texts, speakers) if pattern.uses_text else (None, None)
                per_document, recording_of = _documents_per_recording(
                    pattern,
                    chunk_rows,
                    pattern_texts,
                    pattern_speakers,
                    pattern.audio_lengths(code_lengths, job.num_codebooks),
                    config.max_document_tokens,
                    stats["oversized_segments"],
                )
                documents = interleave_segments(
                    pattern,
                    codes,
                    code_lengths,
                    job.num_codebooks,
                    markers,
                    texts=pattern_texts,
                    speakers=pattern_speakers,
                    segments_per_document=per_document,
                )
                for document, recording in zip(documents, recording_of):
                    split = splits[chunk.start + recording]
                    writers[(split, pattern.name)].write(document)
                    stats[split].add_document(pattern.name, vocab.token_kinds(document))

    if shard.skipped:
        logger.warning("%s: skipped segments %s", job.shard_path, dict(shard.skipped))
    return finish_shard(
        config.output_path,
        job.shard_name,
        stats,
        skipped_segments=stats["skipped_segments"],
        oversized_segments=dict(stats["oversized_segments"]),
    )


def _sum_counts(counts) -> Counter:
    total: Counter = Counter()
    for c in counts:
        total.update(c)
    return total


def _rows_codes(codes: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The codes of ``rows`` back to back, and each row's length (a view when the rows are contiguous)."""
    starts, ends = offsets[rows], offsets[rows + 1]
    if (starts[1:] == ends[:-1]).all():
        return codes[starts[0] : ends[-1]], ends - starts
    return np.concatenate([codes[a:b] for a, b in zip(starts, ends)]), ends - starts


def _documents_per_recording(
    pattern, recording_rows, texts, speakers, audio_lengths, max_document_tokens, oversized_counts
):
    """Segments per document and the recording of each document (several when a recording exceeds the cap)."""
    if max_document_tokens is None:
        return [len(rows) for rows in recording_rows], range(len(recording_rows))
    lengths = segment_lengths(pattern, texts, audio_lengths, speakers)
    oversized_counts[pattern.name] += oversized(lengths, max_document_tokens)
    per_document, recording_of, first = [], [], 0
    for recording, rows in enumerate(recording_rows):
        groups = split_segments(lengths[first : first + len(rows)], max_document_tokens)
        per_document += [g.stop - g.start for g in groups]
        recording_of += [recording] * len(groups)
        first += len(rows)
    return per_document, recording_of


def _encode_used_texts(shard, vocab: AudioTextVocab, uses_text: bool) -> list[np.ndarray] | None:
    """Text ids of every row (one batched tokenizer call), or None when no pattern shows text."""
    if not uses_text:
        return None
    return vocab.encode_texts(shard.texts)


def _speaker_markers(shard, rows: np.ndarray, vocab: AudioTextVocab) -> list[np.ndarray]:
    """``[i]`` ids for each segment, numbering the recording's speakers by first appearance."""
    index: dict[str, int] = {}
    encoded: dict[int, np.ndarray] = {}
    out = []
    for r in rows:
        i = index.setdefault(shard.speakers[r], len(index))
        if i not in encoded:
            encoded[i] = vocab.encode_text(SPEAKER_MARKER.format(index=i))
        out.append(encoded[i])
    return out

"""The ``sft_data`` step: a task source -> fine-tuning caches (``train/``, ``validation/``, ``vocab/``).

The output is laid out like every token cache (docs/data-contracts.md section 2), so the
training step sizes its vocabulary from it and checks it against the model it starts from; the
rows are prompt/response documents (`soda_jax.data.sft`). Records that cannot be used are
skipped and counted by reason, pairs longer than ``max_tokens`` follow the ``overlong`` rule and
are counted, and everything lands in ``stats.json``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.codec import CodecConfig, MimiCodec
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.contracts import STATS_FILE
from soda_jax.data import caches
from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.data.sft import TRUNCATED, SftCacheWriter, fit_pair
from soda_jax.data.sft_sources import TaskSource, TokenizedTaskSource, source_needs_codec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SftDataConfig:
    source: TaskSource
    """Where the pairs come from (`soda_jax.data.sft_sources`)."""
    output_path: str
    """Where the caches go: train/, validation/, vocab/, stats.json."""
    tokenizer: str
    """Text tokenizer (local directory or hub id): the same as the base model's data."""
    max_tokens: int = 2048
    """Longest document (prompt + response): the fine-tuning sequence length."""
    overlong: str = "skip"
    """Rule for longer pairs, one of `soda_jax.data.sft.OVERLONG_RULES`."""
    validation_fraction: float = 0.01
    """Share of keys (recordings, record ids) held out, by salted hash."""
    codec: CodecConfig | None = None
    """Mimi for sources with audio files (JSONL, CVSS); the base model's codec."""
    split_salt: str = "soda-validation"
    """Salt of the key hash (the interleave step's, so a recording held out there is here too)."""


def build_sft_data(config: SftDataConfig) -> dict:
    """Run the step; returns the stats written to ``{output_path}/stats.json``."""
    source = config.source
    codec = None
    if source_needs_codec(source):
        if config.codec is None:
            raise ValueError(f"{type(source).__name__} reads audio files: SftDataConfig.codec is required")
        codec = MimiCodec.from_config(config.codec)
        codebook_size = codec.codebook_size
    else:
        assert isinstance(source, TokenizedTaskSource)  # the one source without audio files
        codebook_size = source.codebook_size()
    text_vocab = AudioTextVocab.from_pretrained(config.tokenizer)
    vocab = AudioTextVocab(text_vocab.text_tokenizer, codebook_size=codebook_size)

    skipped: Counter = Counter()
    truncated = 0
    with (
        SftCacheWriter(fileio.join(config.output_path, caches.TRAIN)) as train,
        SftCacheWriter(fileio.join(config.output_path, caches.VALIDATION)) as validation,
    ):
        writers = {caches.TRAIN: train, caches.VALIDATION: validation}
        for key, pair in tqdm(source.pairs(vocab, codec), desc="sft pairs", unit="pair"):
            if isinstance(pair, str):
                skipped[pair] += 1
                continue
            fitted, what = fit_pair(pair, config.max_tokens, config.overlong)
            if fitted is None:
                skipped[what] += 1
                continue
            truncated += what == TRUNCATED
            writers[caches.split_of(key, config.validation_fraction, config.split_salt)].write(fitted)
    save_cache_vocab(vocab, config.output_path)
    stats = {
        caches.TRAIN: train.stats(),
        caches.VALIDATION: validation.stats(),
        "skipped": dict(skipped),
        "truncated": truncated,
        "layout": {
            "kind": "sft",
            "source": type(source).__name__,
            "max_tokens": config.max_tokens,
            "overlong": config.overlong,
            "codec": codec.describe() if codec else None,
            "vocab": vocab.describe(),
        },
    }
    if skipped or truncated:
        logger.warning("sft data %s: skipped %s, truncated %d", config.output_path, dict(skipped), truncated)
    fileio.atomic_write_json(fileio.join(config.output_path, STATS_FILE), stats)
    return stats

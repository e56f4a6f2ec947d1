"""SODA's final-run data, as steps: raw corpora -> Mimi codes -> interleaved caches, plus web text.

The raw corpora live under ``$SODA_RAW_ROOT`` (any fsspec URL)::

    {root}/yodas2/        YODAS2 long-form audio + caption segments (docs/audio.md layout)
    {root}/emilia_yodas/  Emilia-YODAS tar shards (Emilia layout)
    {root}/emilia/        Emilia tar shards
    {root}/nemotron_cc/   Nemotron-CC-like text (jsonl/parquet with a "text" field)

English only, full Mimi, Llama-3's text tokenizer: SODA's released vocabulary (144,644 ids).
"""

from __future__ import annotations

import os

from experiments.data_mixes import EMILIA, EMILIA_YODAS, NEMOTRON_CC, YODAS2, mixture_config
from experiments.defaults import default_interleave, default_tokenize, default_tokenize_text
from soda_jax import fileio
from soda_jax.audio.codec import CodecConfig

SODA_RAW_ROOT_ENV = "SODA_RAW_ROOT"
"""Environment variable naming the directory (or bucket URL) that holds the raw corpora."""
DEFAULT_RAW_ROOT = "raw"
"""Where the raw corpora are looked for when ``$SODA_RAW_ROOT`` is unset (relative: under the cwd)."""
LLAMA3_TOKENIZER = "meta-llama/Meta-Llama-3-8B"
"""SODA's text tokenizer (a hub id or a local copy of it)."""
MIMI = CodecConfig(pretrained="kyutai/mimi")
"""Kyutai's released Mimi, first 8 codebooks."""
LANGUAGES = ("en",)
"""SODA's speech is English."""
SPEECH_SOURCES = {YODAS2: "yodas2", EMILIA_YODAS: "emilia", EMILIA: "emilia"}
"""Mix component -> the reader of its raw layout."""
TOKENIZE_CPUS = 4
"""CPUs per tokenization shard task (Mimi encoding on CPU hosts)."""


def soda_final_caches(raw_root: str | None = None) -> dict:
    """Component name -> the step writing its token cache, for every component of ``soda_final``."""
    root = raw_root or os.environ.get(SODA_RAW_ROOT_ENV, DEFAULT_RAW_ROOT)
    caches = {
        name: default_interleave(
            name,
            default_tokenize(name, fileio.join(root, name), source=source, languages=LANGUAGES, codec=MIMI, cpus=TOKENIZE_CPUS),
            tokenizer=LLAMA3_TOKENIZER,
        )
        for name, source in SPEECH_SOURCES.items()
    }
    caches[NEMOTRON_CC] = default_tokenize_text(NEMOTRON_CC, fileio.join(root, NEMOTRON_CC), tokenizer=LLAMA3_TOKENIZER)
    return caches


def soda_final_data(raw_root: str | None = None):
    """SODA's final mix (YODAS2 0.516, Emilia-YODAS 0.288, Emilia 0.146, text 0.05) over its caches."""
    return mixture_config("soda_final", soda_final_caches(raw_root))

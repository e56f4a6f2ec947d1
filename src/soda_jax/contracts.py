"""File and directory names of every step's output layout, in one place (docs/data-contracts.md).

A stage reads another's output by these names only, so a name changes here or nowhere. The
lowest layer of the package: it imports nothing of soda-jax.
"""

from __future__ import annotations

import re

# -- executor bookkeeping, in every step's output directory (execution/) --------------------------
STATUS_FILE = ".executor_status"
"""``{"status", "time"}``: RUNNING, SUCCESS, FAILED or DEP_FAILED."""
LEASE_FILE = ".executor_lease"
"""``{"owner", "heartbeat", "generation"}`` of the executor running the step."""
INFO_FILE = ".executor_info"
"""The step's name, version, concrete config and dependencies."""
PROVENANCE_FILE = ".provenance.json"
"""Code commit, package versions, host and times of the run that produced the output."""
INPUTS_FILE = ".inputs.json"
"""The fingerprints of the step's input files (`soda_jax.execution.provenance`)."""
EXPERIMENTS_DIR = "experiments"
"""``{prefix}/experiments/{key}.json``: one record per `executor_main` call."""
EXPERIMENT_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
"""An experiment file's name without ``.json``: no separators, no leading dot or dash (the dashboard
serves no other name; the executor writes none)."""

# -- downloads (download -> every reader of a corpus) ---------------------------------------------
DOWNLOAD_MANIFEST_FILE = "download_manifest.json"
"""Repository, pinned revision and files (with sizes and hashes) of a download step."""

# -- tokenized utterances (tokenize_audio -> interleave; contract section 1) -----------------------
CODEC_FILE = "codec.json"
"""Codec facts: sample and frame rate, codebooks, weights."""
SHARDS_DIR = "shards"
"""``shards/{shard}.parquet``, one per input shard."""
STATS_FILE = "stats.json"
"""Counts of what a data step wrote and skipped (hours, utterances or documents, tokens)."""

# -- token caches (interleave, tokenize_text -> training; contract section 2) ----------------------
TRAIN_SPLIT, VALIDATION_SPLIT = "train", "validation"
SPLITS = (TRAIN_SPLIT, VALIDATION_SPLIT)
"""Split directories of a token cache, each a levanter TreeCache joined from sub-caches."""
LEDGER_FILE = "shard_ledger.json"
"""``{split}/shard_ledger.json``: the sub-caches (one per shard and pattern) a split joins."""
SHARD_STATS_DIR = "shard_stats"
"""``shard_stats/{shard}.json``: one shard's counts; its presence marks the shard done."""
VOCAB_DIR = "vocab"
"""``vocab/``: `AudioTextVocab.save` output."""
VOCAB_FILE = "vocab.json"
"""``vocab/vocab.json``: the vocabulary layout (sizes, offsets, special ids)."""
TEXT_TOKENIZER_DIR = "text_tokenizer"
"""``vocab/text_tokenizer/``: the text tokenizer (save_pretrained)."""
LEVANTER_TOKENIZER_DIR = "tokenizer"
"""``vocab/tokenizer/``: the full-vocabulary tokenizer levanter loads."""

# -- training runs (train -> eval, scaling; contract section 3) ------------------------------------
CHECKPOINTS_DIR = "checkpoints"
"""levanter checkpoints (tensorstore)."""
HF_DIR = "hf"
"""The final model exported for transformers."""
METRICS_FILE = "metrics.jsonl"
"""One JSON object per training step."""
SUMMARY_FILE = "summary.json"
"""Written last: its presence means the run finished."""
TRAINING_MANIFEST_FILE = "training_manifest.json"
"""Written when a run starts: the caches and vocabulary it reads, their codebooks and codec, the
model shape and ``layer_loop`` (`soda_jax.training.manifest`)."""
HF_CONFIG_FILE = "config.json"
"""transformers' model config, in ``hf/`` and in any transformers model directory."""
HF_TOKENIZER_FILE = "tokenizer.json"
"""transformers' fast-tokenizer file, beside ``config.json``."""
CODEC_DIR = "mimi"
"""A codec step's Mimi in transformers' format (``config.json`` + ``model.safetensors``), which
``CodecConfig(pretrained=...)`` loads with either backend (`soda_jax.data.demo_codec`)."""
INITIAL_VALIDATION_FILE = "initial_validation.json"
"""Validation losses of an ``init_from`` model before its first step (a fine-tune's "before")."""
LOGS_DIR = "logs"
"""levanter's log files (local runs)."""
TENSORBOARD_DIR = "tensorboard"
"""TensorBoard event files, when enabled."""

# -- evaluations and analysis (contract section 3b) ------------------------------------------------
EVAL_RESULTS_FILE = "results.json"
"""``{"metrics": {name: value}}`` of an evaluation step."""
EVAL_ITEMS_DIR = "items"
"""``items/{task}.jsonl``: one JSON object per evaluated item (`soda_jax.eval.results`)."""
EVAL_TASKS_DIR = "tasks"
"""``tasks/{task}.json``: a finished task's summary."""
EVAL_AUDIO_DIR = "audio"
"""``audio/{task}/*.wav``: audio a generative task produced."""
FITS_FILE = "scaling_fits.json"
"""The scaling analysis' fits."""
PROPOSALS_FILE = "proposals.json"
"""A sweep-proposals step's verdict per budget and the runs it adds (scaling/proposals.py)."""

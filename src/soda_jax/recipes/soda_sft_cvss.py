"""SODA's fine-tune: voice-preserving speech-to-speech translation on CVSS, as Marin's audio SFT
experiment runs it (experiments/audio/audio_sft_cvss.py there): the SODA-600M base on a v5p-8.

    python experiments/soda_sft_cvss.py --prefix gs://BUCKET/soda [--dry_run]
    python experiments/soda_sft_cvss.py --base_size 4b --prefix gs://BUCKET/soda   # the 4B base on its slice

Inputs under ``$SODA_RAW_ROOT`` (experiments/soda_data.py)::

    {root}/cvss/cvss_t_{lang}_en_v1.0/          CVSS-T (target speech in the source speaker's voice):
                                                {split}.tsv, {split}/{clip}.wav
    {root}/common_voice/{lang}/clips/           the source clips (Common Voice, mp3)
    {root}/covost2/covost_v2.{lang}_en.tsv      source transcripts (with SOURCE_TRANSCRIPT)

The base is our final run of that size (experiments/soda_final.py), or, with ``$SODA_BASE_MODEL``
set, a transformers directory of a downloaded SODA base of that size (Marin's is
``potsawee/soda-600m-base``). Data: one cache per language pair, Mimi and Llama-3's tokenizer (the
base's vocabulary), mixed equally. Recipe: `SFT_RECIPE`, Marin's setting for setting (seq 2048,
batch 64, 750M tokens x 5 epochs, Cautious with AdamC weight decay 0.01, LR 2e-5, 3% warmup, cosine
to 0.1x, clip 1, z-loss 1e-4). Departures (docs/training.md, "Fine-tuning"): Marin read one
instruction dataset with every language in its natural share (``rma9248/cvss_method1``); here the
pairs are built from CVSS-T itself, one cache per language, mixed equally.
"""

from __future__ import annotations

import os

from soda_jax import fileio
from soda_jax.data.sft_sources import CvssTaskSource
from soda_jax.execution import ExecutorStep, executor_main
from soda_jax.execution.main import pop_option
from soda_jax.recipes.defaults import default_sft, default_sft_data
from soda_jax.recipes.soda_data import DEFAULT_RAW_ROOT, LLAMA3_TOKENIZER, MIMI, SODA_RAW_ROOT_ENV
from soda_jax.recipes.soda_final import soda_final_run
from soda_jax.recipes.soda_models import SODA_MODELS, SODA_PARALLELISM, SODA_TPU_SLICES
from soda_jax.training.sft_recipe import SFT_RECIPE, SFT_SEQ_LEN

CVSS_LANGUAGES = ("fr", "de", "es", "ca")
"""Source languages (X -> English); not given by SODA's description: CoVoST 2's four largest."""
RESPONSE = "text_audio"
"""The answer: English text then its speech (``audio``: the speech alone)."""
SOURCE_TRANSCRIPT = False
"""Whether the prompt also carries the source transcript (CoVoST 2)."""
BASE_MODEL_ENV = "SODA_BASE_MODEL"
"""A transformers directory of a SODA base (of the chosen size) to start from instead of our own run."""
SFT_BASE_SIZE = "600m"
"""The base Marin fine-tunes: SODA-600M."""
SFT_TPUS = {"600m": "v5p-8"}
"""Marin's slice per base size; another size fine-tunes on its pretraining slice (`SODA_TPU_SLICES`)."""
BASE_SIZE_FLAG = "--base_size"
STEPS_PER_EVAL = 1000


def cvss_data(raw_root: str | None = None) -> dict:
    root = raw_root or os.environ.get(SODA_RAW_ROOT_ENV, DEFAULT_RAW_ROOT)
    return {
        f"cvss-{lang}-en": default_sft_data(
            f"cvss-t-{lang}-en",
            CvssTaskSource(
                cvss_dir=fileio.join(root, "cvss", f"cvss_t_{lang}_en_v1.0"),
                source_clips_dir=fileio.join(root, "common_voice", lang, "clips"),
                split="train",
                response=RESPONSE,
                covost_tsv=fileio.join(root, "covost2", f"covost_v2.{lang}_en.tsv") if SOURCE_TRANSCRIPT else None,
            ),
            tokenizer=LLAMA3_TOKENIZER,
            max_tokens=SFT_SEQ_LEN,
            codec=MIMI,
        )
        for lang in CVSS_LANGUAGES
    }


def soda_cvss_sft(size: str = SFT_BASE_SIZE) -> ExecutorStep:
    """``checkpoints/soda-{size}-cvss-s2st``: the SODA base of ``size`` ("600m", as Marin; "135m" ..
    "4b") fine-tuned on CVSS-T with `SFT_RECIPE`."""
    if size not in SODA_MODELS:
        raise ValueError(f"unknown base size {size!r}; known: {sorted(SODA_MODELS)}")
    shape = SODA_MODELS[size]
    return default_sft(
        f"soda-{size}-cvss-s2st",
        os.environ.get(BASE_MODEL_ENV) or soda_final_run(size),
        cvss_data(),
        SFT_RECIPE,
        model=shape,
        tpu=SFT_TPUS.get(size, SODA_TPU_SLICES[shape]),
        parallelism=SODA_PARALLELISM[shape],
        steps_per_eval=STEPS_PER_EVAL,
    )


def pop_base_size(argv: list[str]) -> tuple[str, list[str]]:
    """``--base_size SIZE`` (default `SFT_BASE_SIZE`) and the executor's own arguments."""
    size, rest = pop_option(argv, BASE_SIZE_FLAG)
    return size or SFT_BASE_SIZE, rest


def main(argv: list[str]) -> None:
    base_size, executor_args = pop_base_size(argv)
    executor_main(
        [soda_cvss_sft(base_size)],
        args=executor_args,
        description=f"SODA-{base_size} fine-tuned for speech-to-speech translation (CVSS)",
    )

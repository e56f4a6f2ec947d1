"""SODA's fine-tune: voice-preserving speech-to-speech translation on CVSS, from the 4B base.

    python experiments/soda_sft_cvss.py --prefix gs://BUCKET/soda [--dry_run]

Inputs under ``$SODA_RAW_ROOT`` (experiments/soda_data.py)::

    {root}/cvss/cvss_t_{lang}_en_v1.0/          CVSS-T (target speech in the source speaker's voice):
                                                {split}.tsv, {split}/{clip}.wav
    {root}/common_voice/{lang}/clips/           the source clips (Common Voice, mp3)
    {root}/covost2/covost_v2.{lang}_en.tsv      source transcripts (with SOURCE_TRANSCRIPT)

The base is our SODA-4B final run (experiments/soda_4b.py), or, with ``$SODA_BASE_MODEL`` set, a
transformers directory of a downloaded SODA-4B base. Data: one cache per language pair, Mimi and
Llama-3's tokenizer (the base's vocabulary), mixed equally; recipe `SFT_RECIPE` (seq 2048, batch
64, ~750M tokens x 5 epochs, AdamW 2e-5, cosine to 0.1x, betas 0.9/0.999) on the 4B's slice.
"""

from __future__ import annotations

import os
import sys

from experiments.defaults import default_sft, default_sft_data
from experiments.soda_data import DEFAULT_RAW_ROOT, LLAMA3_TOKENIZER, MIMI, SODA_RAW_ROOT_ENV
from experiments.soda_final import soda_final_run
from experiments.soda_models import SODA_4B, SODA_PARALLELISM, SODA_TPU_SLICES
from soda_jax import fileio
from soda_jax.data.sft_sources import CvssTaskSource
from soda_jax.execution import executor_main
from soda_jax.training.sft_recipe import SFT_RECIPE, SFT_SEQ_LEN

CVSS_LANGUAGES = ("fr", "de", "es", "ca")
"""Source languages (X -> English); not given by SODA's description: CoVoST 2's four largest."""
RESPONSE = "text_audio"
"""The answer: English text then its speech (``audio``: the speech alone)."""
SOURCE_TRANSCRIPT = False
"""Whether the prompt also carries the source transcript (CoVoST 2)."""
BASE_MODEL_ENV = "SODA_BASE_MODEL"
"""A transformers directory of a SODA-4B base to start from instead of our own run."""


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


base = os.environ.get(BASE_MODEL_ENV) or soda_final_run("4b")
soda_4b_cvss = default_sft(
    "soda-4b-cvss-s2st",
    base,
    cvss_data(),
    SFT_RECIPE,
    model=SODA_4B,
    tpu=SODA_TPU_SLICES[SODA_4B],
    parallelism=SODA_PARALLELISM[SODA_4B],
    steps_per_eval=1000,
)

if __name__ == "__main__":
    executor_main([soda_4b_cvss], description="SODA-4B fine-tuned for speech-to-speech translation (CVSS)", args=sys.argv[1:])

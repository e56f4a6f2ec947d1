"""Export a trained levanter Qwen3 model for transformers (`Qwen3ForCausalLM.from_pretrained`)."""

from __future__ import annotations

import logging

import jax.numpy as jnp
from levanter.compat.hf_checkpoints import HFCheckpointConverter
from levanter.models.qwen import Qwen3Config
from transformers.models.qwen3 import Qwen3Config as HfQwen3Config

from soda_jax import fileio
from soda_jax.contracts import HF_TOKENIZER_FILE

logger = logging.getLogger(__name__)

TOKENIZER_FILES = (HF_TOKENIZER_FILE, "tokenizer_config.json", "special_tokens_map.json")
"""Files of the data's tokenizer directory copied next to the weights (those that exist)."""


def export_hf(model, model_config: Qwen3Config, path: str, *, tokenizer_dir: str | None = None) -> None:
    """Write ``model`` as safetensors + config.json (f32) under ``path``, plus the tokenizer files.

    No reference checkpoint is consulted (nothing is fetched from a hub): the HF config comes
    from ``model_config.to_hf_config(vocab)``.
    """
    converter = HFCheckpointConverter(
        Qwen3Config, reference_checkpoint=None, HfConfigClass=HfQwen3Config, tokenizer=tokenizer_dir
    )
    converter.save_pretrained(
        model,
        path,
        save_reference_code=False,
        save_tokenizer=False,
        dtype=jnp.float32,
    )
    if tokenizer_dir:
        for name in TOKENIZER_FILES:
            source = fileio.join(tokenizer_dir, name)
            if fileio.exists(source):
                fileio.atomic_write_bytes(fileio.join(path, name), fileio.read_bytes(source))
    logger.info("exported the model for transformers to %s", path)

"""Mimi in JAX (flax.nnx): encode 24 kHz speech to codes and decode them, jit-compiled and sharded.

Modules: `config` (shapes), `convs` (causal convolutions, SEANet), `transformer`, `quantizer`
(split RVQ), `model` (the whole codec), `convert` (weights from transformers / safetensors, the
converted orbax checkpoint), `runner` (compiled, batched, chunked and mesh-sharded encode/decode).
"""

from soda_jax.audio.mimi_jax.config import MimiJaxConfig
from soda_jax.audio.mimi_jax.convert import (
    convert_checkpoint,
    converted,
    from_safetensors,
    from_transformers,
    load_checkpoint,
)
from soda_jax.audio.mimi_jax.model import Mimi

__all__ = [
    "Mimi",
    "MimiJaxConfig",
    "convert_checkpoint",
    "converted",
    "from_safetensors",
    "from_transformers",
    "load_checkpoint",
]

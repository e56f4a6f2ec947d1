"""Decoder LMs as levanter Qwen3 configs: shapes, the SODA catalogue, tiny CPU shapes."""

from soda_jax.models.catalogue import (
    BENCH_20M,
    CATALOGUE,
    DEMO_6M,
    SODA_1_7B,
    SODA_4B,
    SODA_135M,
    SODA_150M,
    SODA_600M,
    TEST_TINY,
    model_shape,
    named_size,
    vocab_size_of,
)
from soda_jax.models.shapes import ModelShape, qwen3_config

__all__ = [
    "BENCH_20M",
    "CATALOGUE",
    "DEMO_6M",
    "ModelShape",
    "SODA_135M",
    "SODA_150M",
    "SODA_1_7B",
    "SODA_4B",
    "SODA_600M",
    "TEST_TINY",
    "model_shape",
    "named_size",
    "qwen3_config",
    "vocab_size_of",
]

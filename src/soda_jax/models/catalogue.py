"""The SODA model catalogue (levanter Qwen3 shapes) and tiny shapes for CPU runs.

Vocabulary sizes are never part of a shape: `vocab_size_of` reads them from a token cache.
"""

from __future__ import annotations

from soda_jax import fileio
from soda_jax.contracts import VOCAB_DIR, VOCAB_FILE
from soda_jax.models.shapes import ModelShape

SODA_135M = ModelShape(hidden_dim=512, intermediate_dim=1792, num_layers=15, num_heads=8, num_kv_heads=8, head_dim=64)
SODA_600M = ModelShape(
    hidden_dim=1024, intermediate_dim=3072, num_layers=28, num_heads=16, num_kv_heads=8, head_dim=128
)
SODA_1_7B = ModelShape(
    hidden_dim=2048, intermediate_dim=6144, num_layers=28, num_heads=16, num_kv_heads=8, head_dim=128
)
SODA_4B = ModelShape(hidden_dim=2560, intermediate_dim=9728, num_layers=36, num_heads=32, num_kv_heads=8, head_dim=128)
SODA_150M = ModelShape(hidden_dim=512, intermediate_dim=1792, num_layers=20, num_heads=8, num_kv_heads=8, head_dim=64)
"""SODA's 150M, the model of its design-choice studies (data sources, text share; docs/design-studies.md).

Derived from the rule behind SODA's named sizes, not from the isoFLOP sweep's depth rule: a named
size keeps the 135M's width (d 512, a 3.5d SwiGLU MLP of 1792, 8 heads of 64) and takes the depth
whose parameter count as SODA names its models (`named_size`: one embedding matrix) is the size:
144,644 x 512 = 74.06M of embedding plus 3.80M per layer reaches 150M at 20 layers (150.1M; the
135M's 15 layers give 131.1M). That is Marin's ``qwen3_150m`` (experiments/audio/qwen3.py),
the model of SODA's 150M data-mix and Nemotron-CC runs. The sweep's rule at d=512 (6 layers of 4
heads of 128, a 4d MLP) counts 99M the same way: it designs isoFLOP grids, not the named sizes.
Marin ties this model's embeddings; a `ModelShape` trains untied (two 74M matrices, 224M in all),
so the studies' runs carry one more 74M matrix than SODA's."""

DEMO_6M = ModelShape(hidden_dim=64, intermediate_dim=192, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=16)
"""The CPU demo model: 0.2M non-embedding parameters, 6.4M with the demo's 48,388-id vocabulary
(Mistral's 32,000-id SentencePiece + 4 markers + 16,384 audio ids): the embeddings dominate, as in
SODA's small models."""
BENCH_20M = ModelShape(hidden_dim=384, intermediate_dim=1024, num_layers=6, num_heads=6, num_kv_heads=2, head_dim=64)
"""The benchmark model: ~8.5M non-embedding parameters, ~20M with a 16k-id vocabulary."""
TEST_TINY = ModelShape(hidden_dim=32, intermediate_dim=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8)
"""Smallest shape with grouped-query attention and a model axis of 2 dividing heads and MLP: tests."""

CATALOGUE: dict[str, ModelShape] = {
    "soda-135m": SODA_135M,
    "soda-150m": SODA_150M,
    "soda-600m": SODA_600M,
    "soda-1.7b": SODA_1_7B,
    "soda-4b": SODA_4B,
    "demo-6m": DEMO_6M,
    "bench-20m": BENCH_20M,
    "test-tiny": TEST_TINY,
}

SODA_NAMED_EMBEDDINGS = 1
"""Embedding matrices SODA counts in a model's named size (135M, 150M): one, as in a model with tied
embeddings (Marin's small Qwen3 configs tie them; `named_size` counts the same way)."""


def named_size(shape: ModelShape, vocab_size: int) -> int:
    """Parameters as SODA's size names count them: the non-embedding ones plus one embedding matrix
    (150.1M for `SODA_150M` with SODA's 144,644 ids, 131.1M for `SODA_135M`)."""
    counts = shape.param_counts(vocab_size)
    return counts.non_embedding + SODA_NAMED_EMBEDDINGS * counts.token_embedding


def model_shape(name: str) -> ModelShape:
    """A catalogue entry by name (error lists the known names)."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {sorted(CATALOGUE)}") from None


def vocab_size_of(cache_root: str) -> int:
    """The vocabulary size recorded by a token cache (``{cache_root}/vocab/vocab.json``)."""
    path = fileio.join(cache_root, VOCAB_DIR, VOCAB_FILE)
    recorded = fileio.read_json_or_none(path)
    if recorded is None:
        raise FileNotFoundError(f"{path}: no vocabulary recorded; is {cache_root} a token cache?")
    size = recorded.get("size")
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"{path}: 'size' must be a positive int, got {size!r}")
    return size

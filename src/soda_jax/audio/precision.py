"""Float32 matmul and convolution precision on accelerators, shared by both codec backends.

A module of its own (no JAX, no torch) so that `soda_jax.audio.codec` and step configs can name a
precision without importing either framework; `soda_jax.audio.mimi_jax.runner` applies it in JAX,
`soda_jax.audio.codec.apply_torch_precision` in torch.
"""

MATMUL_PRECISIONS = ("highest", "high", "default")
"""The settings a codec takes, as JAX's ``default_matmul_precision`` names them: float32 ("highest"),
bf16_3x / TF32 ("high"), the platform's default (one bfloat16 pass on TPU)."""
DEFAULT_MATMUL_PRECISION = "highest"
"""Full float32, as on CPU: the codes of the torch reference (docs/audio.md)."""

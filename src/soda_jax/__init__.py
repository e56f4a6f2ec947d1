"""soda-jax: SODA-style discrete-audio foundation models on JAX (levanter + haliax)."""

__version__ = "0.1.0"

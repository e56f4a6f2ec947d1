"""Mimi's split residual vector quantizer: a semantic RVQ (codebook 0) and an acoustic RVQ (1 ..).

Latents ``[B, T, hidden]`` at 12.5 Hz. Each RVQ projects to the codebook space (1x1, no bias), picks
the nearest centroid by Euclidean distance, subtracts it and repeats on the residual; decoding sums
the chosen centroids and projects back. Centroids are ``embed_sum / max(cluster_usage, 1e-5)``,
computed once at conversion.
"""

from __future__ import annotations

from typing import TypeAlias

import jax
import jax.numpy as jnp
from flax import nnx

from soda_jax.audio.mimi_jax.config import MimiJaxConfig
from soda_jax.audio.mimi_jax.convs import _zeros

Array: TypeAlias = jax.Array


def nearest(x: Array, codebook: Array) -> Array:
    """Index of the nearest centroid: ``x [N, D]``, ``codebook [C, D]`` -> ``[N]`` (first on ties).

    ``|x|^2`` is the same for every centroid, so ``|e|^2 - 2 x.e`` orders them as the distance does.
    """
    scores = jnp.sum(jnp.square(codebook), axis=-1)[None] - 2.0 * (x @ codebook.T)
    return jnp.argmin(scores, axis=-1)


class ResidualVQ(nnx.Module):
    """``codebooks [K, size, dim]``, ``input_proj [hidden, dim]``, ``output_proj [dim, hidden]``."""

    def __init__(self, config: MimiJaxConfig, num_codebooks: int):
        self.codebooks = _zeros(num_codebooks, config.codebook_size, config.codebook_dim)
        self.input_proj = _zeros(config.hidden_size, config.codebook_dim)
        self.output_proj = _zeros(config.codebook_dim, config.hidden_size)

    def encode(self, x: Array, num_codebooks: int) -> Array:
        """``[B, T, hidden]`` -> codes ``[B, num_codebooks, T]`` (int32)."""
        b, t, _ = x.shape
        residual = (x @ self.input_proj[...]).reshape(b * t, -1)
        codes = []
        for k in range(num_codebooks):
            codebook = self.codebooks[k]
            idx = nearest(residual, codebook)
            residual = residual - codebook[idx]
            codes.append(idx.reshape(b, t))
        return jnp.stack(codes, axis=1).astype(jnp.int32)

    def decode(self, codes: Array) -> Array:
        """codes ``[B, K, T]`` -> ``[B, T, hidden]``."""
        summed = sum(self.codebooks[k][codes[:, k]] for k in range(codes.shape[1]))
        return summed @ self.output_proj[...]


class SplitResidualVQ(nnx.Module):
    def __init__(self, config: MimiJaxConfig):
        self.num_semantic = config.num_semantic_quantizers
        self.semantic = ResidualVQ(config, config.num_semantic_quantizers)
        self.acoustic = ResidualVQ(config, config.num_quantizers - config.num_semantic_quantizers)

    def encode(self, x: Array, num_codebooks: int) -> Array:
        """``[B, T, hidden]`` -> ``[B, num_codebooks, T]``; both RVQs quantize the same latents."""
        codes = self.semantic.encode(x, min(num_codebooks, self.num_semantic))
        if num_codebooks > self.num_semantic:
            codes = jnp.concatenate([codes, self.acoustic.encode(x, num_codebooks - self.num_semantic)], axis=1)
        return codes

    def decode(self, codes: Array) -> Array:
        out = self.semantic.decode(codes[:, : self.num_semantic])
        if codes.shape[1] > self.num_semantic:
            out = out + self.acoustic.decode(codes[:, self.num_semantic :])
        return out

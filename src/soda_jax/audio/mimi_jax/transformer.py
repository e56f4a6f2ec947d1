"""Mimi's encoder/decoder transformer: pre-LayerNorm, RoPE, causal, LayerScale, GELU MLP.

Sequences are ``[batch, steps, hidden]`` at 25 Hz. A stream carries, per layer, the keys and values
of the last ``sliding_window - 1`` steps (``[B, S, heads, head_dim]``) and the absolute position of
the next step, as transformers' sliding-window cache does. Within a pass a query sees:

- plain causal mode (``windowed_attention=False``, transformers eager/SDPA): every earlier step of
  the pass and every cached step: one pass over a whole input is plain causal attention;
- windowed mode (moshi, transformers' FlashAttention-2): the steps less than ``sliding_window`` behind
  it, whichever pass they came from: chunked and single passes then agree exactly.
"""

from __future__ import annotations

from typing import TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from soda_jax.audio.mimi_jax.config import MimiJaxConfig
from soda_jax.audio.mimi_jax.convs import _zeros

Array: TypeAlias = jax.Array


class LayerNorm(nnx.Module):
    def __init__(self, dim: int, eps: float):
        self.scale, self.bias, self.eps = _zeros(dim), _zeros(dim), eps

    def __call__(self, x: Array) -> Array:
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


def rope_tables(positions: Array, head_dim: int, theta: float) -> tuple[Array, Array]:
    """cos, sin ``[T, head_dim]`` for absolute ``positions [T]`` (rotate-half layout)."""
    inv_freq = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    freqs = positions.astype(jnp.float32)[:, None] * jnp.asarray(inv_freq, jnp.float32)[None]
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
    """``x [B, T, H, D]``: ``x cos + rotate_half(x) sin``."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, None] + rotated * sin[:, None]


class Attention(nnx.Module):
    def __init__(self, config: MimiJaxConfig):
        d, h, hd = config.hidden_size, config.num_heads, config.head_dim
        self.q, self.k, self.v, self.o = (
            _zeros(d, h * hd),
            _zeros(d, h * hd),
            _zeros(d, h * hd),
            _zeros(h * hd, d),
        )
        self.heads, self.head_dim, self.theta = h, hd, config.rope_theta
        self.window = config.sliding_window if config.windowed_attention else None

    def __call__(self, x: Array, cache: tuple[Array, Array], offset: Array) -> tuple[Array, tuple[Array, Array]]:
        """``x [B, T, D]``; ``cache`` keys/values ``[B, S, H, hd]`` of positions offset-S .. offset-1."""
        b, t, _ = x.shape
        shape = (b, t, self.heads, self.head_dim)
        positions = offset + jnp.arange(t)
        cos, sin = rope_tables(positions, self.head_dim, self.theta)
        q = apply_rope((x @ self.q[...]).reshape(shape), cos, sin)
        k = apply_rope((x @ self.k[...]).reshape(shape), cos, sin)
        v = (x @ self.v[...]).reshape(shape)
        cached_k, cached_v = cache
        s = cached_k.shape[1]
        keys = jnp.concatenate([cached_k, k], axis=1)
        values = jnp.concatenate([cached_v, v], axis=1)
        key_pos = jnp.concatenate([offset - s + jnp.arange(s), positions])
        delta = positions[:, None] - key_pos[None, :]  # [T, S + T]
        allowed = (key_pos[None, :] >= 0) & (delta >= 0)
        if self.window is not None:
            allowed &= delta < self.window
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, keys) / np.sqrt(self.head_dim).astype(np.float32)
        logits = jnp.where(allowed, logits, -jnp.inf)
        probs = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", probs, values).reshape(b, t, -1) @ self.o[...]
        return out, (keys[:, t:], values[:, t:])


class TransformerLayer(nnx.Module):
    def __init__(self, config: MimiJaxConfig):
        d = config.hidden_size
        self.attn_norm, self.mlp_norm = LayerNorm(d, config.norm_eps), LayerNorm(d, config.norm_eps)
        self.attn = Attention(config)
        self.fc1, self.fc2 = _zeros(d, config.intermediate_size), _zeros(config.intermediate_size, d)
        self.attn_scale, self.mlp_scale = _zeros(d), _zeros(d)

    def __call__(self, x: Array, cache: tuple[Array, Array], offset: Array) -> tuple[Array, tuple[Array, Array]]:
        h, cache = self.attn(self.attn_norm(x), cache, offset)
        x = x + self.attn_scale[...] * h
        h = jax.nn.gelu(self.mlp_norm(x) @ self.fc1[...], approximate=False) @ self.fc2[...]
        return x + self.mlp_scale[...] * h, cache


class Transformer(nnx.Module):
    """``[B, T, hidden] -> [B, T, hidden]``, carrying a KV cache between passes of a stream."""

    def __init__(self, config: MimiJaxConfig):
        self.layers = nnx.List([TransformerLayer(config) for _ in range(config.num_layers)])
        self.cache_steps = config.sliding_window - 1
        self.kv_shape = (config.num_heads, config.head_dim)

    def initial_cache(self, batch: int, steps: int | None = None) -> list[tuple[Array, Array]]:
        """Empty past of ``steps`` (default: a stream's ``sliding_window - 1``), all masked out."""
        steps = self.cache_steps if steps is None else steps
        zeros = jnp.zeros((batch, steps, *self.kv_shape), jnp.float32)
        return [(zeros, zeros) for _ in self.layers]

    def __call__(self, x: Array, caches: list[tuple[Array, Array]], offset: Array):
        new = []
        for layer, cache in zip(self.layers, caches):
            x, cache = layer(x, cache, offset)
            new.append(cache)
        return x, new

"""The levanter Qwen3 forward with a dense KV cache (haliax named axes, so it shards like training).

The cache of each layer holds keys and values ``[batch, kv_head, key_position, head_size]`` (with a
leading ``layer`` axis when the layers are stacked, scanned like training scans them) for
every column of the bucket (prompt columns, then one per generated token). Prompts are left-padded
so that every sequence's next token goes to the same column: column ``c`` of sequence ``b`` is
position ``c - pad[b]`` (rotary), and columns before ``pad[b]`` are masked out as keys.

Only levanter's modules' public parts are used (projections, norms, rotary embeddings, MLP, LM head),
in the order of ``LlamaDecoderLayer.__call__``; tests check the logits against the model's own full
forward at every step (tests/test_inference_engine.py).
"""

from __future__ import annotations

import math

import equinox as eqx
import haliax as hax
import haliax.nn as hnn
import jax
import jax.numpy as jnp
from haliax import Axis, NamedArray

BATCH = "batch"
POSITION = "position"
KEY_POSITION = "key_position"
CHUNK_KEY = "chunk_key"
"""The key axis of a chunk's own keys (its queries' position axis, renamed)."""
MASKED = -1e9
"""Score of a masked key (finite: a pad query with no valid key gives a uniform row, not NaN)."""


class LayerCache(eqx.Module):
    """Keys and values of one layer: ``[batch, kv_head, key_position, head_size]``."""

    k: NamedArray
    v: NamedArray


def is_scanned(model) -> bool:
    """Whether the layers are stacked (``scan_layers``): then one compiled layer is scanned over them."""
    return isinstance(model.transformer.layers, hnn.Stacked)


def empty_cache(model, batch: int, columns: int, dtype=jnp.float32) -> LayerCache | list[LayerCache]:
    """Zero caches: one `LayerCache` with a leading ``layer`` axis for a scanned model, else one per layer."""
    attn = model.transformer.config.attention_config()
    axes: tuple[Axis, ...] = (Axis(BATCH, batch), attn.KVHeads, Axis(KEY_POSITION, columns), attn.HeadSize)
    if is_scanned(model):
        axes = (model.transformer.layers.Block, *axes)
        return LayerCache(hax.shard(hax.zeros(axes, dtype=dtype)), hax.shard(hax.zeros(axes, dtype=dtype)))
    return [
        LayerCache(hax.shard(hax.zeros(axes, dtype=dtype)), hax.shard(hax.zeros(axes, dtype=dtype)))
        for _ in range(model.transformer.config.num_layers)
    ]


def grow_cache(caches, columns: int):
    """The caches with their ``key_position`` axis padded (zeros, at the end) to ``columns``."""

    def grow(store: NamedArray) -> NamedArray:
        index = store.axes.index(store.resolve_axis(KEY_POSITION))
        widths = [(0, 0)] * store.ndim
        widths[index] = (0, columns - store.axes[index].size)
        axes = tuple(Axis(KEY_POSITION, columns) if i == index else a for i, a in enumerate(store.axes))
        return hax.shard(hax.named(jnp.pad(store.array, widths), axes))

    if isinstance(caches, LayerCache):
        return LayerCache(grow(caches.k), grow(caches.v))
    return [LayerCache(grow(c.k), grow(c.v)) for c in caches]


def _attention(layer, x: NamedArray, positions: NamedArray, cache: LayerCache, start, key_valid: NamedArray):
    """Self-attention of the chunk ``x`` [batch, position, embed] written at columns ``start..``.

    The chunk attends to the cache's columns before ``start`` and to its own keys (causally), one
    softmax over both; it never reads back the columns it writes, so the write is the cache's only
    use after it and XLA updates the cache in place (a read of the updated cache made it copy every
    layer's cache at every step). A chunk at the static column 0 (the prefill) reads no cache."""
    attn = layer.self_attn
    q = attn.q_proj(x)
    k = attn.k_proj(x)
    v = attn.v_proj(x)
    if attn.q_norm is not None:
        q = attn.q_norm(q)
        k = attn.k_norm(k)
    if attn.rot_embs is not None:
        q = attn.rot_embs(q, positions).astype(q.dtype)
        k = attn.rot_embs(k, positions).astype(k.dtype)

    def write(store: NamedArray, new: NamedArray) -> NamedArray:
        new = new.rearrange((BATCH, "kv_head", POSITION, "head_size")).astype(store.dtype).array
        return hax.named(jax.lax.dynamic_update_slice(store.array, new, (0, 0, start, 0)), store.axes)

    head_size = attn.config.HeadSize.size
    scale = attn.config.scaling_factor if attn.config.scaling_factor is not None else 1.0 / math.sqrt(head_size)
    q = q.astype(jnp.float32) * scale
    Pos = x.resolve_axis(POSITION)
    Chunk = Axis(CHUNK_KEY, Pos.size)
    valid = key_valid.rearrange((BATCH, KEY_POSITION))
    chunk_valid = hax.named(jax.lax.dynamic_slice_in_dim(valid.array, start, Pos.size, axis=1), (valid.axes[0], Chunk))
    own = (hax.arange(Chunk).broadcast_axis(Pos) <= hax.arange(Pos)).broadcast_axis(valid.axes[0]) & chunk_valid
    parts = [
        (
            hax.where(own, hax.dot(q, k.rename({POSITION: CHUNK_KEY}).astype(jnp.float32), axis="head_size"), MASKED),
            v.rename({POSITION: CHUNK_KEY}).astype(jnp.float32),
            CHUNK_KEY,
        )
    ]
    if not (isinstance(start, int) and start == 0):
        before = (hax.arange(cache.k.resolve_axis(KEY_POSITION)) < start).broadcast_axis(valid.axes[0]) & valid
        scores = hax.dot(q, cache.k.astype(jnp.float32), axis="head_size")
        parts.append((hax.where(before, scores, MASKED), cache.v.astype(jnp.float32), KEY_POSITION))
    top = parts[0][0].max(CHUNK_KEY)
    for scores, _, axis in parts[1:]:
        top = hax.maximum(top, scores.max(axis))
    weights = [(hax.exp(scores - top), values, axis) for scores, values, axis in parts]
    total = sum((w.sum(axis) for w, _, axis in weights[1:]), weights[0][0].sum(weights[0][2]))
    out = sum(
        (hax.dot(w, values, axis=axis) for w, values, axis in weights[1:]),
        hax.dot(weights[0][0], weights[0][1], axis=weights[0][2]),
    )
    out = (out / total).astype(x.dtype).flatten_axes(("kv_head", "q_heads_per_group"), "heads")
    cache = LayerCache(hax.shard(write(cache.k, k)), hax.shard(write(cache.v, v)))
    return attn.o_proj(out), cache


def forward(model, tokens: NamedArray, positions: NamedArray, caches, start, key_valid: NamedArray):
    """Logits ``[batch, position, vocab]`` of the chunk ``tokens`` [batch, position] at cache
    columns ``start .. start + len``, and the updated caches.

    ``key_valid`` [batch, key_position]: columns holding real tokens (pads are False). A query at
    column ``start + p`` sees the valid columns up to itself.
    """

    def block(x, layer, cache):
        attn_out, cache = _attention(layer, layer.input_layernorm(x), positions, cache, start, key_valid)
        if layer.post_attn_layernorm is not None:
            attn_out = layer.post_attn_layernorm(attn_out)
        x = x + attn_out
        mlp_out = layer.mlp(layer.post_attention_layernorm(x))
        if layer.post_mlp_layernorm is not None:
            mlp_out = layer.post_mlp_layernorm(mlp_out)
        return hax.shard(x + mlp_out), cache

    x = model.embeddings.embed(tokens)
    layers = model.transformer.layers
    if is_scanned(model):  # one compiled layer, scanned over the stacked weights and caches
        x, updated = hax.scan(block, layers.Block)(x, layers.stacked, caches)
    else:
        updated = []
        for layer, cache in zip(layers.unstacked(), caches):
            x, cache = block(x, layer, cache)
            updated.append(cache)
    x = model.transformer.norm(x)
    logits = model.lm_head(x) if model.lm_head is not None else model.embeddings.unembed(x)
    return logits, updated

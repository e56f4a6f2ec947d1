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


def _attention(layer, x: NamedArray, positions: NamedArray, cache: LayerCache, start, key_mask: NamedArray):
    """Self-attention of the chunk ``x`` [batch, position, embed] written at columns ``start..``."""
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

    cache = LayerCache(hax.shard(write(cache.k, k)), hax.shard(write(cache.v, v)))
    head_size = attn.config.HeadSize.size
    scale = attn.config.scaling_factor if attn.config.scaling_factor is not None else 1.0 / math.sqrt(head_size)
    scores = hax.dot(q.astype(jnp.float32), cache.k.astype(jnp.float32), axis="head_size") * scale
    scores = hax.where(key_mask, scores, MASKED)
    probs = hax.nn.softmax(scores, axis=KEY_POSITION)
    out = hax.dot(probs, cache.v.astype(jnp.float32), axis=KEY_POSITION).astype(x.dtype)
    out = out.flatten_axes(("kv_head", "q_heads_per_group"), "heads")
    return attn.o_proj(out), cache


def forward(model, tokens: NamedArray, positions: NamedArray, caches, start, key_valid: NamedArray):
    """Logits ``[batch, position, vocab]`` of the chunk ``tokens`` [batch, position] at cache
    columns ``start .. start + len``, and the updated caches.

    ``key_valid`` [batch, key_position]: columns holding real tokens (pads are False). A query at
    column ``start + p`` sees the valid columns up to itself.
    """
    Pos = tokens.resolve_axis(POSITION)
    columns = (caches if isinstance(caches, LayerCache) else caches[0]).k.resolve_axis(KEY_POSITION)
    query_column = hax.arange(Pos) + start
    causal = hax.arange(columns).broadcast_axis(Pos) <= query_column
    key_mask = causal.broadcast_axis(key_valid.resolve_axis(BATCH)) & key_valid

    def block(x, layer, cache):
        attn_out, cache = _attention(layer, layer.input_layernorm(x), positions, cache, start, key_mask)
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

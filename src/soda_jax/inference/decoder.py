"""The levanter Qwen3 forward with a dense KV cache (haliax named axes, so it shards like training).

The cache of each layer holds keys ``[batch, kv_head, key_position, head_size]`` and values
``[batch, kv_head, head_size, key_position]`` (with a leading ``layer`` axis when the layers are
stacked, scanned like training scans them) for every column of the bucket (prompt columns, then
one per generated token). Prompts are left-padded so that every sequence's next token goes to the
same column: column ``c`` of sequence ``b`` is position ``c - pad[b]`` (rotary), and columns before
``pad[b]`` are masked out as keys.

Only levanter's modules' public parts are used (projection weights, norms, rotary embeddings, the
MLP's activation, LM head), in the order of ``LlamaDecoderLayer.__call__``; tests check the logits
against the model's own full forward at every step (tests/test_inference_engine.py).

The projections run on `DecodeWeights`: each layer's matrices as plain ``[in, out]`` arrays (q, k
and v side by side, the MLP's gate and up side by side), made once per model. Called
through levanter's ``Linear`` modules (weights ``[out..., in]``), XLA's CPU backend transposed the
q, k, v and output projections' weights into a new buffer at every step of the loop (seen in the
optimised HLO and the profile of the loop); with the ``[in, out]`` copy a step reads each weight
once.

Values are stored with the key position minor because that is the layout XLA's CPU backend multiplies
the attention weights by: with values ``[..., key_position, head_size]`` it transposed every layer's
value cache into a new buffer at every step (9.5 ms per token at 4,096 columns, BENCH_20M, batch 1,
against 6.0 ms with the values stored transposed, the write ordering below included).
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


PREFILL_QUERY_BLOCK = 128
"""Queries per block of a long prefill's attention (`_prefill_attention`): a block's f32 scores
(heads x 128 x keys: 9 MB for BENCH_20M's 6 heads at 3,072 keys) stay near the cache; with blocks of
512, a 3,072-token BENCH_20M prefill took 3.2 s against 2.3 s (33% against 46% of the matmul peak)."""
PREFILL_BLOCKED_ABOVE = 512
"""A prefill of more tokens than this attends in query blocks; a shorter one in one block (its whole
score matrix, 6 MB for 6 heads at 512, is small, and a 384-token prefill ran faster so: 139 against
178 ms with blocks of 128)."""
MATRIX_IN = "matrix_in"
"""The input axis of a `DecodeWeights` matrix (a projection's input axes, flattened)."""
MATRIX_OUT = "matrix_out"
"""The output axis of a `DecodeWeights` matrix (one or more projections' output axes, flattened)."""


class LayerWeights(eqx.Module):
    """One layer's projections as ``[matrix_in, matrix_out]`` matrices (a leading ``layer`` axis when
    the layers are stacked), each with its bias or None."""

    qkv: NamedArray
    """q, k and v projections side by side: output columns ``q | k | v``."""
    qkv_bias: NamedArray | None
    o: NamedArray
    o_bias: NamedArray | None
    gate_up: NamedArray
    """The MLP's gate and up projections side by side: output columns ``gate | up``."""
    gate_up_bias: NamedArray | None
    down: NamedArray
    down_bias: NamedArray | None


class DecodeWeights(eqx.Module):
    """The matrices the decode step multiplies by, in ``[in, out]`` layout (`decode_weights`)."""

    layers: LayerWeights | list[LayerWeights]
    lm_head: NamedArray | None
    """``[embed, vocab]``; None when the model unembeds with its tied embedding table."""
    lm_head_bias: NamedArray | None


def _axes(spec) -> tuple[Axis, ...]:
    return tuple(spec) if isinstance(spec, (tuple, list)) else (spec,)


def _matrices(linears, lead: tuple[Axis, ...]) -> tuple[NamedArray, NamedArray | None]:
    """The projections ``linears`` (sharing their input axes) as one ``[*lead, in, out]`` matrix,
    output columns in the order given, and their biases ``[*lead, out]`` (None when none has one)."""
    In = _axes(linears[0].In)
    fan_in = math.prod(a.size for a in In)
    columns, biases = [], []
    for linear in linears:
        Out = _axes(linear.Out)
        weight = (linear.weight * linear.reparam.active_scale).rearrange((*lead, *In, *Out)).array
        columns.append(weight.reshape(*weight.shape[: len(lead)], fan_in, -1))
        out = columns[-1].shape[-1]
        bias = linear.bias
        biases.append(
            None if bias is None else bias.rearrange((*lead, *Out)).array.reshape(*columns[-1].shape[: len(lead)], out)
        )
    matrix = jnp.concatenate(columns, axis=-1)
    axes = (*lead, Axis(MATRIX_IN, fan_in), Axis(MATRIX_OUT, matrix.shape[-1]))
    bias = None
    if any(b is not None for b in biases):
        bias = jnp.concatenate(
            [
                b if b is not None else jnp.zeros(c.shape[: len(lead)] + c.shape[-1:], c.dtype)
                for b, c in zip(biases, columns)
            ],
            axis=-1,
        )
        bias = hax.named(bias, (*lead, axes[-1]))
    return hax.named(matrix, axes), bias


def _layer_weights(layer, lead: tuple[Axis, ...]) -> LayerWeights:
    attn, mlp = layer.self_attn, layer.mlp
    qkv, qkv_bias = _matrices([attn.q_proj, attn.k_proj, attn.v_proj], lead)
    o, o_bias = _matrices([attn.o_proj], lead)
    gate_up, gate_up_bias = _matrices([mlp.gate_proj, mlp.up_proj], lead)
    down, down_bias = _matrices([mlp.down_proj], lead)
    return LayerWeights(qkv, qkv_bias, o, o_bias, gate_up, gate_up_bias, down, down_bias)


def decode_weights(model) -> DecodeWeights:
    """``model``'s projection and LM-head weights as ``[in, out]`` matrices: a second copy of them,
    made once per model (`LoadedModel.decode_weights`; see the module's docstring)."""
    layers = model.transformer.layers
    if is_scanned(model):
        prepared: LayerWeights | list[LayerWeights] = _layer_weights(layers.stacked, (layers.Block,))
    else:
        prepared = [_layer_weights(layer, ()) for layer in layers.unstacked()]
    lm_head, lm_head_bias = (None, None) if model.lm_head is None else _matrices([model.lm_head], ())
    return DecodeWeights(prepared, lm_head, lm_head_bias)


def _project(x: NamedArray, linear, matrix: NamedArray, bias: NamedArray | None) -> NamedArray:
    """``linear`` applied to ``x`` [batch, position, in...] by its `decode_weights` ``matrix`` (+ ``bias``):
    [batch, position, matrix_out], the output axes flattened."""
    lead = (x.resolve_axis(BATCH), x.resolve_axis(POSITION))
    flat = x.rearrange((*lead, *_axes(linear.In))).array.reshape(lead[0].size, lead[1].size, -1)
    y = jnp.matmul(flat, matrix.array.astype(flat.dtype))
    if bias is not None:
        y = y + bias.array.astype(y.dtype)
    return hax.named(y, (*lead, matrix.resolve_axis(MATRIX_OUT)))


def _unflatten(y: NamedArray, linears) -> list[NamedArray]:
    """The output columns of `_project` split back into each of ``linears``' output axes."""
    lead = y.axes[:2]
    parts, split = [], 0
    for linear in linears:
        Out = _axes(linear.Out)
        width = math.prod(a.size for a in Out)
        part = y.array[..., split : split + width].reshape(*(a.size for a in lead), *(a.size for a in Out))
        parts.append(hax.named(part, (*lead, *Out)))
        split += width
    return parts


class LayerCache(eqx.Module):
    """Keys and values of one layer (`empty_cache` makes them)."""

    k: NamedArray
    """``[batch, kv_head, key_position, head_size]``"""
    v: NamedArray
    """``[batch, kv_head, head_size, key_position]``: the key position minor (see the module's docstring)."""


def is_scanned(model) -> bool:
    """Whether the layers are stacked (``scan_layers``): then one compiled layer is scanned over them."""
    return isinstance(model.transformer.layers, hnn.Stacked)


def empty_cache(model, batch: int, columns: int, dtype=jnp.float32) -> LayerCache | list[LayerCache]:
    """Zero caches: one `LayerCache` with a leading ``layer`` axis for a scanned model, else one per layer."""
    attn = model.transformer.config.attention_config()
    Keys = Axis(KEY_POSITION, columns)
    k_axes: tuple[Axis, ...] = (Axis(BATCH, batch), attn.KVHeads, Keys, attn.HeadSize)
    v_axes: tuple[Axis, ...] = (Axis(BATCH, batch), attn.KVHeads, attn.HeadSize, Keys)
    if is_scanned(model):
        k_axes, v_axes = (model.transformer.layers.Block, *k_axes), (model.transformer.layers.Block, *v_axes)

    def layer() -> LayerCache:
        return LayerCache(hax.shard(hax.zeros(k_axes, dtype=dtype)), hax.shard(hax.zeros(v_axes, dtype=dtype)))

    return layer() if is_scanned(model) else [layer() for _ in range(model.transformer.config.num_layers)]


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


def _prefill_attention(q: NamedArray, k: NamedArray, v: NamedArray, valid: NamedArray) -> NamedArray:
    """Causal self-attention of a prefill (a chunk at column 0, reading no cache) in blocks of
    `PREFILL_QUERY_BLOCK` queries: a block's queries attend to the keys up to the block's last
    one only, so the scores are never the whole [position, position] matrix per head and the
    blocks above the diagonal are never computed. Each query's softmax is over the same keys as
    the whole matrix's row (the later ones are masked there). ``valid`` [batch, key_position]."""
    Pos = q.resolve_axis(POSITION)
    outs = []
    for lo in range(0, Pos.size, PREFILL_QUERY_BLOCK):
        hi = min(lo + PREFILL_QUERY_BLOCK, Pos.size)
        Query, Keys = Axis(POSITION, hi - lo), Axis(CHUNK_KEY, hi)
        causal = hax.arange(Keys).broadcast_axis(Query) <= hax.arange(Query) + lo
        mask = causal.broadcast_axis(valid.axes[0]) & hax.named(valid.array[:, :hi], (valid.axes[0], Keys))
        keys = k.rename({POSITION: CHUNK_KEY})[CHUNK_KEY, 0:hi]
        values = v.rename({POSITION: CHUNK_KEY})[CHUNK_KEY, 0:hi]
        queries = q[POSITION, lo:hi]
        scores = hax.where(mask, hax.dot(queries, keys, axis="head_size"), MASKED)
        weights = hax.exp(scores - scores.max(CHUNK_KEY))
        outs.append(hax.dot(weights, values, axis=CHUNK_KEY) / weights.sum(CHUNK_KEY))
    return hax.concatenate(POSITION, outs)


def _attention(
    layer,
    matrices: LayerWeights | None,
    x: NamedArray,
    positions: NamedArray,
    cache: LayerCache,
    start,
    key_valid: NamedArray,
    layer_index=None,
):
    """Self-attention of the chunk ``x`` [batch, position, embed] written at columns ``start..``.

    ``cache``: this layer's, or, with ``layer_index`` (a traced index into the ``layer`` axis), the
    stacked caches of all layers, read and written at that layer (a scanned model: writing into the
    stacked caches carried by the scan keeps them in place; a scan emitting each layer's updated cache
    rebuilt and copied the whole stacked cache at every step).

    The chunk attends to the cache's columns before ``start`` and to its own keys (causally), one
    softmax over both; it never reads back the columns it writes, so the write is the cache's only
    use after it and XLA updates the cache in place (a read of the updated cache made it copy every
    layer's cache at every step). A chunk at the static column 0 (the prefill) reads no cache."""
    attn = layer.self_attn
    if matrices is None:
        q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    else:
        q, k, v = _unflatten(
            _project(x, attn.q_proj, matrices.qkv, matrices.qkv_bias), (attn.q_proj, attn.k_proj, attn.v_proj)
        )
    if attn.q_norm is not None:
        q = attn.q_norm(q)
        k = attn.k_norm(k)
    if attn.rot_embs is not None:
        q = attn.rot_embs(q, positions).astype(q.dtype)
        k = attn.rot_embs(k, positions).astype(k.dtype)

    stored, Layer = cache, None
    if layer_index is not None:  # the stacked caches: read and write this layer's slot
        Layer = cache.k.axes[0]
        cache = LayerCache(cache.k[Layer, layer_index], cache.v[Layer, layer_index])

    def write(store: NamedArray, new: NamedArray) -> NamedArray:
        if Layer is not None:
            new = new.broadcast_axis(Layer.resize(1))
        order = tuple(POSITION if a.name == KEY_POSITION else a.name for a in store.axes)
        index = tuple(start if a.name == KEY_POSITION else layer_index if a == Layer else 0 for a in store.axes)
        new = new.rearrange(order).astype(store.dtype).array
        return hax.named(jax.lax.dynamic_update_slice(store.array, new, index), store.axes)

    head_size = attn.config.HeadSize.size
    scale = attn.config.scaling_factor if attn.config.scaling_factor is not None else 1.0 / math.sqrt(head_size)
    q = q.astype(jnp.float32) * scale
    Pos = x.resolve_axis(POSITION)
    valid = key_valid.rearrange((BATCH, KEY_POSITION))
    if isinstance(start, int) and start == 0 and Pos.size > PREFILL_BLOCKED_ABOVE:
        out = _prefill_attention(q, k.astype(jnp.float32), v.astype(jnp.float32), valid)
    else:
        Chunk = Axis(CHUNK_KEY, Pos.size)
        chunk_valid = hax.named(
            jax.lax.dynamic_slice_in_dim(valid.array, start, Pos.size, axis=1), (valid.axes[0], Chunk)
        )
        own = (hax.arange(Chunk).broadcast_axis(Pos) <= hax.arange(Pos)).broadcast_axis(valid.axes[0]) & chunk_valid
        parts = [
            (
                hax.where(
                    own, hax.dot(q, k.rename({POSITION: CHUNK_KEY}).astype(jnp.float32), axis="head_size"), MASKED
                ),
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
        out = out / total
    out = out.astype(x.dtype).flatten_axes(("kv_head", "q_heads_per_group"), "heads")
    if matrices is None:
        out = attn.o_proj(out)
    else:
        (out,) = _unflatten(_project(out, attn.o_proj, matrices.o, matrices.o_bias), (attn.o_proj,))
    # The new keys and values are written after every read of the old cache: they carry a zero that
    # depends on the attention's output (x * 0 is not folded for floats), so XLA orders the reads
    # before the write and updates the cache in place. Without it, the scheduler moved a read after
    # the write and the decode loop copied every layer's cache twice per step (8.2 against 6.0 ms
    # per token at 4,096 columns). An optimisation barrier did not hold: XLA's CPU pipeline drops it.
    after_reads = 0.0 * out.array.ravel()[0]
    cache = LayerCache(hax.shard(write(stored.k, k + after_reads)), hax.shard(write(stored.v, v + after_reads)))
    return out, cache


def _mlp(mlp, matrices: LayerWeights | None, x: NamedArray) -> NamedArray:
    """``LlamaMlp``: down(act(gate(x)) * up(x)), on the side-by-side gate and up matrix (``mlp``
    itself when ``matrices`` is None)."""
    if matrices is None:
        return mlp(x)
    gate, up = _unflatten(
        _project(x, mlp.gate_proj, matrices.gate_up, matrices.gate_up_bias), (mlp.gate_proj, mlp.up_proj)
    )
    (out,) = _unflatten(
        _project(mlp.act(gate) * up, mlp.down_proj, matrices.down, matrices.down_bias), (mlp.down_proj,)
    )
    return out


def forward(
    model,
    tokens: NamedArray,
    positions: NamedArray,
    caches,
    start,
    key_valid: NamedArray,
    weights: DecodeWeights | None = None,
):
    """Logits ``[batch, position, vocab]`` of the chunk ``tokens`` [batch, position] at cache
    columns ``start .. start + len``, and the updated caches.

    ``key_valid`` [batch, key_position]: columns holding real tokens (pads are False). A query at
    column ``start + p`` sees the valid columns up to itself. ``weights``: `decode_weights` of
    ``model``, made once per model (`LoadedModel.decode_weights`), for the prefill and every step;
    None runs levanter's modules themselves (the AOT decode step, `soda_jax.aot.decode_step`).
    """

    def block(x, layer_and_weights, cache, layer_index=None):
        layer, prepared = layer_and_weights
        attn_out, cache = _attention(
            layer, prepared, layer.input_layernorm(x), positions, cache, start, key_valid, layer_index
        )
        if layer.post_attn_layernorm is not None:
            attn_out = layer.post_attn_layernorm(attn_out)
        x = x + attn_out
        mlp_out = _mlp(layer.mlp, prepared, layer.post_attention_layernorm(x))
        if layer.post_mlp_layernorm is not None:
            mlp_out = layer.post_mlp_layernorm(mlp_out)
        return hax.shard(x + mlp_out), cache

    x = model.embeddings.embed(tokens)
    layers = model.transformer.layers
    if is_scanned(model):  # one compiled layer, scanned over the stacked weights; the caches are carried

        def scanned_block(carry, layer_and_weights, index):
            x, caches = carry
            x, caches = block(x, layer_and_weights, caches, index.array)
            return (x, caches), None

        (x, updated), _ = hax.scan(scanned_block, layers.Block)(
            (x, caches), (layers.stacked, None if weights is None else weights.layers), hax.arange(layers.Block)
        )
    else:
        updated = []
        per_layer = [None] * len(caches) if weights is None else weights.layers
        for layer, prepared, cache in zip(layers.unstacked(), per_layer, caches):
            x, cache = block(x, (layer, prepared), cache)
            updated.append(cache)
    x = model.transformer.norm(x)
    if weights is None or weights.lm_head is None:
        return (model.lm_head(x) if model.lm_head is not None else model.embeddings.unembed(x)), updated
    (logits,) = _unflatten(_project(x, model.lm_head, weights.lm_head, weights.lm_head_bias), (model.lm_head,))
    return logits, updated

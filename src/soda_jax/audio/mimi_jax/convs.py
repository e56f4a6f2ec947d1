"""Mimi's causal convolutions and SEANet encoder/decoder, channels-last: ``[batch, time, channels]``.

Every convolution is causal: it sees ``pad = (kernel - 1) * dilation + 1 - stride`` samples of the
past, which a single pass fills with zeros and a stream fills with the previous chunk's tail (the
conv's *cache*, ``[batch, pad, in]``). Inputs are whole code frames, so no extra right padding is ever
needed. The strided convolutions have ``kernel = 2 * stride`` and run as one matmul over blocks of
``stride`` samples (block j sees blocks j - 1 and j), and the transposed convolutions as one matmul
whose two output blocks overlap-add, trimmed right by ``stride`` as transformers does: plain GEMMs,
fast on CPU and TPU alike.
"""

from __future__ import annotations

from typing import TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from soda_jax.audio.mimi_jax.config import MimiJaxConfig

Array: TypeAlias = jax.Array


def _zeros(*shape: int) -> nnx.Param:
    # Weights always come from a converted checkpoint; zeros keep construction cheap and deterministic.
    return nnx.Param(np.zeros(shape, np.float32))


class CausalConv(nnx.Module):
    """Causal Conv1d ``[B, T, in] -> [B, T / stride, out]``; stride 1, or stride s with kernel 2s.

    Weights: ``kernel [K, in, out]`` for stride 1 (WIO), ``[2, s * in, out]`` for stride s (blocks).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, bias: bool = True):
        if stride > 1 and (kernel != 2 * stride or dilation != 1):
            raise ValueError(f"strided conv needs kernel = 2 x stride, got kernel {kernel}, stride {stride}")
        self.cin, self.cout, self.stride, self.dilation = cin, cout, stride, dilation
        self.kernel_size = kernel
        self.pad = (kernel - 1) * dilation + 1 - stride
        self.kernel = _zeros(2, stride * cin, cout) if stride > 1 else _zeros(kernel, cin, cout)
        self.bias = _zeros(cout) if bias else None

    def initial_cache(self, batch: int) -> Array:
        """Zero past: what a single pass pads with (``[B, pad, in]``)."""
        return jnp.zeros((batch, self.pad, self.cin), jnp.float32)

    def __call__(self, x: Array, cache: Array) -> tuple[Array, Array]:
        """``x [B, T, in]``, ``cache [B, pad, in]`` -> ``y [B, T / stride, out]``, next cache."""
        full = jnp.concatenate([cache, x], axis=1)
        next_cache = full[:, full.shape[1] - self.pad :]
        w = self.kernel[...]
        if self.stride > 1:
            b, t, c = full.shape
            blocks = full.reshape(b, t // self.stride, self.stride * c)  # first block = the cache
            pairs = jnp.concatenate([blocks[:, :-1], blocks[:, 1:]], axis=-1)
            y = pairs @ w.reshape(2 * self.stride * c, self.cout)
        elif self.kernel_size == 1:
            y = full @ w[0]
        else:
            y = jax.lax.conv_general_dilated(
                full, w, (1,), "VALID", rhs_dilation=(self.dilation,), dimension_numbers=("NWC", "WIO", "NWC")
            )
        if self.bias is not None:
            y = y + self.bias[...]
        return y, next_cache


class CausalConvTranspose(nnx.Module):
    """ConvTranspose1d with kernel 2s, stride s, trimmed right by s: ``[B, T, in] -> [B, T * s, out]``.

    Weights ``kernel [in, 2, s, out]``, or ``[2, s, channels]`` when depthwise (groups = channels).
    Output block t is ``x[t] W[0] + x[t - 1] W[1]``.
    """

    def __init__(self, cin: int, cout: int, stride: int, bias: bool = True, depthwise: bool = False):
        if depthwise and cin != cout:
            raise ValueError("a depthwise transposed conv keeps its channel count")
        self.cin, self.cout, self.stride, self.depthwise = cin, cout, stride, depthwise
        self.kernel = _zeros(2, stride, cin) if depthwise else _zeros(cin, 2, stride, cout)
        self.bias = _zeros(cout) if bias else None

    def __call__(self, x: Array) -> Array:
        b, t, _ = x.shape
        w = self.kernel[...]
        if self.depthwise:
            z = x[:, :, None, None, :] * w  # [B, T, 2, s, C]
        else:
            z = jnp.einsum("btc,cksd->btksd", x, w)
        late = jnp.pad(z[:, :-1, 1], ((0, 0), (1, 0), (0, 0), (0, 0)))  # x[t - 1]'s second block
        y = (z[:, :, 0] + late).reshape(b, t * self.stride, self.cout)
        if self.bias is not None:
            y = y + self.bias[...]
        return y


class ResidualBlock(nnx.Module):
    """SEANet residual block ``x + conv1x1(elu(conv_k(elu(x))))`` with an identity shortcut."""

    def __init__(self, dim: int, hidden: int, kernel: int, dilation: int):
        self.conv1 = CausalConv(dim, hidden, kernel, dilation=dilation)
        self.conv2 = CausalConv(hidden, dim, 1)

    def convs(self) -> list[CausalConv]:
        return [self.conv1, self.conv2]

    def __call__(self, x: Array, caches: list[Array]) -> tuple[Array, list[Array]]:
        h, c1 = self.conv1(jax.nn.elu(x), caches[0])
        h, c2 = self.conv2(jax.nn.elu(h), caches[1])
        return x + h, [c1, c2]


class SeanetEncoder(nnx.Module):
    """Waveform ``[B, T, 1]`` -> latents ``[B, T / hop, hidden]`` (hop 960: 25 Hz at 24 kHz)."""

    def __init__(self, config: MimiJaxConfig):
        c = config
        self.first = CausalConv(1, c.num_filters, c.kernel_size)
        stages, width = [], c.num_filters
        for ratio in reversed(c.ratios):
            blocks = nnx.List(
                [
                    ResidualBlock(width, width // c.compress, c.residual_kernel_size, c.dilation_growth_rate**j)
                    for j in range(c.num_residual_layers)
                ]
            )
            stages.append(nnx.List([blocks, CausalConv(width, 2 * width, 2 * ratio, stride=ratio)]))
            width *= 2
        self.stages = nnx.List(stages)
        self.last = CausalConv(width, c.hidden_size, c.last_kernel_size)

    def convs(self) -> list[CausalConv]:
        """Every convolution in order (the order of the stream's caches)."""
        out = [self.first]
        for blocks, down in self.stages:
            for block in blocks:
                out += block.convs()
            out.append(down)
        return [*out, self.last]

    def initial_caches(self, batch: int) -> list[Array]:
        return [conv.initial_cache(batch) for conv in self.convs()]

    def __call__(self, x: Array, caches: list[Array]) -> tuple[Array, list[Array]]:
        caches = list(caches)
        new: list[Array] = []
        h, c = self.first(x, caches.pop(0))
        new.append(c)
        for blocks, down in self.stages:
            for block in blocks:
                h, cs = block(h, [caches.pop(0), caches.pop(0)])
                new += cs
            h, c = down(jax.nn.elu(h), caches.pop(0))
            new.append(c)
        h, c = self.last(jax.nn.elu(h), caches.pop(0))
        new.append(c)
        return h, new


class SeanetDecoder(nnx.Module):
    """Latents ``[B, T, hidden]`` -> waveform ``[B, T * hop, 1]`` (one pass, zero past)."""

    def __init__(self, config: MimiJaxConfig):
        c = config
        width = c.num_filters * 2 ** len(c.ratios)
        self.first = CausalConv(c.hidden_size, width, c.kernel_size)
        stages = []
        for ratio in c.ratios:
            up = CausalConvTranspose(width, width // 2, ratio)
            width //= 2
            blocks = nnx.List(
                [
                    ResidualBlock(width, width // c.compress, c.residual_kernel_size, c.dilation_growth_rate**j)
                    for j in range(c.num_residual_layers)
                ]
            )
            stages.append(nnx.List([up, blocks]))
        self.stages = nnx.List(stages)
        self.last = CausalConv(width, 1, c.last_kernel_size)

    def __call__(self, x: Array) -> Array:
        batch = x.shape[0]
        h, _ = self.first(x, self.first.initial_cache(batch))
        for up, blocks in self.stages:
            h = up(jax.nn.elu(h))
            for block in blocks:
                h, _ = block(h, [conv.initial_cache(batch) for conv in block.convs()])
        y, _ = self.last(jax.nn.elu(h), self.last.initial_cache(batch))
        return y

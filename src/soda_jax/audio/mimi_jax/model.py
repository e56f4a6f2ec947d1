"""The whole Mimi: waveform -> codes (streamable) and codes -> waveform.

Encoding: SEANet encoder (24 kHz -> 25 Hz latents) -> transformer -> stride-2 downsample (12.5 Hz,
replicate-padded: its first chunk's past is its first step repeated) -> split RVQ. Decoding: split
RVQ sums -> depthwise stride-2 transposed conv -> transformer -> SEANet decoder.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
from flax import nnx

from soda_jax.audio.mimi_jax.config import MimiJaxConfig
from soda_jax.audio.mimi_jax.convs import CausalConv, CausalConvTranspose, SeanetDecoder, SeanetEncoder
from soda_jax.audio.mimi_jax.quantizer import SplitResidualVQ
from soda_jax.audio.mimi_jax.transformer import Transformer

Array: TypeAlias = jax.Array
StreamState = dict[str, Any]
"""``{"convs": [conv caches], "downsample": cache, "kv": [(keys, values)], "offset": int32 scalar}``."""


class Mimi(nnx.Module):
    """Mimi in flax.nnx. Build with `soda_jax.audio.mimi_jax.convert` (weights start at zero)."""

    def __init__(self, config: MimiJaxConfig):
        c = config
        self.config = config
        self.encoder = SeanetEncoder(c)
        self.encoder_transformer = Transformer(c)
        self.downsample = CausalConv(c.hidden_size, c.hidden_size, 4, stride=2, bias=False)
        self.quantizer = SplitResidualVQ(c)
        self.upsample = CausalConvTranspose(c.hidden_size, c.hidden_size, 2, bias=False, depthwise=True)
        self.decoder_transformer = Transformer(c)
        self.decoder = SeanetDecoder(c)

    def initial_state(self, batch: int) -> StreamState:
        """The state before a stream's first chunk (also that of a single pass)."""
        return {
            "convs": self.encoder.initial_caches(batch),
            "downsample": self.downsample.initial_cache(batch),
            "kv": self.encoder_transformer.initial_cache(batch),
            "offset": jnp.zeros((), jnp.int32),
        }

    def latents(self, audio: Array, state: StreamState) -> tuple[Array, StreamState]:
        """``audio [B, samples]`` (whole frames) -> pre-quantization latents ``[B, frames, hidden]``."""
        h, convs = self.encoder(audio[..., None], state["convs"])
        offset = state["offset"]
        h, kv = self.encoder_transformer(h, state["kv"], offset)
        first = jnp.repeat(h[:, :1], self.downsample.pad, axis=1)
        past = jnp.where(offset == 0, first, state["downsample"])
        h, down = self.downsample(h, past)
        steps = audio.shape[1] // self.config.hop_length
        return h, {"convs": convs, "downsample": down, "kv": kv, "offset": offset + steps}

    def encode(self, audio: Array, state: StreamState, num_codebooks: int) -> tuple[Array, StreamState]:
        """``audio [B, samples]`` (whole frames) -> codes ``[B, K, samples / 1920]``, next state."""
        h, state = self.latents(audio, state)
        return self.quantizer.encode(h, num_codebooks), state

    def decode(self, codes: Array) -> Array:
        """codes ``[B, K, frames]`` -> waveform ``[B, frames * 1920]`` (one pass)."""
        h = self.upsample(self.quantizer.decode(codes))
        no_past = self.decoder_transformer.initial_cache(codes.shape[0], steps=0)
        h, _ = self.decoder_transformer(h, no_past, jnp.zeros((), jnp.int32))
        return self.decoder(h)[..., 0]

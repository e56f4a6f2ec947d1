"""Compiled, batched, chunked, data-parallel encode and decode of a flax `Mimi`.

The batch axis is sharded over a one-axis device mesh (``data``): a TPU host encodes a batch across
its chips, parameters replicated. Shapes are bucketed so a stream of batches compiles a handful of
programs: the batch is padded to a power of two (and a multiple of the mesh size) with silent rows,
and the length to a multiple of ``length_bucket_frames``. Padding is always on the right or in extra
rows, and Mimi is causal, so it never changes a real frame's code.

Recordings longer than ``chunk_frames`` are encoded chunk by chunk with the streaming state (conv
caches, KV cache, position) carried between chunks; the last chunk is padded to the chunk length,
so every chunk runs the same compiled program.

Float32 matmuls and convolutions run at ``matmul_precision`` (JAX's ``default_matmul_precision``,
part of each compiled program): "highest" is full float32 everywhere, so a TPU's codes match the
CPU reference; "default" lets a TPU multiply in one bfloat16 pass. A CPU computes float32 either way.

One runner per process uses the host's local devices only (`default_devices`): on a TPU VM the one
process of a step (`soda_jax.execution.tpu`) owns every local chip, and no other process may use them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from soda_jax.audio.mimi_jax.model import Mimi
from soda_jax.audio.precision import DEFAULT_MATMUL_PRECISION, MATMUL_PRECISIONS

DATA_AXIS = "data"


def default_devices() -> list[jax.Device]:
    """All local accelerators; one device on CPU (fake CPU devices share the same cores)."""
    devices = jax.local_devices()
    return devices if devices[0].platform != "cpu" else devices[:1]


@functools.partial(jax.jit, static_argnums=(0, 4))
def _encode(graphdef, params, audio, state, num_codebooks):
    model = nnx.merge(graphdef, params)
    return model.encode(audio, state, num_codebooks)


@functools.partial(jax.jit, static_argnums=(0,))
def _decode(graphdef, params, codes):
    return nnx.merge(graphdef, params).decode(codes)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class MimiRunner:
    """Encode ``[B, samples]`` / decode ``[B, K, frames]`` numpy batches with a jit-compiled Mimi."""

    def __init__(
        self,
        model: Mimi,
        *,
        devices: Sequence[jax.Device] | None = None,
        length_bucket_frames: int = 25,
        pad_batch_to_power_of_two: bool = True,
        matmul_precision: str = DEFAULT_MATMUL_PRECISION,
    ):
        if matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, got {matmul_precision!r}")
        self.matmul_precision = matmul_precision
        self.config = model.config
        self.mesh = Mesh(np.array(list(devices or default_devices())), (DATA_AXIS,))
        self.graphdef, params = nnx.split(model)
        self.params = jax.device_put(params, NamedSharding(self.mesh, P()))
        self.length_bucket_frames = length_bucket_frames
        self.pad_batch_to_power_of_two = pad_batch_to_power_of_two
        self._abstract = nnx.eval_shape(lambda: Mimi(model.config))  # builds stream states, no weights

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size

    def padded_batch(self, batch: int) -> int:
        if self.pad_batch_to_power_of_two:
            batch = 1 << max(0, math.ceil(math.log2(batch)))
        return _round_up(batch, self.num_devices)

    def _shard(self, array: np.ndarray | jax.Array) -> jax.Array:
        spec = P(DATA_AXIS, *([None] * (array.ndim - 1))) if array.ndim else P()
        return jax.device_put(array, NamedSharding(self.mesh, spec))

    def encode(self, audio: np.ndarray, num_codebooks: int, chunk_frames: int) -> np.ndarray:
        """``audio [B, frames * 1920]`` float32 -> codes ``[B, K, frames]`` int32."""
        per_frame = self.config.samples_per_frame
        batch, samples = audio.shape
        if samples % per_frame:
            raise ValueError(f"audio length {samples} is not a whole number of {per_frame}-sample frames")
        frames = samples // per_frame
        chunk = min(chunk_frames, _round_up(frames, self.length_bucket_frames))
        total = _round_up(frames, chunk)
        padded = np.zeros((self.padded_batch(batch), total * per_frame), np.float32)
        padded[:batch, :samples] = audio
        state = jax.tree.map(self._shard, self._abstract.initial_state(padded.shape[0]))
        pieces = []
        for start in range(0, total * per_frame, chunk * per_frame):
            piece = self._shard(padded[:, start : start + chunk * per_frame])
            with jax.default_matmul_precision(self.matmul_precision):
                codes, state = _encode(self.graphdef, self.params, piece, state, num_codebooks)
            pieces.append(codes)
        return np.concatenate([np.asarray(c) for c in pieces], axis=-1)[:batch, :, :frames]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """codes ``[B, K, frames]`` -> waveforms ``[B, frames * 1920]`` float32 (one pass)."""
        batch, k, frames = codes.shape
        padded = np.zeros((self.padded_batch(batch), k, _round_up(frames, self.length_bucket_frames)), np.int32)
        padded[:batch, :, :frames] = codes
        with jax.default_matmul_precision(self.matmul_precision):
            audio = _decode(self.graphdef, self.params, self._shard(padded))
        return np.asarray(audio)[:batch, : frames * self.config.samples_per_frame]

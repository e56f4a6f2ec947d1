"""Weights from transformers' Mimi (a ``MimiModel`` or a ``kyutai/mimi``-layout safetensors
directory) into the flax Mimi, and the converted checkpoint (orbax) that is written once and reused.

A converted checkpoint directory holds ``params/`` (orbax) and ``mimi_jax.json``: the config, the
source path and the sha256 of the source's ``config.json`` + ``*.safetensors``. It is staged next to
its destination and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import nnx

from soda_jax import fileio
from soda_jax.audio.mimi_jax.config import MimiJaxConfig
from soda_jax.audio.mimi_jax.convs import CausalConv, CausalConvTranspose, ResidualBlock
from soda_jax.audio.mimi_jax.model import Mimi
from soda_jax.audio.mimi_jax.quantizer import ResidualVQ
from soda_jax.audio.mimi_jax.transformer import Transformer
from soda_jax.contracts import HF_CONFIG_FILE

logger = logging.getLogger(__name__)

MANIFEST = "mimi_jax.json"
PARAMS_DIR = "params"
FORMAT_VERSION = 1
CODEBOOK_EPSILON = 1e-5
"""transformers' ``MimiEuclideanCodebook`` clamps ``cluster_usage`` to this before dividing."""


class _Weights:
    """A state dict as float32 numpy arrays, failing with the missing key's name."""

    def __init__(self, state_dict: Mapping[str, Any], source: str):
        self.arrays = {k: _numpy(v) for k, v in state_dict.items()}
        self.source = source

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            raise KeyError(f"{self.source}: Mimi weight {key!r} is missing (not a kyutai/mimi-layout checkpoint?)")
        return self.arrays[key]


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def _set(param: nnx.Param, value: np.ndarray, name: str) -> None:
    if tuple(param.shape) != value.shape:
        raise ValueError(f"Mimi weight {name}: expected shape {tuple(param.shape)}, got {value.shape}")
    param.value = value


def _load_conv(conv: CausalConv, w: _Weights, prefix: str) -> None:
    kernel = w[f"{prefix}.conv.weight"]  # torch [out, in, K]
    if conv.stride > 1:
        out, cin, _ = kernel.shape
        kernel = kernel.reshape(out, cin, 2, conv.stride).transpose(2, 3, 1, 0).reshape(2, conv.stride * cin, out)
    else:
        kernel = kernel.transpose(2, 1, 0)
    _set(conv.kernel, kernel, prefix)
    if conv.bias is not None:
        _set(conv.bias, w[f"{prefix}.conv.bias"], prefix + ".bias")


def _load_conv_transpose(conv: CausalConvTranspose, w: _Weights, prefix: str) -> None:
    kernel = w[f"{prefix}.conv.weight"]  # torch [in, out / groups, 2s]
    cin, cout_g, _ = kernel.shape
    if conv.depthwise:
        kernel = kernel[:, 0].reshape(cin, 2, conv.stride).transpose(1, 2, 0)
    else:
        kernel = kernel.reshape(cin, cout_g, 2, conv.stride).transpose(0, 2, 3, 1)
    _set(conv.kernel, kernel, prefix)
    if conv.bias is not None:
        _set(conv.bias, w[f"{prefix}.conv.bias"], prefix + ".bias")


def _load_block(block: ResidualBlock, w: _Weights, prefix: str) -> None:
    _load_conv(block.conv1, w, f"{prefix}.block.1")
    _load_conv(block.conv2, w, f"{prefix}.block.3")


def _load_transformer(t: Transformer, w: _Weights, prefix: str) -> None:
    for i, layer in enumerate(t.layers):
        p = f"{prefix}.layers.{i}"
        for name in ("q", "k", "v", "o"):
            _set(getattr(layer.attn, name), w[f"{p}.self_attn.{name}_proj.weight"].T, f"{p}.{name}_proj")
        _set(layer.fc1, w[f"{p}.mlp.fc1.weight"].T, f"{p}.fc1")
        _set(layer.fc2, w[f"{p}.mlp.fc2.weight"].T, f"{p}.fc2")
        for norm, key in ((layer.attn_norm, "input_layernorm"), (layer.mlp_norm, "post_attention_layernorm")):
            _set(norm.scale, w[f"{p}.{key}.weight"], f"{p}.{key}")
            _set(norm.bias, w[f"{p}.{key}.bias"], f"{p}.{key}.bias")
        _set(layer.attn_scale, w[f"{p}.self_attn_layer_scale.scale"], f"{p}.attn_scale")
        _set(layer.mlp_scale, w[f"{p}.mlp_layer_scale.scale"], f"{p}.mlp_scale")


def _load_rvq(rvq: ResidualVQ, w: _Weights, prefix: str) -> None:
    _set(rvq.input_proj, w[f"{prefix}.input_proj.weight"][:, :, 0].T, f"{prefix}.input_proj")
    _set(rvq.output_proj, w[f"{prefix}.output_proj.weight"][:, :, 0].T, f"{prefix}.output_proj")
    books = []
    for k in range(rvq.codebooks.shape[0]):
        p = f"{prefix}.layers.{k}.codebook"
        usage = np.maximum(w[f"{p}.cluster_usage"], np.float32(CODEBOOK_EPSILON))
        books.append(w[f"{p}.embed_sum"] / usage[:, None])
    _set(rvq.codebooks, np.stack(books), f"{prefix}.codebooks")


def load_state_dict(model: Mimi, state_dict: Mapping[str, Any], source: str = "state dict") -> Mimi:
    """Fill ``model`` from a transformers ``MimiModel`` state dict (torch tensors or arrays)."""
    w = _Weights(state_dict, source)
    # transformers' nn.ModuleList indices: ELUs take slots between the convolutions.
    _load_conv(model.encoder.first, w, "encoder.layers.0")
    index = 1
    for blocks, down in model.encoder.stages:
        for block in blocks:
            _load_block(block, w, f"encoder.layers.{index}")
            index += 1
        _load_conv(down, w, f"encoder.layers.{index + 1}")
        index += 2
    _load_conv(model.encoder.last, w, f"encoder.layers.{index + 1}")
    _load_transformer(model.encoder_transformer, w, "encoder_transformer")
    _load_conv(model.downsample, w, "downsample")
    _load_rvq(model.quantizer.semantic, w, "quantizer.semantic_residual_vector_quantizer")
    _load_rvq(model.quantizer.acoustic, w, "quantizer.acoustic_residual_vector_quantizer")
    _load_conv_transpose(model.upsample, w, "upsample")
    _load_transformer(model.decoder_transformer, w, "decoder_transformer")
    _load_conv(model.decoder.first, w, "decoder.layers.0")
    index = 1
    for up, blocks in model.decoder.stages:
        _load_conv_transpose(up, w, f"decoder.layers.{index + 1}")
        index += 2
        for block in blocks:
            _load_block(block, w, f"decoder.layers.{index}")
            index += 1
    _load_conv(model.decoder.last, w, f"decoder.layers.{index + 1}")
    return model


def from_transformers(model: Any, *, windowed_attention: bool = False) -> Mimi:
    """The flax Mimi with the weights of a transformers ``MimiModel`` (in memory)."""
    config = MimiJaxConfig.from_transformers(model.config, windowed_attention=windowed_attention)
    return load_state_dict(Mimi(config), model.state_dict(), source=type(model).__name__)


# ---------------------------------------------------------------------------------- safetensors
def safetensors_files(source_dir: str) -> list[str]:
    names = sorted(n for n in os.listdir(source_dir) if n.endswith(".safetensors"))
    if not names or not os.path.exists(os.path.join(source_dir, HF_CONFIG_FILE)):
        raise FileNotFoundError(f"{source_dir}: no config.json + *.safetensors (a kyutai/mimi-layout directory)")
    return [os.path.join(source_dir, n) for n in names]


def source_hash(source_dir: str) -> str:
    """sha256 over the source's config.json and safetensors files (names and bytes, sorted)."""
    digest = hashlib.sha256()
    for path in [os.path.join(source_dir, HF_CONFIG_FILE), *safetensors_files(source_dir)]:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def from_safetensors(source_dir: str, *, windowed_attention: bool = False) -> Mimi:
    """The flax Mimi from a local ``config.json`` + ``*.safetensors`` directory (no torch needed)."""
    from safetensors.numpy import load_file

    with open(os.path.join(source_dir, HF_CONFIG_FILE)) as f:
        config = MimiJaxConfig.from_transformers(json.load(f), windowed_attention=windowed_attention)
    state: dict[str, np.ndarray] = {}
    for path in safetensors_files(source_dir):
        state.update(load_file(path))
    return load_state_dict(Mimi(config), state, source=source_dir)


# ------------------------------------------------------------------------------ converted checkpoint
def _abstract_params(config: MimiJaxConfig) -> Any:
    abstract = nnx.eval_shape(lambda: Mimi(config))
    return nnx.to_pure_dict(nnx.state(abstract, nnx.Param))


def save_checkpoint(model: Mimi, path: str, *, source: str, sha256: str) -> None:
    """Write ``model`` to ``path`` (params via orbax + manifest), staged and renamed into place."""
    import orbax.checkpoint as ocp

    staging = fileio.temporary_sibling(path)
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.abspath(fileio.join(staging, PARAMS_DIR)), params)
    checkpointer.wait_until_finished()
    manifest = {
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "source": source,
        "source_sha256": sha256,
    }
    fileio.atomic_write_json(fileio.join(staging, MANIFEST), manifest)
    os.replace(staging, path)


def read_manifest(path: str) -> dict[str, Any] | None:
    return fileio.read_json_or_none(fileio.join(path, MANIFEST))


def load_checkpoint(path: str, *, windowed_attention: bool | None = None) -> Mimi:
    """A converted checkpoint back as a flax Mimi (``windowed_attention`` overrides the saved one)."""
    import orbax.checkpoint as ocp

    manifest = read_manifest(path)
    if manifest is None:
        raise FileNotFoundError(f"{path}: no {MANIFEST} (not a converted Mimi checkpoint)")
    config = MimiJaxConfig.from_dict(manifest["config"])
    if windowed_attention is not None:
        config = config.with_window(windowed_attention)
    checkpointer = ocp.StandardCheckpointer()
    params = checkpointer.restore(os.path.abspath(fileio.join(path, PARAMS_DIR)), _abstract_params(config))
    model = Mimi(config)
    nnx.replace_by_pure_dict(state := nnx.state(model, nnx.Param), params)
    nnx.update(model, state)
    return model


def convert_checkpoint(source_dir: str, output_dir: str) -> str:
    """Convert a safetensors directory once: reuse ``output_dir`` if it holds this source's hash."""
    digest = source_hash(source_dir)
    manifest = read_manifest(output_dir)
    if manifest is not None:
        if manifest.get("source_sha256") == digest:
            return output_dir
        raise ValueError(
            f"{output_dir}: converted from a different source (sha256 {manifest.get('source_sha256')}, "
            f"{source_dir} has {digest})"
        )
    logger.info("converting %s to a JAX Mimi checkpoint at %s", source_dir, output_dir)
    os.makedirs(os.path.dirname(os.path.abspath(output_dir)), exist_ok=True)
    save_checkpoint(from_safetensors(source_dir), output_dir, source=source_dir, sha256=digest)
    return output_dir


def default_cache_dir() -> str:
    """Where converted checkpoints go by default (``$SODA_JAX_CACHE`` or ~/.cache/soda_jax)."""
    root = os.environ.get("SODA_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "soda_jax")
    return os.path.join(root, "mimi_jax")


def converted(source_dir: str, cache_dir: str | None = None) -> str:
    """The converted checkpoint of a local safetensors directory, converting it on first use.

    Keyed by the source's content hash, so a changed source gets a fresh conversion.
    """
    digest = source_hash(source_dir)
    return convert_checkpoint(source_dir, os.path.join(cache_dir or default_cache_dir(), digest[:16]))

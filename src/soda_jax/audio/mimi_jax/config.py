"""Mimi's shapes as plain data, read from a transformers ``MimiConfig`` or its ``config.json``."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class MimiJaxConfig:
    """The hyperparameters the JAX Mimi needs (defaults: ``kyutai/mimi``)."""

    sample_rate: int = 24_000
    """Input and output sample rate (Hz)."""
    hidden_size: int = 512
    """Width of the latent sequence and of both transformers."""
    num_filters: int = 64
    """Channels of the first SEANet convolution; doubled at every downsampling."""
    ratios: tuple[int, ...] = (8, 6, 5, 4)
    """SEANet up-sampling ratios in decoder order (the encoder uses them reversed)."""
    kernel_size: int = 7
    """Kernel of the first encoder and decoder convolutions."""
    last_kernel_size: int = 3
    """Kernel of the last encoder and decoder convolutions."""
    residual_kernel_size: int = 3
    """Kernel of each residual block's first convolution (the second is 1x1)."""
    compress: int = 2
    """Residual blocks narrow their input by this factor."""
    num_residual_layers: int = 1
    """Residual blocks per SEANet stage."""
    dilation_growth_rate: int = 2
    """Dilation of residual block j is ``dilation_growth_rate ** j``."""
    num_layers: int = 8
    """Layers of each transformer (encoder and decoder)."""
    num_heads: int = 8
    """Attention heads."""
    head_dim: int = 64
    """Width of one head."""
    intermediate_size: int = 2048
    """Hidden width of the GELU MLP."""
    norm_eps: float = 1e-5
    """LayerNorm epsilon."""
    rope_theta: float = 10_000.0
    """RoPE base."""
    sliding_window: int = 250
    """The config's attention window (25 Hz steps); the streaming KV cache keeps ``sliding_window - 1``."""
    windowed_attention: bool = False
    """Restrict attention to ``sliding_window`` steps in a single pass as well (moshi, transformers'
    FlashAttention-2 path). False: plain causal attention within a pass, as transformers' eager/SDPA
    attention (the parity reference); the two differ past 10 s of audio."""
    codebook_size: int = 2048
    """Entries per codebook."""
    codebook_dim: int = 256
    """Width of a codebook entry (the RVQ's projected space)."""
    num_quantizers: int = 32
    """Codebooks in total (semantic + acoustic)."""
    num_semantic_quantizers: int = 1
    """Codebooks of the semantic RVQ; the rest belong to the acoustic RVQ."""

    def __post_init__(self):
        if self.hidden_size != self.num_heads * self.head_dim:
            raise ValueError(f"hidden_size {self.hidden_size} != num_heads x head_dim")

    @property
    def hop_length(self) -> int:
        """Samples per SEANet step (960 at 25 Hz for kyutai/mimi)."""
        return math.prod(self.ratios)

    @property
    def samples_per_frame(self) -> int:
        """Samples per code frame: the SEANet hop times the stride-2 downsampling (1920)."""
        return 2 * self.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.samples_per_frame

    def with_window(self, windowed: bool) -> MimiJaxConfig:
        return replace(self, windowed_attention=windowed)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MimiJaxConfig:
        data = dict(data)
        data["ratios"] = tuple(data["ratios"])
        return cls(**data)

    @classmethod
    def from_transformers(cls, config: Any, *, windowed_attention: bool = False) -> MimiJaxConfig:
        """From a transformers ``MimiConfig`` (or its ``config.json`` as a dict); refuses variants
        this implementation does not cover."""
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        unsupported = {
            "use_causal_conv": (True, get("use_causal_conv", True)),
            "pad_mode": ("constant", get("pad_mode", "constant")),
            "use_conv_shortcut": (False, get("use_conv_shortcut", False)),
            "trim_right_ratio": (1.0, get("trim_right_ratio", 1.0)),
            "attention_bias": (False, get("attention_bias", False)),
            "hidden_act": ("gelu", get("hidden_act", "gelu")),
            "audio_channels": (1, get("audio_channels", 1)),
            "upsample_groups": (get("hidden_size", 512), get("upsample_groups", 512)),
            "num_key_value_heads": (get("num_attention_heads", 8), get("num_key_value_heads", 8)),
            "vector_quantization_hidden_dimension": (
                get("codebook_dim", None) or get("hidden_size", 512),
                get("vector_quantization_hidden_dimension", 256),
            ),
        }
        for name, (wanted, got) in unsupported.items():
            if got != wanted:
                raise ValueError(f"Mimi config {name}={got!r} is not supported by the JAX Mimi (needs {wanted!r})")
        hidden, heads = get("hidden_size", 512), get("num_attention_heads", 8)
        return cls(
            sample_rate=get("sampling_rate", 24_000),
            hidden_size=hidden,
            num_filters=get("num_filters", 64),
            ratios=tuple(get("upsampling_ratios", None) or (8, 6, 5, 4)),
            kernel_size=get("kernel_size", 7),
            last_kernel_size=get("last_kernel_size", 3),
            residual_kernel_size=get("residual_kernel_size", 3),
            compress=get("compress", 2),
            num_residual_layers=get("num_residual_layers", 1),
            dilation_growth_rate=get("dilation_growth_rate", 2),
            num_layers=get("num_hidden_layers", 8),
            num_heads=heads,
            head_dim=get("head_dim", None) or hidden // heads,
            intermediate_size=get("intermediate_size", 2048),
            norm_eps=get("norm_eps", 1e-5),
            rope_theta=get("rope_theta", 10_000.0),
            sliding_window=get("sliding_window", 250),
            windowed_attention=windowed_attention,
            codebook_size=get("codebook_size", 2048),
            codebook_dim=get("codebook_dim", None) or hidden,
            num_quantizers=get("num_quantizers", 32),
            num_semantic_quantizers=get("num_semantic_quantizers", 1),
        )

"""Model shapes and the levanter Qwen3 configs built from them.

A `ModelShape` is the architecture alone (no vocabulary, no sequence length): the vocabulary
comes from the data a model trains on, the sequence length from the training recipe, so the
same catalogue entry serves every data mix and context length.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from soda_jax.models.flops import ParamCounts, forward_flops_per_token, param_counts

if TYPE_CHECKING:  # levanter is imported where a config is built: shapes and FLOPs alone stay light
    from levanter.layers.attention import AttentionBackend
    from levanter.models.qwen import Qwen3Config


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """Architecture of a Qwen3-style decoder: SwiGLU MLP, grouped-query attention with QK-norm,
    untied embeddings, Llama-3 rotary."""

    hidden_dim: int
    """Model width d (the ``embed`` axis)."""
    intermediate_dim: int
    """SwiGLU MLP width (the ``mlp`` axis)."""
    num_layers: int
    """Transformer blocks."""
    num_heads: int
    """Query heads."""
    num_kv_heads: int
    """Key/value heads; ``num_heads`` must be a multiple."""
    head_dim: int
    """Dimension of each head; need not equal ``hidden_dim / num_heads`` (SODA-600M and -4B differ)."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ModelShape.{field.name} must be a positive int, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")

    def _flops_shape(self) -> dict[str, Any]:
        return dict(
            hidden=self.hidden_dim,
            intermediate=self.intermediate_dim,
            layers=self.num_layers,
            heads=self.num_heads,
            kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
        )

    def param_counts(self, vocab_size: int) -> ParamCounts:
        """Exact trainable parameters of the levanter model (see `soda_jax.models.flops`)."""
        return param_counts(**self._flops_shape(), vocab=vocab_size)

    def forward_flops_per_token(self, vocab_size: int, seq_len: int) -> int:
        """Forward FLOPs per token, levanter's convention at the real attention width."""
        return forward_flops_per_token(**self._flops_shape(), vocab=vocab_size, seq_len=seq_len)


def qwen3_config(
    shape: ModelShape,
    seq_len: int,
    *,
    gradient_checkpointing: bool = True,
    scan_layers: bool = True,
    attn_backend: AttentionBackend | None = None,
) -> Qwen3Config:
    """The levanter ``Qwen3Config`` of ``shape`` for sequences of ``seq_len`` tokens.

    ``gradient_checkpointing`` recomputes each layer's activations in the backward pass (the
    memory saver needed at SODA's sizes on TPU); tiny CPU models train faster without it.
    ``scan_layers`` loops one compiled layer over stacked weights; False unrolls the layers.
    ``attn_backend`` None lets levanter pick per accelerator (splash on TPU, blockwise "jax_flash"
    on CPU); ``AttentionBackend.VANILLA`` is the plain softmax(QK^T)V.
    """
    from levanter.layers.rotary import Llama3RotaryEmbeddingsConfig
    from levanter.models.qwen import Qwen3Config

    return Qwen3Config(
        max_seq_len=seq_len,
        hidden_dim=shape.hidden_dim,
        intermediate_dim=shape.intermediate_dim,
        num_layers=shape.num_layers,
        num_heads=shape.num_heads,
        num_kv_heads=shape.num_kv_heads,
        head_dim=shape.head_dim,
        tie_word_embeddings=False,
        rope=Llama3RotaryEmbeddingsConfig(),
        gradient_checkpointing=gradient_checkpointing,
        scan_layers=scan_layers,
        attn_backend=attn_backend,
    )

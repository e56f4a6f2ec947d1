"""FLOPs and parameter counts for our Qwen3-style decoder LMs.

Architecture counted: SwiGLU MLP (gate, up, down), grouped-query attention with an explicit
head_dim, no biases, RMSNorm (two per layer, one final, plus Qwen3's per-head QK-norm),
untied token embedding and LM head (tied is supported for parameter counts).

FLOP convention (see docs/scaling.md):

* ``forward_flops_per_token`` counts the FORWARD pass only, exactly as levanter's
  ``levanter.utils.flop_utils.lm_flops_per_token(..., glu=True)`` does: 2 FLOPs per
  multiply-add for every matmul (MLP, QKV, output projection, LM head), and attention as a
  full (non-causal) s x s map: ``2*s*H*hd`` logits + ``3*s*H`` softmax/mask + ``2*s*H*hd``
  weighted values, per token. Norms, rotary and the loss are not counted.
* ``training_flops_per_token`` = forward x ``TRAINING_FLOPS_MULTIPLIER`` (3: forward + a backward
  pass that costs twice the forward). SODA's isoFLOP budgets (3e18 .. 3e20) are in this unit.

Levanter derives the head size as ``hidden / heads`` and ignores an explicit ``head_dim``.
For models where ``heads * head_dim == hidden`` (the whole isoFLOP sweep, SODA-135M and
SODA-1.7B) our count equals levanter's exactly; where they differ (SODA-600M: 16 x 128 heads on
d=1024; SODA-4B: 32 x 128 on d=2560) we count the projections and attention at their real width
and levanter does not. ``levanter_forward_flops_per_token`` reproduces levanter's number for
comparison with logs from levanter/Marin runs.
"""

from __future__ import annotations

import dataclasses

TRAINING_FLOPS_MULTIPLIER = 3
"""Training FLOPs = forward + backward = 3 x forward FLOPs."""

SWIGLU_MATMULS = 3
"""gate, up and down projections."""

FLOPS_PER_MULTIPLY_ADD = 2

SOFTMAX_FLOPS_PER_LOGIT = 3
"""levanter/Megatron's charge for mask + softmax per attention logit."""


def forward_flops_per_token(
    *,
    hidden: int,
    intermediate: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    vocab: int,
    seq_len: int,
) -> int:
    """Forward-pass FLOPs per token (levanter's convention, at the real attention width).

    Equals ``lm_flops_per_token(hidden, intermediate, layers, kv_heads, heads, seq_len, vocab,
    glu=True)`` whenever ``heads * head_dim == hidden``.
    """
    _check_positive(
        hidden=hidden,
        intermediate=intermediate,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        seq_len=seq_len,
    )
    if heads % kv_heads:
        raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
    q_width = heads * head_dim
    mlp = FLOPS_PER_MULTIPLY_ADD * SWIGLU_MATMULS * hidden * intermediate
    qkv = FLOPS_PER_MULTIPLY_ADD * hidden * (q_width + 2 * kv_heads * head_dim)
    output_projection = FLOPS_PER_MULTIPLY_ADD * q_width * hidden
    # Per token, one row of the full s x s map: logits, mask+softmax, weighted sum of values.
    attention = (
        FLOPS_PER_MULTIPLY_ADD * seq_len * q_width
        + SOFTMAX_FLOPS_PER_LOGIT * seq_len * heads
        + FLOPS_PER_MULTIPLY_ADD * seq_len * q_width
    )
    lm_head = FLOPS_PER_MULTIPLY_ADD * hidden * vocab
    return layers * (mlp + qkv + output_projection + attention) + lm_head


def training_flops_per_token(**shape: int) -> int:
    """Training FLOPs per token: ``TRAINING_FLOPS_MULTIPLIER x forward_flops_per_token(**shape)``."""
    return TRAINING_FLOPS_MULTIPLIER * forward_flops_per_token(**shape)


def levanter_forward_flops_per_token(
    *,
    hidden: int,
    intermediate: int,
    layers: int,
    heads: int,
    kv_heads: int,
    vocab: int,
    seq_len: int,
    head_dim: int | None = None,
) -> int:
    """What levanter's ``lm_flops_per_token(glu=True)`` reports: head size taken as hidden/heads.

    ``head_dim`` is accepted and ignored, so callers can pass a whole shape.
    """
    del head_dim  # levanter ignores it; that is the point of this function
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) is not a multiple of heads ({heads})")
    return forward_flops_per_token(
        hidden=hidden,
        intermediate=intermediate,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=hidden // heads,
        vocab=vocab,
        seq_len=seq_len,
    )


@dataclasses.dataclass(frozen=True)
class ParamCounts:
    """Trainable parameters of a model, split so both common conventions are available."""

    token_embedding: int
    """Input embedding table (vocab x hidden)."""
    lm_head: int
    """Output projection (vocab x hidden); 0 when tied to the embedding."""
    non_embedding: int
    """Everything else: attention, MLP, all norms (Kaplan et al.'s N)."""

    @property
    def total(self) -> int:
        """All parameters, embeddings and LM head included (Chinchilla's and SODA's N)."""
        return self.token_embedding + self.lm_head + self.non_embedding


def param_counts(
    *,
    hidden: int,
    intermediate: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    vocab: int,
    tied_embeddings: bool = False,
    qk_norm: bool = True,
) -> ParamCounts:
    """Exact trainable-parameter counts of a levanter Qwen3 (``qk_norm=True``) or Llama model without biases."""
    _check_positive(
        hidden=hidden,
        intermediate=intermediate,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
    )
    q_width = heads * head_dim
    attention = hidden * q_width + 2 * hidden * kv_heads * head_dim + q_width * hidden
    qk_norms = 2 * head_dim if qk_norm else 0
    mlp = SWIGLU_MATMULS * hidden * intermediate
    layer_norms = 2 * hidden
    per_layer = attention + qk_norms + mlp + layer_norms
    final_norm = hidden
    embedding = vocab * hidden
    return ParamCounts(
        token_embedding=embedding,
        lm_head=0 if tied_embeddings else embedding,
        non_embedding=layers * per_layer + final_norm,
    )


def shape_kwargs_from_levanter_config(config) -> dict[str, int]:
    """hidden/intermediate/layers/heads/kv_heads/head_dim of a levanter Llama/Qwen3 config."""
    if getattr(config, "use_bias", False):
        raise ValueError("biased attention/MLP projections are not counted; use use_bias=False")
    return dict(
        hidden=config.hidden_dim,
        intermediate=config.intermediate_dim,
        layers=config.num_layers,
        heads=config.num_heads,
        kv_heads=config.num_kv_heads,
        head_dim=config.actual_head_size,
    )


def config_forward_flops_per_token(config, vocab_size: int, seq_len: int | None = None) -> int:
    """``forward_flops_per_token`` of a levanter ``Qwen3Config`` (seq_len defaults to its max_seq_len)."""
    return forward_flops_per_token(
        **shape_kwargs_from_levanter_config(config),
        vocab=vocab_size,
        seq_len=config.max_seq_len if seq_len is None else seq_len,
    )


def config_param_counts(config, vocab_size: int) -> ParamCounts:
    """``param_counts`` of a levanter ``Qwen3Config`` (QK-norm counted) or plain ``LlamaConfig``."""
    from levanter.models.qwen import Qwen3Config  # levanter import is slow; only pay it here

    return param_counts(
        **shape_kwargs_from_levanter_config(config),
        vocab=vocab_size,
        tied_embeddings=config.tie_word_embeddings,
        qk_norm=isinstance(config, Qwen3Config),
    )


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

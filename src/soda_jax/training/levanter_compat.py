"""Every outside behaviour soda-jax relies on that its library does not promise, in one place.

Pinned to marin-levanter 0.2.20.dev202606180959, jax 0.10.2 and marin-fray (pyproject.toml). Each
item below has a pin test in tests/test_levanter_compat.py that fails when the behaviour changes, so
a pin bump says which workaround to revisit or drop:

- **Non-finite loss.** levanter's `Trainer` raises a bare ``RuntimeError("Loss is NaN")`` (or
  ``"Loss is Inf"``) under ``crash_on_nan``/``crash_on_inf``: there is no exception type to catch,
  only the message (`is_nonfinite_loss_error`).
- **Checkpoint layout and commit marker.** levanter saves the state after step ``s`` under
  ``step-{s}/`` and writes ``metadata.json`` last as its commit marker, but not atomically. Its
  discovery skips a directory without a parseable marker, yet a resumed run would later write the
  same step into that half-written store (`checkpoint_dir`, `COMMIT_MARKER`:
  `soda_jax.training.checkpoints` removes uncommitted ones before a resume).
- **Learning rate of a step.** levanter's optimizers wrap optax's ``inject_hyperparams``; the
  current LR is read from that state (`learning_rate_of`).
- **Document packing.** `SodaLmDataConfig` overrides ``LmDataConfig.build_token_datasets(caches,
  Pos, *, split)`` to pack with document-boundary loss masks (`soda_jax.data.mixture`; it sits
  below training, so its pin test is here but the override stays with the data config).
- **Step dispatch.** levanter's `Trainer.train_step` calls the cached property
  ``_jit_train_step_fn_no_hook`` (a haliax ``named_jit``) on every step without a jit hook;
  `soda_jax.training.dispatch.FastDispatchTrainer` overrides that property to dispatch the same
  function through `FlatJit` (docs/training.md, "Step dispatch", has the measured saving).
- **Validation loss.** levanter's tagged evaluator crashed on 8 CPU devices in this lineage, so
  `soda_jax.training.validation` computes per-component validation loss itself (not pinned: the
  crash needs a multi-device run to show; retry the evaluator after a pin bump).
- **Vocab-split loss.** With ``vocab -> model`` in the compute mapping, levanter/haliax return a
  wrong next-token loss on a data x model mesh; `soda_jax.training.parallelism` splits the vocabulary
  for storage only and gathers the head for the loss (guarded by tests/test_training.py's equality
  of the 4 x 2 mesh loss with the unsharded one).
- **Qwen3 layer internals.** The KV-cache decoder (`soda_jax.inference.decoder`) calls the parts of
  levanter's Qwen3 that are attributes, not API: ``model.transformer.layers`` (an ``hnn.Stacked`` with
  ``.stacked`` / ``.Block`` when scanned, ``.unstacked()`` otherwise), each layer's parts
  (`QWEN3_LAYER_PARTS`) and its attention's (`QWEN3_ATTENTION_PARTS`), ``transformer.norm``,
  ``transformer.config.attention_config()``, ``embeddings.embed`` / ``unembed`` and ``lm_head``
  (also guarded end to end by the decoder's token-for-token equality with transformers).
- **jax's distributed state.** jax 0.10 has no public query for "this process joined
  ``jax.distributed``": `soda_jax.training.train.jax_distributed_initialized` reads
  ``jax._src.distributed.global_state.client``.
- **fray's device table.** Peak FLOP/s for MFU come from
  ``fray.device_flops.device_flops_for_jax_device(device_kind)`` (marin-fray), the table levanter's
  own MFU uses.
"""

from __future__ import annotations

from typing import Any

from soda_jax import fileio

NONFINITE_LOSS_MESSAGES = ("Loss is NaN", "Loss is Inf")
"""The messages of levanter's `Trainer.train_step` under ``crash_on_nan`` / ``crash_on_inf``."""
CHECKPOINT_DIR_PREFIX = "step-"
"""levanter names the checkpoint of the state after 0-based step ``s`` ``step-{s}``."""
COMMIT_MARKER = "metadata.json"
"""Written last into a checkpoint directory by levanter: present and parseable means committed."""
QWEN3_LAYER_PARTS = (
    "self_attn",
    "input_layernorm",
    "post_attention_layernorm",
    "mlp",
    "post_attn_layernorm",
    "post_mlp_layernorm",
)
"""The attributes of a levanter Qwen3 decoder layer that `soda_jax.inference.decoder` calls."""
QWEN3_ATTENTION_PARTS = ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm", "rot_embs", "config")
"""The attributes of a levanter Qwen3 attention block that the decoder calls."""


def is_nonfinite_loss_error(error: BaseException) -> bool:
    """Whether ``error`` is levanter's stop on a NaN/inf training loss."""
    return isinstance(error, RuntimeError) and str(error) in NONFINITE_LOSS_MESSAGES


def checkpoint_dir(checkpoint_root: str, completed_step: int) -> str:
    """levanter's directory for the state after 0-based step ``completed_step``."""
    return fileio.join(checkpoint_root, f"{CHECKPOINT_DIR_PREFIX}{completed_step}")


def learning_rate_of(opt_state: Any) -> float | None:
    """The LR of the last step from a `with_grad_norm(levanter optimizer)` state (None if absent)."""
    hyperparams = getattr(opt_state[1], "hyperparams", None)
    return None if hyperparams is None else float(hyperparams["learning_rate"])

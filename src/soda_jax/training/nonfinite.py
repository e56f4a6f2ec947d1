"""Stopping on a NaN/inf loss without losing the last good checkpoint.

levanter raises before the step's hooks run, so the state that produced the bad loss is never
saved *after* it. But the state saved one step earlier (``step-{s-1}`` holds the parameters the
failing step ``s`` started from) is the one that produced it: resuming from it would fail again
at once. It is removed, so the latest checkpoint left is the last one whose parameters trained to
a finite loss.
"""

from __future__ import annotations

from soda_jax import fileio
from soda_jax.training.checkpoints import latest_checkpoint, remove_checkpoint
from soda_jax.training.levanter_compat import checkpoint_dir


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stopped."""


def stop_on_nonfinite(error: RuntimeError, *, failed_step: int, checkpoint_root: str) -> NonFiniteLossError:
    """Drop the checkpoint that led to ``failed_step`` and describe what is left (the error to raise)."""
    poisoned = checkpoint_dir(checkpoint_root, failed_step - 1)
    if fileio.exists(poisoned):
        remove_checkpoint(poisoned, "its parameters produced the non-finite loss")
    latest = latest_checkpoint(checkpoint_root)
    kept = f"last good checkpoint: {latest}" if latest else "no good checkpoint was saved before it"
    return NonFiniteLossError(
        f"training stopped: {str(error).lower().replace('loss is ', 'loss became ')} at step {failed_step}; "
        f"{kept}. Lower the learning rate or inspect the data of step {failed_step} before resuming."
    )

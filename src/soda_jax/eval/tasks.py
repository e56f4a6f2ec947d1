"""The task configs in one place, and the mini task list the demo evaluates."""

from __future__ import annotations

from soda_jax.eval.asr import AsrTask
from soda_jax.eval.continuation import ContinuationTask
from soda_jax.eval.lm_eval_adapter import LmEvalTask
from soda_jax.eval.nll import ValidationNllTask
from soda_jax.eval.pairs import PairTask, salmon, sblimp, swuggy, tblimp, twuggy
from soda_jax.eval.sampling_choice import Sampling
from soda_jax.eval.translation import TranslationTask
from soda_jax.eval.tts import Scorers, TtsTask


def mini_tasks(root, *, num_shots: int = 1, max_new_tokens: int = 64) -> tuple:
    """Every task over the `miniset` sets under ``root`` (a path or ``step``): what `make demo` runs.

    ``max_new_tokens`` caps generation (the demo model's context is 256 tokens).
    """
    short = Sampling(max_new_tokens=max_new_tokens)
    return (
        ValidationNllTask(),
        swuggy(_sub(root, "swuggy")),
        twuggy(_sub(root, "swuggy")),
        sblimp(_sub(root, "sblimp")),
        tblimp(_sub(root, "sblimp")),
        AsrTask("asr", _sub(root, "librispeech"), sampling=Sampling(max_new_tokens=32)),
        AsrTask(f"asr_{num_shots}shot", _sub(root, "librispeech"), num_shots=num_shots, sampling=Sampling(max_new_tokens=32)),
        TtsTask("tts", _sub(root, "seed-tts/en/meta.lst"), sampling=short),
        ContinuationTask("continuation", _sub(root, "librispeech"), prompt_seconds=0.5, max_items=4, sampling=short),
    )


def _sub(root, path: str):
    """``root/path`` for a directory or a step (`InputName`)."""
    return f"{root}/{path}" if isinstance(root, str) else root / path


__all__ = [
    "AsrTask", "ContinuationTask", "LmEvalTask", "PairTask", "Sampling", "Scorers", "TranslationTask", "TtsTask",
    "ValidationNllTask", "mini_tasks", "salmon", "sblimp", "swuggy", "tblimp", "twuggy",
]  # fmt: skip

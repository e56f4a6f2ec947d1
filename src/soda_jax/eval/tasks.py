"""The task configs in one place, and the mini task list the demo evaluates."""

from __future__ import annotations

import dataclasses

from soda_jax.eval import pairs
from soda_jax.eval.asr import AsrTask
from soda_jax.eval.continuation import ContinuationTask
from soda_jax.eval.lm_eval_adapter import LmEvalTask
from soda_jax.eval.nll import ValidationNllTask
from soda_jax.eval.pairs import PairTask, salmon, sblimp, swuggy, tblimp, tts_alignment, twuggy
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
        *mini_pair_tasks(root),
        AsrTask("asr", _sub(root, "librispeech"), sampling=Sampling(max_new_tokens=32)),
        AsrTask(
            f"asr_{num_shots}shot", _sub(root, "librispeech"), num_shots=num_shots, sampling=Sampling(max_new_tokens=32)
        ),
        TtsTask("tts", _sub(root, "seed-tts/en/meta.lst"), sampling=short),
        ContinuationTask("continuation", _sub(root, "librispeech"), prompt_seconds=0.5, max_items=4, sampling=short),
    )


def mini_pair_tasks(root) -> tuple[PairTask, ...]:
    """The four likelihood-pair tasks over the `miniset` sets under ``root`` (a path or ``step``):
    word vs non-word and grammatical vs not, each as speech and as text."""
    return (
        swuggy(_sub(root, "swuggy")),
        twuggy(_sub(root, "swuggy")),
        sblimp(_sub(root, "sblimp")),
        tblimp(_sub(root, "sblimp")),
    )


UNSEEN_VOICE_SPLIT = "test-other"
"""The learning demo's split read by a voice never heard in training (`eval.commandset`)."""


def learn_tasks(root, *, max_new_tokens: int = 96, max_items: int | None = None) -> tuple:
    """What `make demo-learn` runs over the `commandset` sets under ``root``: ASR 0-shot on held-out
    combinations (training voices; and ``asr_unseen_voice``), text-speech alignment on both splits,
    word vs non-word pairs (speech and text), TTS and continuation (frame validity, speaker similarity)."""
    librispeech = _sub(root, "librispeech")
    short = Sampling(max_new_tokens=max_new_tokens)
    asr = Sampling(max_new_tokens=16)
    return (
        ValidationNllTask(),
        AsrTask("asr", librispeech, sampling=asr, max_items=max_items),
        AsrTask("asr_unseen_voice", librispeech, split=UNSEEN_VOICE_SPLIT, sampling=asr, max_items=max_items),
        tts_alignment(_sub(root, "librispeech/test-clean"), max_items=max_items),
        dataclasses.replace(
            tts_alignment(_sub(root, f"librispeech/{UNSEEN_VOICE_SPLIT}"), max_items=max_items),
            name="tts_alignment_unseen_voice",
        ),
        swuggy(_sub(root, "swuggy"), max_items=max_items),
        twuggy(_sub(root, "swuggy"), max_items=max_items),
        TtsTask("tts", _sub(root, "seed-tts/en/meta.lst"), sampling=short, max_items=8),
        ContinuationTask("continuation", librispeech, prompt_seconds=0.8, max_items=8, sampling=short),
    )


SODA_ASR_SHOTS = 3
"""Examples of SODA's N-shot LibriSpeech ASR (its evaluation script's default)."""
SODA_HELLASWAG = ("hellaswag",)
"""The lm-eval task of SODA's text benchmark (HellaSwag, run from a local task YAML)."""
LM_EVAL_TASK = "lm_eval"
"""The `LmEvalTask`'s name: its metrics are ``lm_eval/{lm-eval task}/{metric}``."""


def soda_tasks(
    *,
    swuggy=None,
    sblimp=None,
    salmon=None,
    librispeech=None,
    seed_tts_meta=None,
    lm_eval_include=None,
    scorers: Scorers = Scorers(),
    num_shots: int = SODA_ASR_SHOTS,
) -> tuple:
    """SODA's benchmark set over whichever of its sets are given (None: that set's tasks left out):
    sWUGGY and tWUGGY (one table), sBLIMP and tBLIMP (one table), SALMon, LibriSpeech ASR 0-shot
    (``librispeech``) and ``num_shots``-shot (``librispeech_{n}shot``: test-clean, shots from dev-clean),
    Seed-TTS eval (``seed_tts``: WER and speaker similarity by ``scorers``) and HellaSwag through
    lm-eval (``lm_eval``, task YAMLs in ``lm_eval_include``). Metric names match
    `soda_jax.eval.report.SODA_REPORTED`."""
    tasks: list = []
    if swuggy is not None:
        tasks += [pairs.swuggy(swuggy), pairs.twuggy(swuggy)]
    if sblimp is not None:
        tasks += [pairs.sblimp(sblimp), pairs.tblimp(sblimp)]
    if salmon is not None:
        tasks.append(pairs.salmon(salmon))
    if librispeech is not None:
        tasks += [
            AsrTask("librispeech", librispeech),
            AsrTask(f"librispeech_{num_shots}shot", librispeech, num_shots=num_shots),
        ]
    if seed_tts_meta is not None:
        tasks.append(TtsTask("seed_tts", seed_tts_meta, scorers=scorers))
    if lm_eval_include is not None:
        tasks.append(LmEvalTask(LM_EVAL_TASK, tasks=SODA_HELLASWAG, include_path=lm_eval_include))
    return tuple(tasks)


def _sub(root, path: str):
    """``root/path`` for a directory or a step (`InputName`)."""
    return f"{root}/{path}" if isinstance(root, str) else root / path


__all__ = [
    "AsrTask",
    "ContinuationTask",
    "LmEvalTask",
    "PairTask",
    "Sampling",
    "Scorers",
    "TranslationTask",
    "TtsTask",
    "ValidationNllTask",
    "learn_tasks",
    "mini_pair_tasks",
    "mini_tasks",
    "salmon",
    "sblimp",
    "soda_tasks",
    "swuggy",
    "tblimp",
    "tts_alignment",
    "twuggy",
]

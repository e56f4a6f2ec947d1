"""Text benchmarks through EleutherAI's lm-eval: an ``LM`` over our model, tasks from local YAMLs.

`SodaLM` implements ``loglikelihood`` (sum of the continuation's log-probs and whether each of its
tokens is the argmax), ``loglikelihood_rolling`` (a whole text, in context-length windows) and
``generate_until`` (greedy by default, stopping at ``<|text_end|>``/EOS or any ``until`` string).
Text enters as ``<bos> T`` (how text-only documents are trained, docs/data.md), or with
``wrap="markers"`` as ``<bos> <|text_start|> T``.

`LmEvalTask` runs lm-eval tasks by name with ``TaskManager(include_path=...)``: a task YAML whose
``dataset_path: json`` and ``dataset_kwargs.data_files`` point at local jsonl runs offline
(``HF_DATASETS_OFFLINE=1`` is set for the run). A task is resumed as a whole (lm-eval has no
per-item resume).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from soda_jax.eval.context import EvalContext, text_until_marker
from soda_jax.eval.results import TaskStore
from soda_jax.inference.generate import MIN_PROMPT_BUCKET, bucket, full_logits
from soda_jax.inference.sampling import SamplingParams

PLAIN = "plain"
MARKERS = "markers"
LOGIT_ROWS = 8
"""Rows per full-logits forward in ``loglikelihood`` (bounds the [rows, T, vocab] array)."""


def _lm_base():
    from lm_eval.api.model import LM

    return LM


if TYPE_CHECKING:  # the same class, named statically (mypy cannot use a call as a base class)
    from lm_eval.api.model import LM as _LMBase
else:
    _LMBase = _lm_base()


class SodaLM(_LMBase):
    """lm-eval's model interface over an `EvalContext`."""

    def __init__(self, ctx: EvalContext, *, wrap: str = PLAIN, max_gen_toks: int = 128):
        super().__init__()
        if wrap not in (PLAIN, MARKERS):
            raise ValueError(f"wrap must be {PLAIN!r} or {MARKERS!r}, got {wrap!r}")
        self.ctx, self.wrap, self.max_gen_toks = ctx, wrap, max_gen_toks
        vocab = ctx.vocab
        self.prefix = np.array([vocab.bos_id] + ([vocab.text_start_id] if wrap == MARKERS else []), np.int32)

    def _encode(self, text: str) -> np.ndarray:
        return self.ctx.vocab.encode_text(text) if text else np.zeros(0, np.int32)

    # ------------------------------------------------------------------------ loglikelihood
    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        pairs = []
        for request in requests:
            context, continuation = request.args
            ctx_ids = np.concatenate([self.prefix, self._encode(context)])
            cont_ids = self._encode(continuation)
            if not cont_ids.size:
                raise ValueError(f"lm-eval continuation {continuation!r} tokenizes to nothing")
            sequence = np.concatenate([ctx_ids, cont_ids]).astype(np.int32)[-self.ctx.context_length :]
            pairs.append((sequence, int(cont_ids.size)))
        return self.continuation_scores(pairs)

    def continuation_scores(self, pairs: Sequence[tuple[np.ndarray, int]]) -> list[tuple[float, bool]]:
        """(sum of the last n tokens' log-probs, all of them argmax) per (sequence, n)."""
        order = sorted(range(len(pairs)), key=lambda i: pairs[i][0].size)
        out: list[tuple[float, bool] | None] = [None] * len(pairs)
        for start in tqdm(range(0, len(order), LOGIT_ROWS), desc="loglikelihood", unit="batch", leave=False):
            group = order[start : start + LOGIT_ROWS]
            length = min(bucket(max(pairs[i][0].size for i in group), MIN_PROMPT_BUCKET), self.ctx.context_length)
            rows = -(-len(group) // self.ctx.loaded.data_parallel_size) * self.ctx.loaded.data_parallel_size
            tokens = np.zeros((rows, length), np.int32)
            for r, i in enumerate(group):
                tokens[r, : pairs[i][0].size] = pairs[i][0]
            logits = full_logits(self.ctx.loaded, tokens)
            for r, i in enumerate(group):
                sequence, n = pairs[i]
                predicted = logits[r, sequence.size - n - 1 : sequence.size - 1].astype(np.float64)
                logp = predicted - np.logaddexp.reduce(predicted, axis=-1, keepdims=True)
                targets = sequence[sequence.size - n :]
                out[i] = (float(logp[np.arange(n), targets].sum()), bool((predicted.argmax(-1) == targets).all()))
        return out  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests) -> list[float]:
        totals = []
        for request in requests:
            (text,) = request.args
            ids = np.concatenate([self.prefix, self._encode(text)]).astype(np.int32)
            # Windows overlap by one token so every token after the prefix is predicted exactly once.
            step = self.ctx.context_length - 1
            pieces = [ids[i : i + self.ctx.context_length] for i in range(0, max(ids.size - 1, 1), step)]
            scored = self.ctx.score([p for p in pieces if p.size >= 2])
            skip = self.prefix.size - 1  # predictions of the prefix markers are not the text's
            totals.append(float(sum(s.sum() for s in scored)) - float(scored[0][:skip].sum()))
        return totals

    # ------------------------------------------------------------------------- generation
    def generate_until(self, requests) -> list[str]:
        vocab = self.ctx.vocab
        prompts, params, untils = [], [], []
        for request in requests:
            context, kwargs = request.args
            kwargs = dict(kwargs or {})
            until = kwargs.get("until") or []
            untils.append([until] if isinstance(until, str) else list(until))
            max_new = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            prompt = np.concatenate([self.prefix, self._encode(context)]).astype(np.int32)
            prompt = prompt[-(self.ctx.context_length - 1) :]
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0
            prompts.append(prompt)
            params.append(
                SamplingParams(
                    temperature=temperature,
                    max_new_tokens=max_new,
                    stop_ids=(vocab.text_end_id, vocab.eos_id),
                    audio_constraint=True,
                )
            )
        texts = []
        for generation, until in zip(self.ctx.generate(prompts, params), untils):
            text = text_until_marker(vocab, generation.tokens)
            for stop in until:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            texts.append(text)
        return texts


@dataclasses.dataclass(frozen=True)
class LmEvalTask:
    """lm-eval tasks over the model."""

    name: str = "lm_eval"
    tasks: tuple[str, ...] = ("hellaswag",)
    """lm-eval task names (found in ``include_path`` first)."""
    include_path: str | None = None
    """Directory of local task YAMLs (``TaskManager(include_path=...)``)."""
    num_fewshot: int | None = None
    limit: int | None = None
    """Examples per task at most."""
    wrap: str = PLAIN


def run_lm_eval(ctx: EvalContext, task: LmEvalTask, store: TaskStore) -> dict:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # before `datasets` is imported: it reads it once
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=task.include_path) if task.include_path else TaskManager()
    output = lm_eval.simple_evaluate(
        model=SodaLM(ctx, wrap=task.wrap),
        tasks=list(task.tasks),
        num_fewshot=task.num_fewshot,
        limit=task.limit,
        task_manager=manager,
        bootstrap_iters=0,
        log_samples=False,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )
    metrics, per_task = {}, {}
    for name, values in (output or {}).get("results", {}).items():
        numeric = {}
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and "stderr" not in key:
                metric = key.split(",")[0]
                numeric[metric] = float(value)
                metrics[f"{name}/{metric}"] = float(value)
        per_task[name] = numeric
    samples = (output or {}).get("n-samples", {})
    store.add({"id": name, "metrics": values, "samples": samples.get(name)} for name, values in per_task.items())
    return {
        "metrics": metrics,
        "headline": next(iter(metrics), None),
        "items": sum(int((s or {}).get("effective", 0)) for s in samples.values()) if samples else None,
        "settings": dataclasses.asdict(task),
    }

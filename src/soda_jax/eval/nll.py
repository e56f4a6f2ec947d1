"""Validation NLL by token kind: how well the model predicts text, semantic audio (codebook 0),
acoustic audio (codebooks 1-7) and the four markers, on the run's held-out token caches.

Documents are scored whole by the full forward, split into consecutive windows of the model's
context when longer (as training packs them); every token but a window's first is a target. Loss
is in nats per token; bits per token = loss / ln 2. The kind of a target is its own id's kind.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.contracts import TRAINING_MANIFEST_FILE, VALIDATION_SPLIT
from soda_jax.data.caches import open_cache
from soda_jax.eval.context import EvalContext
from soda_jax.eval.results import TaskStore
from soda_jax.training.manifest import read_manifest
from soda_jax.training.validation import KINDS, TokenKindLayout


@dataclasses.dataclass(frozen=True)
class ValidationNllTask:
    """Per-kind loss on validation caches."""

    name: str = "validation_nll"
    caches: tuple[str, ...] = ()
    """Token cache roots (each holding ``validation/``); empty: the caches the run trained on,
    as its training manifest names them."""
    max_documents: int | None = 256
    """Documents per cache at most (None: all)."""


def token_kinds(vocab: AudioTextVocab, ids: np.ndarray) -> np.ndarray:
    """Index into `KINDS` for each id: text (BOS/EOS included), semantic, acoustic, marker (as the
    training step's validation counts them, `soda_jax.training.validation.TokenKindLayout`)."""
    return TokenKindLayout.of_vocab(vocab).kind_of(np.asarray(ids))


def recorded_caches(run_dir: str) -> tuple[str, ...]:
    """The token cache roots a training run read, by component name (its training manifest,
    `soda_jax.training.manifest.read_manifest`)."""
    manifest = read_manifest(run_dir)
    if manifest is None or not manifest.caches:
        raise FileNotFoundError(
            f"{run_dir}: no recorded data caches ({TRAINING_MANIFEST_FILE}); pass caches=... explicitly"
        )
    return tuple(manifest.caches[name] for name in sorted(manifest.caches))


def windows(document: np.ndarray, length: int) -> list[np.ndarray]:
    """Consecutive pieces of at most ``length`` tokens (a last piece of 1 token has no target: dropped)."""
    pieces = [document[i : i + length] for i in range(0, document.size, length)]
    return [p for p in pieces if p.size >= 2]


def run_validation_nll(ctx: EvalContext, task: ValidationNllTask, store: TaskStore, run_dir: str) -> dict:
    roots = task.caches or recorded_caches(run_dir)
    for root in roots:
        cache = open_cache(fileio.join(root, VALIDATION_SPLIT))
        count = len(cache) if task.max_documents is None else min(len(cache), task.max_documents)
        name = root.rstrip("/").rsplit("/", 1)[-1]
        todo = [i for i in range(count) if not store.done(f"{name}:{i}")]
        progress = tqdm(total=count, initial=count - len(todo), desc=f"{task.name} {name}", unit="doc")
        for start in range(0, len(todo), ctx.batch_size):
            indices = todo[start : start + ctx.batch_size]
            documents = cache.get_batch_sync(indices)
            pieces, owners = [], []
            for i, doc in zip(indices, documents):
                for piece in windows(np.asarray(doc["input_ids"], np.int32), ctx.context_length):
                    pieces.append(piece)
                    owners.append(i)
            logprobs = ctx.score(pieces)
            sums = {i: np.zeros(len(KINDS)) for i in indices}
            counts = {i: np.zeros(len(KINDS), np.int64) for i in indices}
            for i, piece, logp in zip(owners, pieces, logprobs):
                kinds = token_kinds(ctx.vocab, piece[1:])
                np.add.at(sums[i], kinds, -logp.astype(np.float64))
                np.add.at(counts[i], kinds, 1)
            store.add(
                {"id": f"{name}:{i}", "cache": root, "nll": sums[i].tolist(), "tokens": counts[i].tolist()}
                for i in indices
            )
            progress.update(len(indices))
        progress.close()
    return summarize_nll(task, roots, store.scored())


def summarize_nll(task: ValidationNllTask, roots, records: list[dict]) -> dict:
    nll = np.sum([r["nll"] for r in records], axis=0) if records else np.zeros(len(KINDS))
    tokens = np.sum([r["tokens"] for r in records], axis=0) if records else np.zeros(len(KINDS), np.int64)
    metrics, details = {}, {}
    for k, kind in enumerate(KINDS):
        loss = float(nll[k] / tokens[k]) if tokens[k] else math.nan
        metrics[f"{kind}/loss"] = loss
        metrics[f"{kind}/bits_per_token"] = loss / math.log(2)
        details[kind] = int(tokens[k])
    total = float(nll.sum() / tokens.sum()) if tokens.sum() else math.nan
    metrics["all/loss"] = total
    metrics["all/bits_per_token"] = total / math.log(2)
    return {
        "metrics": metrics,
        "headline": "all/loss",
        "documents": len(records),
        "tokens_by_kind": details,
        "caches": list(roots),
        "settings": dataclasses.asdict(task),
    }

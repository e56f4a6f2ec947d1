"""Validation loss per data component and per token kind, with the model sharded as for training.

Written here rather than through levanter's tagged evaluator, which crashed on 8 CPU devices in
this lineage (docs: levanter-notes). The loss is the plain next-token cross-entropy (no z-loss).
One forward per batch gives every number (`kind_sums`): the summed NLL and the count of scored target
tokens of each kind (`KINDS`: text, BOS/EOS included; semantic, codebook 0; acoustic, codebooks 1-7;
the four markers), the kind being the target id's own.

Per component, each validation row holds

* ``validation/{name}/loss``: the mean over batches of each batch's mean loss (what it always was);
* ``validation/{name}/{kind}/loss`` and ``.../tokens``: the token-weighted NLL of that kind's
  targets and how many there were (kinds with no target are left out);

and ``validation_loss`` is the mean of the components' losses (levanter's macro loss).
`heldout_nll` turns a row into the summary's ``heldout_nll`` section: token-weighted NLL per
component, over the **speech** components (those whose validation targets include audio ids) and
over all of them, each also per kind. The validation split is held out from training (by recording,
`soda_jax.data.caches.split_of`), so these are held-out NLLs.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Mapping
from typing import Any

import haliax as hax
import jax.numpy as jnp
import numpy as np
from haliax.partitioning import named_jit
from levanter.utils.thread_utils import blocking_wait

from soda_jax import fileio
from soda_jax.contracts import VOCAB_DIR, VOCAB_FILE
from soda_jax.training.loss import CrossEntropy, next_token_losses

logger = logging.getLogger(__name__)

VALIDATION_LOSS = "validation_loss"
KINDS = ("text", "semantic", "acoustic", "marker")
"""Token kinds, in the order of `kind_sums`' columns (the evaluation's validation NLL counts the same)."""
TEXT, SEMANTIC, ACOUSTIC, MARKER = range(len(KINDS))
AUDIO_KINDS = ("semantic", "acoustic")
"""A component whose validation targets include these is a speech component."""
HELDOUT_NLL = "heldout_nll"
"""The summary's section of held-out NLLs (`heldout_nll`)."""


def validation_key(component: str, kind: str | None = None, stat: str = "loss") -> str:
    """``validation/{component}/loss``, or ``validation/{component}/{kind}/{stat}`` (stat: loss, tokens)."""
    return f"validation/{component}/{stat}" if kind is None else f"validation/{component}/{kind}/{stat}"


@dataclasses.dataclass(frozen=True)
class TokenKindLayout:
    """Where each token kind's ids lie in the audio-text vocabulary (`soda_jax.audio.vocab`)."""

    text_size: int
    """Ids below this are text (the text tokenizer's, BOS and EOS included)."""
    audio_offset: int
    """First audio id (codebook 0, code 0); the four markers lie between ``text_size`` and it."""
    codebook_size: int
    """Codes per codebook: ids from ``audio_offset + codebook_size`` on are acoustic."""

    @classmethod
    def from_cache(cls, cache_root: str) -> TokenKindLayout:
        """The layout a token cache records (``{cache_root}/vocab/vocab.json``)."""
        path = fileio.join(cache_root, VOCAB_DIR, VOCAB_FILE)
        recorded = fileio.read_json(path)
        missing = [k for k in ("text_size", "audio_offset", "codebook_size") if not isinstance(recorded.get(k), int)]
        if missing:
            raise ValueError(f"{path}: no integer {', '.join(missing)}: not an audio-text vocabulary record")
        return cls(recorded["text_size"], recorded["audio_offset"], recorded["codebook_size"])

    @classmethod
    def of_vocab(cls, vocab) -> TokenKindLayout:
        """The layout of an `AudioTextVocab`."""
        return cls(vocab.text_size, vocab.audio_offset, vocab.codebook_size)

    def kind_of(self, ids):
        """Index into `KINDS` of each id (a jax or numpy array)."""
        xp = jnp if isinstance(ids, jnp.ndarray) else np
        return xp.where(
            ids < self.text_size,
            TEXT,
            xp.where(
                ids < self.audio_offset,
                MARKER,
                xp.where(ids < self.audio_offset + self.codebook_size, SEMANTIC, ACOUSTIC),
            ),
        )


def token_losses(model, example, cross_entropy: CrossEntropy, vocab_block: int | None):
    """Per-position next-token NLL times the position's loss weight (0 where not scored), no z-loss:
    the per-position form of `soda_jax.training.loss.next_token_loss_fn`'s mean."""
    losses, _ = next_token_losses(model, example, cross_entropy, vocab_block, reduction=None)
    return losses


def kind_sums(
    model, example, layout: TokenKindLayout, cross_entropy: CrossEntropy = "fused", vocab_block: int | None = None
):
    """``[2, len(KINDS)]``: summed NLL (row 0) and scored target tokens (row 1) of each kind in a batch."""
    Pos = example.tokens.resolve_axis(model.Pos.name)
    losses = token_losses(model, example, cross_entropy, vocab_block).astype(jnp.float32)
    not_last = hax.logical_not(hax.nn.one_hot(-1, Pos, dtype=jnp.bool_))
    weight = (example.loss_weight * not_last).astype(jnp.float32)  # as the loss weighs each position
    targets = hax.roll(example.tokens, -1, Pos)
    kinds = hax.nn.one_hot(
        hax.named(layout.kind_of(targets.array), targets.axes), hax.Axis("kind", len(KINDS)), dtype=jnp.float32
    )
    positions = targets.axes
    return hax.stack("stat", [hax.sum(losses * kinds, axis=positions), hax.sum(weight * kinds, axis=positions)])


class ValidationLoss:
    """Callable ``model -> {validation_loss, validation/{name}/...}`` over fixed batches (module docstring)."""

    def __init__(
        self,
        trainer,
        datasets: Mapping[str, Any],
        *,
        max_batches: int | None,
        layout: TokenKindLayout,
        cross_entropy: CrossEntropy = "fused",
        vocab_block: int | None = None,
    ):
        self.loaders = {}
        for name, dataset in datasets.items():
            if dataset.is_finite() and blocking_wait(dataset.async_len()) == 0:
                logger.warning(
                    "validation set %s is empty: skipped (a larger validation_fraction holds out more)", name
                )
                continue
            self.loaders[name] = trainer.data_loader(dataset, trainer.EvalBatch)
        self.max_batches = max_batches
        mp = trainer.mp

        @named_jit(axis_resources=trainer.compute_axis_mapping)
        def batch_sums(model, example):
            return kind_sums(mp.cast_to_compute(model), example, layout, cross_entropy, vocab_block)

        self._batch_sums = batch_sums

    def __call__(self, model) -> dict[str, float]:
        results: dict[str, float] = {}
        losses = []
        for name, loader in self.loaders.items():
            batches = [
                np.asarray(self._batch_sums(model, batch).array, np.float64)
                for batch in itertools.islice(loader, self.max_batches)
            ]
            if not batches:
                logger.warning("validation set %s is smaller than one batch: skipped", name)
                continue
            means = [b[0].sum() / b[1].sum() if b[1].sum() else math.nan for b in batches]
            results[validation_key(name)] = float(np.mean(means))
            losses.append(results[validation_key(name)])
            nll, tokens = np.sum(batches, axis=0)
            for k, kind in enumerate(KINDS):
                if tokens[k] > 0:
                    results[validation_key(name, kind)] = float(nll[k] / tokens[k])
                    results[validation_key(name, kind, "tokens")] = int(round(tokens[k]))
        results[VALIDATION_LOSS] = sum(losses) / len(losses) if losses else math.nan
        return results


def _pooled(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Token-weighted NLL over ``parts`` (each ``{kind: {"loss", "tokens"}}``), overall and per kind."""
    kinds = {}
    for kind in KINDS:
        tokens = sum(p[kind]["tokens"] for p in parts if kind in p)
        if tokens:
            kinds[kind] = {
                "loss": sum(p[kind]["loss"] * p[kind]["tokens"] for p in parts if kind in p) / tokens,
                "tokens": tokens,
            }
    tokens = sum(k["tokens"] for k in kinds.values())
    loss = sum(k["loss"] * k["tokens"] for k in kinds.values()) / tokens if tokens else None
    return {"loss": loss, "tokens": tokens, "kinds": kinds}


def heldout_nll(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The summary's ``heldout_nll`` from a validation row (None when the row has no per-kind counts):

    ``{"components": {name: {"loss", "tokens", "speech", "kinds": {kind: {"loss", "tokens"}}}},
    "speech": {"loss", "tokens", "components", "kinds"}, "all": {...}}``; losses in nats per token,
    token-weighted; ``speech.loss`` is None when no component holds audio."""
    components: dict[str, dict[str, Any]] = {}
    for key, value in row.items():
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "validation" and parts[2] in KINDS and parts[3] == "tokens":
            name, kind = parts[1], parts[2]
            components.setdefault(name, {})[kind] = {
                "loss": float(row[validation_key(name, kind)]),
                "tokens": int(value),
            }
    if not components:
        return None
    section: dict[str, Any] = {"components": {}}
    for name, kinds in sorted(components.items()):
        pooled = _pooled([kinds])
        section["components"][name] = {**pooled, "speech": any(kind in kinds for kind in AUDIO_KINDS)}
    speech = [name for name, c in section["components"].items() if c["speech"]]
    section["speech"] = {**_pooled([components[n] for n in speech]), "components": speech}
    section["all"] = {**_pooled(list(components.values())), "components": sorted(components)}
    return section

"""Weighted mixtures of token caches as levanter (lineage B) `LmDataConfig`s.

`soda_mixture({"yodas2": cache_root, ...}, {"yodas2": 0.516, ...})` gives the training step a
config whose ``train_set`` / ``validation_sets`` are levanter's own mixture machinery (block-wise
deterministic `MixtureDataset`, block shuffle, per-component tagged evaluation). The one change is
`SodaLmDataConfig`, a subclass that packs documents with `document_lm_dataset` (loss masked at
document boundaries) instead of levanter's unmasked `CausalLmDataset`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from haliax import Axis
from levanter.data.text.datasets import (
    BlockShuffleConfig,
    DatasetComponent,
    LmDataConfig,
    TextLmDatasetFormat,
    _effective_pack,
)
from levanter.store.cache import TreeCache

from soda_jax import io
from soda_jax.data.cache_vocab import levanter_tokenizer_path
from soda_jax.data.packing import document_lm_dataset

DEFAULT_MIXTURE_BLOCK_SIZE = 2048
"""Sequences per mixture block: within a block the component counts match the weights exactly."""
DEFAULT_SHUFFLE = BlockShuffleConfig(io_block_size=256, window_blocks=512, perm_type="feistel")
"""Levanter's default hierarchical shuffle: contiguous 256-sequence reads, shuffled in 512-block windows."""


@dataclass(frozen=True)
class SodaLmDataConfig(LmDataConfig):
    """Levanter's `LmDataConfig` whose text caches are packed with document-boundary loss masks."""

    mask_document_boundaries: bool = True
    """Zero the loss where a sequence crosses from one document (<eos>) into the next."""

    def build_token_datasets(self, caches: Mapping[str, TreeCache[dict]], Pos: Axis, *, split: str):
        datasets = super().build_token_datasets(caches, Pos, split=split)
        if not self.mask_document_boundaries:
            return datasets
        eos_id = self.the_tokenizer.eos_token_id
        if eos_id is None:
            raise ValueError(f"tokenizer {self.tokenizer} has no EOS token: documents cannot be separated")
        for name, component in self.components.items():
            if (
                name in datasets
                and isinstance(component, DatasetComponent)
                and isinstance(component.format, TextLmDatasetFormat)
                and not _effective_pack(component)
            ):
                datasets[name] = document_lm_dataset(
                    caches[name], Pos, eos_id=eos_id, block_cross_document_attention=self.block_cross_document_attention
                )
        return datasets


def normalized_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` scaled to sum to 1 (checked: finite, non-negative, not all zero)."""
    bad = {k: w for k, w in weights.items() if not (math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"mixture weights must be finite and >= 0, got {bad}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"mixture weights sum to {total}: at least one must be positive")
    return {k: w / total for k, w in weights.items()}


def soda_mixture(
    components: Mapping[str, Any],
    weights: Mapping[str, float],
    *,
    tokenizer: str | None = None,
    mixture_block_size: int = DEFAULT_MIXTURE_BLOCK_SIZE,
    shuffle: bool | BlockShuffleConfig = DEFAULT_SHUFFLE,
    mask_document_boundaries: bool = True,
    block_cross_document_attention: bool = True,
    tags: Mapping[str, list[str]] | None = None,
) -> SodaLmDataConfig:
    """A levanter mixture over token caches written by ``interleave`` / ``tokenize_text``.

    ``components``: name -> cache root (a directory holding train/, validation/, vocab/), or the
    step that writes it (an `ExecutorStep` or `InputName`, resolved when the training step runs).
    ``weights``: name -> sampling weight (normalised; a component without a weight, or with
    weight 0, is still used for validation). ``tokenizer``: the full-vocabulary tokenizer
    directory; by default the first component's ``vocab/tokenizer`` (all components must share
    one vocabulary: checked here when their vocab.json files exist).
    """
    if not components:
        raise ValueError("a mixture needs at least one component")
    unknown = sorted(set(weights) - set(components))
    if unknown:
        raise ValueError(f"weights for unknown components {unknown}; components are {sorted(components)}")
    train_weights = {name: 0.0 for name in components} | normalized_weights(weights)
    _check_shared_vocab(components)
    first_root = next(iter(components.values()))
    return SodaLmDataConfig(
        tokenizer=tokenizer or levanter_tokenizer_path(first_root),
        cache_dir=None,
        auto_build_caches=False,
        components={
            name: DatasetComponent(
                cache_dir=root, format=TextLmDatasetFormat(), pack=False, tags=list((tags or {}).get(name, []))
            )
            for name, root in components.items()
        },
        train_weights=train_weights,
        mixture_block_size=mixture_block_size,
        shuffle=shuffle,
        block_cross_document_attention=block_cross_document_attention,
        mask_document_boundaries=mask_document_boundaries,
    )


def _check_shared_vocab(components: Mapping[str, str]) -> None:
    from soda_jax.audio.vocab import VOCAB_FILE
    from soda_jax.data.cache_vocab import VOCAB_DIR

    seen: dict[str, tuple[str, dict]] = {}
    for name, root in components.items():
        if not isinstance(root, str):
            continue  # an executor input: checked when the training step loads the caches
        recorded = io.read_json_or_none(io.join(root, VOCAB_DIR, VOCAB_FILE))
        if recorded is None:
            continue  # not written yet (an experiment being defined): the training step loads it
        for other, (other_root, other_vocab) in seen.items():
            if recorded != other_vocab:
                raise ValueError(f"components {other} ({other_root}) and {name} ({root}) use different vocabularies")
        seen[name] = (root, recorded)

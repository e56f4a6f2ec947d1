"""Weighted mixtures of token caches: a soda-jax `MixtureSpec`, built into levanter's `LmDataConfig` in the step.

`soda_mixture({"yodas2": cache_root, ...}, {"yodas2": 0.516, ...})` gives the training step a
`MixtureSpec`: the mix in soda-jax's own terms (components by cache root or producing step,
weights, packing options). That is what the executor versions, so a levanter upgrade that adds or
renames a field of its config classes cannot move a training run's output path (docs/versioning.md).
Inside the step, `MixtureSpec.lm_config()` builds levanter's own mixture machinery (block-wise
deterministic `MixtureDataset`, block shuffle, per-component tagged evaluation). The one change to
levanter is `SodaLmDataConfig`, a subclass that packs documents with `document_lm_dataset` (loss
masked at document boundaries) instead of levanter's unmasked `CausalLmDataset`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from haliax import Axis
from levanter.data.text.datasets import (
    BlockShuffleConfig,
    DatasetComponent,
    LmDataConfig,
    TextLmDatasetFormat,
)
from levanter.store.cache import TreeCache

from soda_jax import fileio
from soda_jax.contracts import VOCAB_DIR, VOCAB_FILE
from soda_jax.data.cache_vocab import levanter_tokenizer_path
from soda_jax.data.packing import document_lm_dataset

DEFAULT_MIXTURE_BLOCK_SIZE = 2048
"""Sequences per mixture block: within a block the component counts match the weights exactly."""


@dataclass(frozen=True)
class BlockShuffle:
    """Hierarchical shuffle of a component's sequences (levanter's `BlockShuffleConfig`)."""

    io_block_size: int = 256
    """Sequences read contiguously as one block."""
    window_blocks: int = 512
    """Blocks shuffled together in one window."""
    perm_type: str = "feistel"
    """Permutation levanter uses within a window."""

    def levanter_config(self) -> BlockShuffleConfig:
        return BlockShuffleConfig(
            io_block_size=self.io_block_size, window_blocks=self.window_blocks, perm_type=self.perm_type
        )


DEFAULT_SHUFFLE = BlockShuffle()
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
                and component.pack in (None, False)  # unpacked: levanter packs a text component only when asked
            ):
                datasets[name] = document_lm_dataset(
                    caches[name], Pos, eos_id=eos_id, block_cross_document_attention=self.block_cross_document_attention
                )
        return datasets


@dataclass(frozen=True)
class MixtureSpec:
    """The data of a training run in soda-jax's terms; the training step versions this, not levanter's config."""

    components: Mapping[str, Any]
    """Name -> cache root (train/, validation/, vocab/), or the step (`ExecutorStep`/`InputName`) writing it."""
    train_weights: Mapping[str, float]
    """Name -> sampling weight, normalised; 0 for a validation-only component."""
    name: str = ""
    """The named mix this came from (``soda_jax.recipes.data_mixes.MIXES``), for people reading versions."""
    tokenizer: str | None = None
    """Full-vocabulary tokenizer directory; None: the first component's ``vocab/tokenizer``."""
    mixture_block_size: int = DEFAULT_MIXTURE_BLOCK_SIZE
    """Sequences per mixture block."""
    shuffle: BlockShuffle | bool = DEFAULT_SHUFFLE
    """How each component's sequences are shuffled (False: in order)."""
    mask_document_boundaries: bool = True
    """Zero the loss where a packed sequence crosses from one document into the next."""
    block_cross_document_attention: bool = True
    """Mask attention across document boundaries within a packed sequence."""
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Name -> evaluation tags (levanter's tagged evaluation groups components by them)."""
    document_format: Literal["text", "chat"] = "text"
    """How the caches' documents are read: "text" (pretraining token caches) or "chat" (fine-tuning
    prompt/response rows with an assistant mask, `soda_jax.data.sft.SFT_FORMAT`, packed whole-document)."""

    @property
    def tokenizer_path(self) -> Any:
        """The tokenizer levanter loads: ``tokenizer``, or the first component's full-vocabulary one."""
        return self.tokenizer or levanter_tokenizer_path(next(iter(self.components.values())))

    def cache_roots(self) -> dict[str, str]:
        """Component name -> cache root (after the executor resolved the inputs to paths)."""
        unresolved = sorted(name for name, root in self.components.items() if not isinstance(root, str))
        if unresolved:
            raise ValueError(f"data components {unresolved} are not paths yet: run the spec through the executor")
        return dict(self.components)

    def lm_config(self) -> SodaLmDataConfig:
        """levanter's data config for this mix (built inside the training step, never versioned)."""
        shuffle = self.shuffle.levanter_config() if isinstance(self.shuffle, BlockShuffle) else self.shuffle
        if self.document_format == "chat":
            from soda_jax.data.sft import SFT_FORMAT  # the fine-tuning layout's one definition

            document_format, pack = SFT_FORMAT, True
        else:
            document_format, pack = TextLmDatasetFormat(), False
        return SodaLmDataConfig(
            tokenizer=self.tokenizer_path,
            cache_dir=None,
            auto_build_caches=False,
            components={
                name: DatasetComponent(
                    cache_dir=root, format=document_format, pack=pack, tags=list(self.tags.get(name, ()))
                )
                for name, root in self.cache_roots().items()
            },
            train_weights=dict(self.train_weights),
            mixture_block_size=self.mixture_block_size,
            shuffle=shuffle,
            block_cross_document_attention=self.block_cross_document_attention,
            mask_document_boundaries=self.mask_document_boundaries,
        )


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
    name: str = "",
    tokenizer: str | None = None,
    mixture_block_size: int = DEFAULT_MIXTURE_BLOCK_SIZE,
    shuffle: bool | BlockShuffle = DEFAULT_SHUFFLE,
    mask_document_boundaries: bool = True,
    block_cross_document_attention: bool = True,
    tags: Mapping[str, Sequence[str]] | None = None,
) -> MixtureSpec:
    """A mixture over token caches written by ``interleave`` / ``tokenize_text``.

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
    _check_shared_vocab(components)
    return MixtureSpec(
        components=dict(components),
        train_weights={component: 0.0 for component in components} | normalized_weights(weights),
        name=name,
        tokenizer=tokenizer,
        mixture_block_size=mixture_block_size,
        shuffle=shuffle,
        mask_document_boundaries=mask_document_boundaries,
        block_cross_document_attention=block_cross_document_attention,
        tags={component: tuple(t) for component, t in (tags or {}).items()},
    )


def _check_shared_vocab(components: Mapping[str, str]) -> None:
    seen: dict[str, tuple[str, dict]] = {}
    for name, root in components.items():
        if not isinstance(root, str):
            continue  # an executor input: checked when the training step loads the caches
        recorded = fileio.read_json_or_none(fileio.join(root, VOCAB_DIR, VOCAB_FILE))
        if recorded is None:
            continue  # not written yet (an experiment being defined): the training step loads it
        for other, (other_root, other_vocab) in seen.items():
            if recorded != other_vocab:
                raise ValueError(f"components {other} ({other_root}) and {name} ({root}) use different vocabularies")
        seen[name] = (root, recorded)

"""Supervised fine-tuning data: prompt/response documents in levanter's chat-cache layout.

A fine-tuning cache holds one row per task instance with two fields, exactly what levanter's
`ChatLmDatasetFormat` preprocessing stores: ``input_ids`` (``prompt + response``) and
``assistant_masks`` (0 on the prompt, 1 on the response, its final <eos> included). That is the
row levanter's `ChatProcessor` would write for SODA's SFT template `SODA_SFT_TEMPLATE` with
``mask_user_turns=True``; we build the ids directly from the vocabulary (`sft_prompts`) rather
than render audio ids through a Jinja template as strings.

Training reads these caches with levanter's own machinery, unchanged (`sft_mixture`): a
`DatasetComponent` in `ChatLmDatasetFormat` -> levanter's `ChatDataset`, which packs whole
documents into each sequence (`GreedyPrepackedDataset`, padding the rest), gives each document
its own segment id (no attention across documents), and turns the mask into the loss weight of
the position *before* each response token (``roll(mask, -1)``): the loss is the mean over
response tokens only, every prompt token and the padding weighted 0.

A pair longer than the training sequence is never cut by the packer: `fit_pair` applies the
stated rule (skip it, or keep the prompt and cut the response's tail) when the cache is written,
and the builders count it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from levanter.data.text.formats import ChatLmDatasetFormat
from levanter.store.cache import TreeCache

from soda_jax.data.caches import DEFAULT_WRITE_BATCH, BufferedCacheWriter
from soda_jax.data.mixture import soda_mixture
from soda_jax.data.sft_prompts import PromptResponse

INPUT_IDS = "input_ids"
RESPONSE_MASK = "assistant_masks"
"""levanter's name for the per-token response mask of a processed chat row."""
SODA_SFT_TEMPLATE = (
    "{{ bos_token }}{{ messages[0]['content'] }}"
    "{% generation %}{{ messages[1]['content'] }}{{ eos_token }}{% endgeneration %}"
)
"""SODA's minimal SFT chat template; our rows are what it renders (levanter validates the
``{% generation %}`` block when it opens the cache)."""
SFT_FORMAT = ChatLmDatasetFormat(chat_template=SODA_SFT_TEMPLATE, mask_user_turns=True)
"""The levanter format every fine-tuning cache is read with."""

OVERLONG_RULES = ("skip", "truncate")
"""What a pair longer than the sequence becomes: dropped (default: the model always sees the
answer end in <eos>), or its response cut to fit (the prompt kept whole; skipped if the prompt
alone leaves no room for a response token)."""
SKIP_TOO_LONG = "too_long"
SKIP_PROMPT_TOO_LONG = "prompt_too_long"
TRUNCATED = "truncated_responses"


def sft_row(pair: PromptResponse) -> dict[str, np.ndarray]:
    """The cache row of one pair: ids and the response mask."""
    ids = np.concatenate([pair.prompt, pair.response]).astype(np.int32)
    mask = np.concatenate([np.zeros(len(pair.prompt), np.int32), np.ones(len(pair.response), np.int32)])
    return {INPUT_IDS: ids, RESPONSE_MASK: mask}


def fit_pair(pair: PromptResponse, max_tokens: int, overlong: str) -> tuple[PromptResponse | None, str | None]:
    """``pair`` made to fit ``max_tokens`` by the `OVERLONG_RULES` rule ``overlong``.

    Returns the pair to write (None when skipped) and what happened (None, a skip reason, or
    `TRUNCATED`).
    """
    if overlong not in OVERLONG_RULES:
        raise ValueError(f"overlong must be one of {OVERLONG_RULES}, got {overlong!r}")
    if len(pair.prompt) + len(pair.response) <= max_tokens:
        return pair, None
    if overlong == "skip":
        return None, SKIP_TOO_LONG
    room = max_tokens - len(pair.prompt)
    if room < 1:
        return None, SKIP_PROMPT_TOO_LONG
    return PromptResponse(prompt=pair.prompt, response=pair.response[:room]), TRUNCATED


def exemplar() -> dict[str, np.ndarray]:
    return {INPUT_IDS: np.zeros((0,), np.int32), RESPONSE_MASK: np.zeros((0,), np.int32)}


def read_sft_rows(split_dir: str) -> list[dict[str, np.ndarray]]:
    """Every row of a fine-tuning split, in order (for tests and small inspections)."""
    cache = TreeCache.load(split_dir, exemplar())
    return list(cache.get_batch_sync(list(range(len(cache))))) if len(cache) else []


class SftCacheWriter(BufferedCacheWriter):
    """Writes prompt/response pairs as rows of one levanter cache (levanter's chat row layout)."""

    def __init__(self, cache_dir: str, *, batch_size: int = DEFAULT_WRITE_BATCH):
        super().__init__(cache_dir, exemplar(), batch_size=batch_size)
        self.prompt_tokens = 0
        self.response_tokens = 0

    def write(self, pair: PromptResponse) -> None:
        self.prompt_tokens += len(pair.prompt)
        self.response_tokens += len(pair.response)
        self.write_row(sft_row(pair))

    def stats(self) -> dict[str, int]:
        return {
            "documents": self.documents,
            "prompt_tokens": self.prompt_tokens,
            "response_tokens": self.response_tokens,
        }


def sft_mixture(components: Mapping[str, Any], weights: Mapping[str, float] | None = None, **options: Any):
    """The `MixtureSpec` of fine-tuning caches (roots or the steps writing them): `soda_mixture`
    with every component read in `SFT_FORMAT` and packed whole-document (levanter's `ChatDataset`).
    ``weights`` default to equal.
    """
    spec = soda_mixture(components, weights or {name: 1.0 for name in components}, **options)
    return dataclasses.replace(spec, document_format="chat")

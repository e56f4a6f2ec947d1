"""Packing documents into fixed-length training sequences, with loss masks at document boundaries.

Levanter's `TokenSeqDataset` concatenates a cache's documents and cuts ``seq_len`` windows (no
padding, no token dropped; a window may start inside a document), and `CausalLmDataset` turns a
window into an example whose attention is blocked across documents (segment ids from EOS). What
it does not do is mask the loss *at* a boundary: the position holding one document's <eos> is
trained to predict the next document's <bos>. `document_lm_dataset` adds exactly that mask
(``loss_weight = 0`` where the token is <eos>) and otherwise is levanter's own pipeline.

Levanter's `PackedTokenDataset` (``pack=True``) is not used: it trains on its zero padding and
truncates documents longer than ``seq_len``, which would drop most of a long recording
(tests/test_mixture.py shows both).
"""

from __future__ import annotations

import numpy as np
from haliax import Axis
from levanter.data import AsyncDataset
from levanter.data.text.datasets import CausalLmDataset, TokenSeqDataset, TokenSeqDict
from levanter.store.cache import TreeCache

LOSS_WEIGHTS = "loss_weights"
"""The key levanter's `CausalLmDataset` reads per-token loss weights from."""


def boundary_loss_mask(tokens: np.ndarray, eos_id: int) -> np.ndarray:
    """True everywhere except at <eos>, whose next token belongs to another document."""
    return np.asarray(tokens) != eos_id


class _WithBoundaryMask:
    """Picklable map function adding `boundary_loss_mask` as weights to a token window."""

    def __init__(self, eos_id: int):
        self.eos_id = eos_id

    def __call__(self, example: TokenSeqDict) -> TokenSeqDict:
        tokens = example["input_ids"]
        return {"input_ids": tokens, LOSS_WEIGHTS: boundary_loss_mask(tokens, self.eos_id).astype(np.float32)}


def document_lm_dataset(
    cache: TreeCache, Pos: Axis, *, eos_id: int, block_cross_document_attention: bool = True
) -> AsyncDataset:
    """``seq_len``-token windows of a document cache as levanter `GrugLmExample`s.

    Attention never crosses a document boundary (segment ids from <eos>) and no loss is taken
    on predicting across one.
    """
    windows = TokenSeqDataset(cache, Pos.size).map(_WithBoundaryMask(eos_id))
    return CausalLmDataset(windows, Pos, eos_id=eos_id, block_cross_document_attention=block_cross_document_attention)


def pack_windows(tokens: np.ndarray, seq_len: int, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """In-memory equivalent of `document_lm_dataset`'s tokens and loss mask (before levanter's
    causal shift masks each window's last position): a stream of documents back to back, cut
    into ``[n, seq_len]`` windows (a view; the incomplete tail is dropped, as levanter does)."""
    n = tokens.shape[0] // seq_len
    windows = tokens[: n * seq_len].reshape(n, seq_len)
    return windows, boundary_loss_mask(windows, eos_id)

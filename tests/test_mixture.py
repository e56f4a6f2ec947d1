"""Mixtures and packing through levanter's own datasets: weights, boundary masks, SODA's mix."""

from __future__ import annotations

import asyncio

import haliax as hax
import jax
import numpy as np
import pytest
from helpers_data import save_test_tokenizer
from levanter.data.text.datasets import CausalLmDataset, PackedTokenDataset, TokenSeqDataset
from levanter.schedule import BatchSchedule

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data import caches
from soda_jax.data.cache_vocab import save_cache_vocab
from soda_jax.data.mixture import soda_mixture
from soda_jax.data.packing import document_lm_dataset
from soda_jax.recipes.data_mixes import MIXES, SODA_FINAL_TEXT_SHARE, SODA_SPEECH_TOKENS_B, mixture_config

SEQ_LEN = 32
SAMPLED_SEQUENCES = 10_000
PAD_ID = 0
SIGMAS = 4.0
"""Tolerance of the weight test in binomial standard deviations (a false failure ~ 1 in 15,000)."""


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> AudioTextVocab:
    return AudioTextVocab.from_pretrained(save_test_tokenizer(str(tmp_path_factory.mktemp("tok"))))


def write_component(root: str, vocab: AudioTextVocab, documents: list[np.ndarray]) -> str:
    """A cache root as the steps write it: train/ and validation/ (sharded), vocab/."""
    for split in caches.SPLITS:
        caches.write_documents(f"{root}/{split}/only", documents)
        caches.finalize_sharded_cache(f"{root}/{split}", ["only"])
    save_cache_vocab(vocab, root)
    return root


@pytest.fixture(scope="module")
def soda_components(tmp_path_factory, vocab) -> dict[str, str]:
    """One cache per SODA final-mix component; every token of component i is ``i + 10``, and each
    document fills exactly one sequence, so a sampled sequence names its component."""
    root = tmp_path_factory.mktemp("mix")
    components = {}
    for i, name in enumerate(MIXES["soda_final"]):
        docs = [np.full(SEQ_LEN, 10 + i, dtype=np.int32) for _ in range(16)]
        components[name] = write_component(str(root / name), vocab, docs)
    return components


def test_mixture_respects_weights_over_10k_sequences(soda_components):
    weights = MIXES["soda_final"]
    config = mixture_config("soda_final", soda_components, mixture_block_size=512).lm_config()
    Pos = hax.Axis("position", SEQ_LEN)
    mixture = config.train_set(Pos, BatchSchedule(64), key=jax.random.PRNGKey(0)).dataset  # levanter MixtureDataset
    examples = mixture.as_sync_dataset().get_batch(list(range(SAMPLED_SEQUENCES)))
    component_of = {10 + i: name for i, name in enumerate(weights)}
    counts = {name: 0 for name in weights}
    for example in examples:
        counts[component_of[int(example.tokens[0])]] += 1
    for name, p in weights.items():
        observed = counts[name] / SAMPLED_SEQUENCES
        sigma = np.sqrt(p * (1 - p) / SAMPLED_SEQUENCES)
        assert abs(observed - p) < SIGMAS * sigma, (name, observed, p)


def test_soda_final_mix_is_131_73_37_plus_5_percent_text():
    mix = MIXES["soda_final"]
    assert sum(mix.values()) == pytest.approx(1.0)
    assert mix["nemotron_cc"] == pytest.approx(SODA_FINAL_TEXT_SHARE)
    speech_total = sum(SODA_SPEECH_TOKENS_B.values())
    for name, tokens in SODA_SPEECH_TOKENS_B.items():
        assert mix[name] == pytest.approx((1 - SODA_FINAL_TEXT_SHARE) * tokens / speech_total)
    assert [round(mix[n], 3) for n in ("yodas2", "emilia_yodas", "emilia")] == [0.516, 0.288, 0.146]


@pytest.fixture(scope="module")
def ragged(tmp_path_factory, vocab):
    """Documents of assorted lengths <bos> t.. <eos>, with text ids unique per document."""
    rng = np.random.default_rng(5)
    docs = [
        np.concatenate([[vocab.bos_id], np.full(int(rng.integers(3, 50)), 20 + i), [vocab.eos_id]]).astype(np.int32)
        for i in range(30)
    ]
    root = write_component(str(tmp_path_factory.mktemp("ragged")), vocab, docs)
    return docs, root


def test_packing_masks_loss_and_attention_at_document_boundaries(ragged, vocab):
    docs, root = ragged
    Pos = hax.Axis("position", SEQ_LEN)
    cache = caches.open_cache(f"{root}/train")
    packed = document_lm_dataset(cache, Pos, eos_id=vocab.eos_id).as_sync_dataset()
    flat = np.concatenate(docs)
    doc_index = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    n = len(packed)
    assert n == flat.size // SEQ_LEN
    for i, example in enumerate(packed.get_batch(list(range(n)))):
        window = slice(i * SEQ_LEN, (i + 1) * SEQ_LEN)
        tokens, weight = np.asarray(example.tokens), np.asarray(example.loss_weight)
        np.testing.assert_array_equal(tokens, flat[window])  # no token lost, no padding
        # loss at position j predicts token j+1: zero exactly where j+1 is in another document
        same_doc_next = doc_index[window][1:] == doc_index[window][:-1]
        np.testing.assert_array_equal(weight[:-1] > 0, same_doc_next)
        assert weight[-1] == 0
        q_segments, _ = example.attn_mask.segment_ids
        _, first = np.unique(doc_index[window], return_index=True)
        seg = np.asarray(q_segments)
        # attention blocks across documents: segment ids change exactly at document starts
        np.testing.assert_array_equal(np.flatnonzero(np.diff(seg)) + 1, np.sort(first)[1:])

    # levanter's own CausalLmDataset leaves the loss on at <eos> (what the mask fixes)
    plain = CausalLmDataset(TokenSeqDataset(cache, SEQ_LEN), Pos, eos_id=vocab.eos_id).as_sync_dataset()
    plain_weights = np.concatenate([np.asarray(e.loss_weight)[:-1] for e in plain.get_batch(list(range(n)))])
    masked_weights = np.concatenate([np.asarray(e.loss_weight)[:-1] for e in packed.get_batch(list(range(n)))])
    assert plain_weights.sum() > masked_weights.sum()


def test_levanter_packed_dataset_trains_on_padding_and_truncates(ragged, vocab):
    """Why `pack=True` is not used: levanter's PackedTokenDataset puts loss on zero padding and
    cuts documents longer than the sequence (here, one 2 x SEQ_LEN document loses half its tokens)."""
    _, root = ragged
    long_doc = np.concatenate([[vocab.bos_id], np.full(2 * SEQ_LEN - 2, 7), [vocab.eos_id]]).astype(np.int32)
    cache_dir = f"{root}-long"
    short_doc = np.array([vocab.bos_id, 9, 9, 9, vocab.eos_id], dtype=np.int32)
    caches.write_documents(cache_dir, [long_doc, short_doc])
    packed = PackedTokenDataset(caches.open_cache(cache_dir), hax.Axis("position", SEQ_LEN)).as_sync_dataset()
    examples = packed.get_batch(list(range(len(packed))))
    seen = sum(int((np.asarray(e.tokens) == 7).sum()) for e in examples)
    assert seen < 2 * SEQ_LEN - 2
    pad = PAD_ID  # levanter pads with zeros; no test document contains id 0
    padded = [e for e in examples if np.asarray(e.tokens)[-1] == pad]
    assert padded
    for e in padded:
        tokens, weight = np.asarray(e.tokens), np.asarray(e.loss_weight)
        first_pad = int(np.argmax(tokens == pad))
        assert weight[first_pad:-1].all()  # loss on predicting padding


def test_validation_sets_cover_every_component_and_tokenizer_has_full_vocab(soda_components, vocab):
    config = soda_mixture(soda_components, {"yodas2": 1.0}).lm_config()  # other components: validation only
    assert len(config.the_tokenizer) == vocab.size and config.the_tokenizer.eos_token_id == vocab.eos_id
    validation = config.validation_sets(hax.Axis("position", SEQ_LEN))
    assert set(validation) == set(soda_components)
    assert config.train_weights == {name: (1.0 if name == "yodas2" else 0.0) for name in soda_components}


def test_mixture_rejects_unknown_weights_and_mixed_vocabularies(soda_components, tmp_path):
    with pytest.raises(ValueError, match="unknown components"):
        soda_mixture(soda_components, {"librispeech": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        soda_mixture(soda_components, {"yodas2": -1.0})
    other = AudioTextVocab.from_pretrained(save_test_tokenizer(str(tmp_path / "tok")))
    odd_root = str(tmp_path / "odd")
    write_component(
        odd_root, AudioTextVocab(other.text_tokenizer, codebook_size=1024), [np.arange(1, 5, dtype=np.int32)]
    )
    with pytest.raises(ValueError, match="different vocabularies"):
        soda_mixture({"yodas2": soda_components["yodas2"], "odd": odd_root}, {"yodas2": 1.0})


def test_token_windows_are_read_back_unchanged(ragged):
    docs, root = ragged
    cache = caches.open_cache(f"{root}/validation")
    windows = TokenSeqDataset(cache, SEQ_LEN)
    n = asyncio.run(windows.async_len())
    got = np.concatenate([w["input_ids"] for w in asyncio.run(windows.get_batch(list(range(n))))])
    np.testing.assert_array_equal(got, np.concatenate(docs)[: n * SEQ_LEN])

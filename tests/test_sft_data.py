"""Fine-tuning data: prompt formats, the cache rows, skipped and over-long input, and the loss
levanter computes on a packed batch (response tokens only)."""

from __future__ import annotations

import json
import os

import equinox as eqx
import haliax as hax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from haliax import Axis
from helpers_data import save_test_tokenizer
from helpers_sft import write_word_corpus
from levanter.models.loss import next_token_loss
from levanter.schedule import BatchSchedule

from soda_jax.audio.codec import CodecConfig
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data.caches import TRAIN, VALIDATION
from soda_jax.data.sft import INPUT_IDS, RESPONSE_MASK, read_sft_rows, sft_mixture
from soda_jax.data.sft_prompts import asr_pair, s2st_pair, tts_pair
from soda_jax.data.sft_sources import JsonlTaskSource, TokenizedTaskSource
from soda_jax.data.sft_step import SftDataConfig, build_sft_data
from soda_jax.models import TEST_TINY
from soda_jax.models.shapes import qwen3_config
from soda_jax.training.loss import next_token_loss_fn

SEQ_LEN = 64
TEST_CODEBOOK_SIZE = 16
"""Small codebooks keep the vocabulary (and the LM head) tiny: 300 text + 4 + 8 x 16 audio ids."""


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> str:
    return save_test_tokenizer(str(tmp_path_factory.mktemp("tokenizer")))


@pytest.fixture(scope="module")
def vocab(tokenizer) -> AudioTextVocab:
    return AudioTextVocab.from_pretrained(tokenizer)


def test_prompt_formats_are_the_inference_prompts(vocab):
    audio, text = vocab.audio_offset + np.arange(16, dtype=np.int32), vocab.encode_text("hello world")
    asr = asr_pair(vocab, audio, text)
    assert asr.prompt.tolist() == [vocab.bos_id, vocab.audio_start_id, *audio, vocab.audio_end_id, vocab.text_start_id]
    assert asr.response.tolist() == [*text, vocab.text_end_id, vocab.eos_id]
    tts = tts_pair(vocab, text, audio)
    assert tts.prompt.tolist() == [vocab.bos_id, vocab.text_start_id, *text, vocab.text_end_id, vocab.audio_start_id]
    assert tts.response.tolist() == [*audio, vocab.audio_end_id, vocab.eos_id]
    s2st = s2st_pair(vocab, audio, audio[:8], target_text=text, source_text=text)
    assert s2st.prompt.tolist() == [
        vocab.bos_id,
        vocab.audio_start_id,
        *audio,
        vocab.audio_end_id,
        vocab.text_start_id,
        *text,
        vocab.text_end_id,
        vocab.text_start_id,
    ]
    assert s2st.response.tolist() == [
        *text,
        vocab.text_end_id,
        vocab.audio_start_id,
        *audio[:8],
        vocab.audio_end_id,
        vocab.eos_id,
    ]
    audio_only = s2st_pair(vocab, audio, audio[:8], response="audio")
    assert audio_only.prompt[-1] == vocab.audio_start_id and audio_only.response.tolist() == [
        *audio[:8],
        vocab.audio_end_id,
        vocab.eos_id,
    ]


def _write_wav(path: str, seconds: float) -> None:
    t = np.arange(int(24000 * seconds)) / 24000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 24000)


@pytest.mark.parametrize("overlong", ["skip", "truncate"])
def test_bad_jsonl_lines_and_overlong_pairs_are_counted(tmp_path, tokenizer, overlong):
    _write_wav(str(tmp_path / "a.wav"), 0.4)  # 5 frames: 40 audio ids
    lines = [
        {"id": "asr", "prompt": [{"audio": "a.wav"}], "response": [{"text": "hello world"}]},
        {"id": "tts", "prompt": [{"text": "hello"}], "response": [{"audio": str(tmp_path / "a.wav")}]},
        {"id": "gone", "prompt": [{"audio": "missing.wav"}], "response": [{"text": "hello"}]},
        {"id": "empty", "prompt": [], "response": [{"text": "hello"}]},
        {
            "id": "long",
            "prompt": [{"text": "hello"}],
            "response": [{"text": "the quick brown fox jumps over the lazy dog " * 8}],
        },
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join([json.dumps(x) for x in lines] + ["{not json"]) + "\n")
    out = str(tmp_path / f"sft-{overlong}")
    stats = build_sft_data(
        SftDataConfig(
            source=JsonlTaskSource(str(path)),
            output_path=out,
            tokenizer=tokenizer,
            max_tokens=SEQ_LEN,
            overlong=overlong,
            validation_fraction=0.0,
            codec=CodecConfig(pretrained=None, random_size="tiny"),
        )
    )
    expected_skips = {"missing_audio": 1, "empty_prompt": 1, "bad_json": 1}
    if overlong == "skip":
        expected_skips["too_long"] = 1
    assert stats["skipped"] == expected_skips
    assert stats["truncated"] == (1 if overlong == "truncate" else 0)
    documents = read_sft_rows(os.path.join(out, TRAIN))
    assert len(documents) == (3 if overlong == "truncate" else 2) and stats[VALIDATION]["documents"] == 0
    for doc in documents:
        ids, mask = doc[INPUT_IDS], doc[RESPONSE_MASK]
        assert len(ids) == len(mask) <= SEQ_LEN
        assert mask[0] == 0 and mask[-1] == 1 and (np.diff(mask) >= 0).all(), "prompt (0s) then response (1s)"
    if overlong == "truncate":
        assert len(documents[-1][INPUT_IDS]) == SEQ_LEN, "the response cut to fill the sequence"


@pytest.fixture(scope="module")
def asr_cache(tmp_path_factory, tokenizer) -> str:
    root = tmp_path_factory.mktemp("asr")
    corpus = write_word_corpus(str(root / "tokenized"), recordings=12, codebook_size=TEST_CODEBOOK_SIZE)
    build_sft_data(
        SftDataConfig(
            source=TokenizedTaskSource(corpus, "asr"),
            output_path=str(root / "sft"),
            tokenizer=tokenizer,
            max_tokens=SEQ_LEN,
        )
    )
    return str(root / "sft")


def _response_positions(tokens: np.ndarray, vocab: AudioTextVocab) -> np.ndarray:
    """Positions holding a response token, found from the ASR layout alone (after the prompt's
    closing <|text_start|>, up to and including <eos>), independently of levanter's masks."""
    inside, out = False, np.zeros(len(tokens), bool)
    for i, token in enumerate(tokens):
        out[i] = inside
        if token == vocab.text_start_id:
            inside = True
        elif token == vocab.eos_id:
            inside = False
    return out


def test_batch_loss_is_the_mean_over_response_tokens(asr_cache, vocab):
    data = sft_mixture({"asr": asr_cache}).lm_config()  # levanter's config, as the training step builds it
    Pos, Batch = Axis("position", SEQ_LEN), Axis("batch", 4)
    dataset = data.train_set(Pos, BatchSchedule(Batch.size), key=jax.random.PRNGKey(0)).as_sync_dataset()
    examples = [dataset[i] for i in range(Batch.size)]
    batch = jax.tree.map(lambda *xs: hax.stack(Batch, xs), *examples, is_leaf=lambda x: isinstance(x, hax.NamedArray))
    vocab = AudioTextVocab(vocab.text_tokenizer, codebook_size=TEST_CODEBOOK_SIZE)
    Vocab = Axis("vocab", vocab.size)
    model = qwen3_config(TEST_TINY, SEQ_LEN, gradient_checkpointing=False, scan_layers=False).build(
        Vocab, key=jax.random.PRNGKey(1)
    )

    loss = float(eqx.filter_jit(next_token_loss_fn("full", z_loss_weight=None))(model, batch))
    fused = float(eqx.filter_jit(next_token_loss_fn("fused", z_loss_weight=None))(model, batch))

    tokens = np.asarray(batch.tokens.array)
    logits = np.asarray(eqx.filter_jit(lambda m, b: m(b.tokens, b.attn_mask).array)(model, batch), dtype=np.float64)
    log_probs = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - logits.max(-1, keepdims=True)
    )
    nll = []
    for b in range(Batch.size):
        targets = _response_positions(tokens[b], vocab)
        assert targets.any() and not targets.all()
        nll += [-log_probs[b, p - 1, tokens[b, p]] for p in np.flatnonzero(targets) if p > 0]
    by_hand = float(np.mean(nll))
    print(f"loss {loss:.6f} fused {fused:.6f} by hand over {len(nll)} response tokens {by_hand:.6f}")
    assert loss == pytest.approx(by_hand, rel=1e-5)
    assert fused == pytest.approx(by_hand, rel=1e-5)

    # Same logits, one target changed: a prompt token's changes nothing, a response token's does.
    named_logits = hax.named(jnp.asarray(logits, jnp.float32), ("batch", "position", "vocab"))
    masked_loss = eqx.filter_jit(lambda lg, targets, w: next_token_loss(Pos, Vocab, lg, targets, loss_weight=w))

    def loss_with_targets(new_tokens):
        return float(
            masked_loss(named_logits, hax.named(jnp.asarray(new_tokens), batch.tokens.axes), batch.loss_weight)
        )

    base = loss_with_targets(tokens)
    response = np.flatnonzero(_response_positions(tokens[0], vocab))
    prompt = np.flatnonzero(~_response_positions(tokens[0], vocab) & (tokens[0] != 0))
    changed_prompt, changed_response = tokens.copy(), tokens.copy()
    changed_prompt[0, prompt[3]] = (tokens[0, prompt[3]] + 1) % vocab.size
    changed_response[0, response[1]] = (tokens[0, response[1]] + 1) % vocab.size
    assert loss_with_targets(changed_prompt) == base
    assert loss_with_targets(changed_response) != base


def test_tokenized_corpus_gives_one_pair_per_segment(asr_cache, tmp_path, tokenizer):
    with open(os.path.join(asr_cache, "stats.json")) as f:
        stats = json.load(f)
    assert stats[TRAIN]["documents"] + stats[VALIDATION]["documents"] == 24 and stats["skipped"] == {}


def test_default_sft_starts_from_its_base_step_and_versions_the_source():
    from soda_jax.data.mixture import soda_mixture
    from soda_jax.execution.versioning import compute_identities, dependencies
    from soda_jax.recipes.defaults import default_sft, default_sft_data, default_train
    from soda_jax.training import TrainRecipe

    base = default_train(
        "base",
        soda_mixture({"speech": "/caches/speech"}, {"speech": 1.0}),
        TEST_TINY,
        TrainRecipe(seq_len=64, batch_size=8, num_train_steps=4),
    )
    task = default_sft_data("task", JsonlTaskSource("/tasks.jsonl"), tokenizer="/tokenizer", codec=CodecConfig())
    tuned = default_sft("tuned", base, task)
    assert dependencies(tuned) == [task, base]
    assert tuned.config.model.value == TEST_TINY and tuned.config.init_from.step is base
    ids = compute_identities([base, task, tuned], "/prefix")
    assert any(
        f"input:checkpoints/base-{ids[id(base)].hash}" in str(v) for v in ids[id(tuned)].version["config"].values()
    )

    from_dirs = [default_sft("tuned", path, task, model=TEST_TINY) for path in ("/models/a", "/models/b")]
    hashes = {compute_identities([task, step], "/prefix")[id(step)].hash for step in from_dirs}
    assert len(hashes) == 2, "the source path is part of the version"
    with pytest.raises(ValueError, match="needs model="):
        default_sft("tuned", "/models/a", task)
    with pytest.raises(ValueError, match="do not fit sequences of 64"):
        default_sft("tuned", base, task, TrainRecipe(seq_len=64, batch_size=8, num_train_steps=4))

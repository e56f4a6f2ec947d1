"""The KV-cached decode loop against the model's own full forward, the logits processor, seeds.

Tiny random TEST_TINY models on the 432-id test vocabulary; unsharded and on a 4 x 2 mesh of the
8 fake CPU devices. Shapes are shared across tests so each compiled bucket is reused.
"""

from __future__ import annotations

import re

import haliax as hax
import jax
import numpy as np
import pytest
from helpers_inference import MESH_4X2, UNSHARDED, make_vocab, random_model

from soda_jax.audio.codec import MimiCodec, tiny_mimi_config
from soda_jax.data.parse import AUDIO, span_codes
from soda_jax.inference import decoder
from soda_jax.inference.generate import (
    FINISH_LENGTH,
    FINISH_STOP,
    MIN_NEW_BUCKET,
    MIN_SEGMENT,
    _generate_bucket,
    batch_bucket,
    bucket,
    bucket_arguments,
    full_logits,
    generate,
    score,
    segment_ends,
)
from soda_jax.inference.parse import generated_audio, generated_spans
from soda_jax.inference.prompts import tts_prompt
from soda_jax.inference.sampling import SamplingParams

LOGIT_ATOL = 2e-4
"""Cached decode vs full forward, float32: the two sum attention in different orders and shapes
(measured max difference ~1e-5 on these models); far below any gap between competing tokens."""
SCORE_ATOL = 1e-5
"""`score` (packed rows, blockwise log-sum-exp) vs the log-softmax of the full forward's logits."""
NEW_TOKENS = 12
REFERENCE_WIDTH = 32
"""Full forwards run on rows right-padded to this width (one compile; causal, so padding after a
sequence cannot change its logits)."""


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return make_vocab(str(tmp_path_factory.mktemp("vocab")))


@pytest.fixture(scope="module")
def models(vocab):
    return {
        "unsharded": random_model(vocab, parallelism=UNSHARDED),
        "mesh4x2": random_model(vocab, parallelism=MESH_4X2),
    }


def reference_logits(loaded, sequences) -> list[np.ndarray]:
    """The model's own full forward (levanter's ``__call__``, causal mask) for each sequence."""
    rows = np.zeros((len(sequences), REFERENCE_WIDTH), np.int32)
    for i, s in enumerate(sequences):
        rows[i, : len(s)] = s
    logits = full_logits(loaded, rows)
    return [logits[i, : len(s)] for i, s in enumerate(sequences)]


def mixed_prompts(vocab) -> list[np.ndarray]:
    """Prompts of lengths 3, 9 and 17 (three different left paddings in one batch)."""
    rng = np.random.default_rng(0)
    return [
        np.array([vocab.bos_id, vocab.text_start_id, 40], np.int32),
        tts_prompt(vocab, "hello world"),
        np.concatenate(
            [
                [vocab.bos_id, vocab.audio_start_id],
                vocab.audio_offset + rng.integers(0, vocab.size - vocab.audio_offset, 15),
            ]
        ).astype(np.int32),
    ]


@pytest.mark.parametrize("mesh", ["unsharded", "mesh4x2"])
def test_cached_logits_equal_full_forward_at_every_step(models, vocab, mesh):
    loaded = models[mesh]
    params = SamplingParams(temperature=1.0, max_new_tokens=NEW_TOKENS, seed=3, audio_constraint=False)
    generations = generate(loaded, mixed_prompts(vocab), params, keep_logits=True)
    sequences = [np.concatenate([g.prompt, g.tokens]) for g in generations]
    scores = score(loaded, sequences)
    for g, reference, scored in zip(generations, reference_logits(loaded, sequences), scores):
        assert g.tokens.shape == (NEW_TOKENS,) and g.finish_reason == FINISH_LENGTH
        # the logits that chose new token t are the full forward's at the position before it
        np.testing.assert_allclose(g.logits, reference[g.prompt.size - 1 : -1], atol=LOGIT_ATOL, rtol=0)
        np.testing.assert_allclose(g.logprobs, scored[g.prompt.size - 1 :], atol=LOGIT_ATOL)


def test_sharded_and_unsharded_generate_the_same(models, vocab):
    params = SamplingParams(temperature=0.0, max_new_tokens=NEW_TOKENS, audio_constraint=False)
    one = generate(models["unsharded"], mixed_prompts(vocab), params)
    eight = generate(models["mesh4x2"], mixed_prompts(vocab), params)
    for a, b in zip(one, eight):
        np.testing.assert_array_equal(a.tokens, b.tokens)


def test_greedy_is_argmax_of_the_full_forward_token_by_token(models, vocab):
    loaded = models["unsharded"]
    [g] = generate(
        loaded,
        [tts_prompt(vocab, "hello world")],
        SamplingParams(temperature=0.0, max_new_tokens=NEW_TOKENS, audio_constraint=False),
    )
    sequence = list(g.prompt)
    for token in g.tokens:  # rebuild the greedy continuation one full forward at a time
        [logits] = reference_logits(loaded, [sequence])
        assert int(np.argmax(logits[-1, : vocab.size])) == int(token)
        sequence.append(int(np.argmax(logits[-1, : vocab.size])))


def test_a_seed_reproduces_its_sample_whatever_the_batch(models, vocab):
    loaded = models["unsharded"]
    prompts = mixed_prompts(vocab)
    params = [
        SamplingParams(temperature=1.0, max_new_tokens=NEW_TOKENS, seed=s, audio_constraint=False) for s in (7, 8, 9)
    ]
    batch = generate(loaded, prompts, params)
    alone = generate(loaded, [prompts[1]], params[1])[0]
    again = generate(loaded, prompts, params)
    np.testing.assert_array_equal(batch[1].tokens, alone.tokens)
    for a, b in zip(batch, again):
        np.testing.assert_array_equal(a.tokens, b.tokens)
    other_seed = generate(
        loaded,
        [prompts[1]],
        SamplingParams(temperature=1.0, max_new_tokens=NEW_TOKENS, seed=99, audio_constraint=False),
    )[0]
    assert not np.array_equal(other_seed.tokens, alone.tokens)


def test_top_k_one_and_tiny_top_p_are_greedy(models, vocab):
    loaded = models["unsharded"]
    prompts = mixed_prompts(vocab)
    greedy = generate(
        loaded, prompts, SamplingParams(temperature=0.0, max_new_tokens=NEW_TOKENS, audio_constraint=False)
    )
    mixed = [
        SamplingParams(temperature=1.0, top_k=1, max_new_tokens=NEW_TOKENS, seed=1, audio_constraint=False),
        SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=NEW_TOKENS, seed=2, audio_constraint=False),
        SamplingParams(temperature=0.0, max_new_tokens=NEW_TOKENS, audio_constraint=False),
    ]
    for g, h in zip(greedy, generate(loaded, prompts, mixed)):  # per-sequence parameters in one batch
        np.testing.assert_array_equal(g.tokens, h.tokens)


def test_stop_ids_end_a_sequence_and_are_kept(models, vocab):
    loaded = models["unsharded"]
    [free] = generate(
        loaded,
        [tts_prompt(vocab, "hello world")],
        SamplingParams(temperature=0.0, max_new_tokens=NEW_TOKENS, audio_constraint=False),
    )
    stop = int(free.tokens[4])
    first = int(np.flatnonzero(free.tokens == stop)[0])
    [stopped] = generate(
        loaded,
        [tts_prompt(vocab, "hello world")],
        SamplingParams(temperature=0.0, max_new_tokens=NEW_TOKENS, stop_ids=(stop,), audio_constraint=False),
    )
    assert stopped.finish_reason == FINISH_STOP
    np.testing.assert_array_equal(stopped.tokens, free.tokens[: first + 1])


@pytest.mark.parametrize("num_codebooks", [8, 1])
def test_frame_constrained_sampling_gives_whole_decodable_frames(vocab, num_codebooks):
    loaded = random_model(vocab, num_codebooks=num_codebooks, seed=1)
    prompt = tts_prompt(vocab, "hello world")
    params = [
        SamplingParams(temperature=1.0, max_new_tokens=48, seed=s, stop_ids=(vocab.audio_end_id,)) for s in range(8)
    ]
    codec = MimiCodec.random(tiny_mimi_config(), num_codebooks=num_codebooks)
    frames_total = 0
    for g in generate(loaded, [prompt] * len(params), params):
        spans = generated_spans(vocab, g.prompt, g.tokens)  # raises on any layout error
        assert len(spans) == 1 and spans[0].kind == AUDIO
        _, cut = span_codes(spans[0], vocab, num_codebooks, repair=True)  # raises on an id out of its codebook
        audio = g.tokens[vocab.is_audio(g.tokens)]
        slots = (audio - vocab.audio_offset) // vocab.codebook_size
        np.testing.assert_array_equal(slots, np.arange(audio.size) % num_codebooks)  # codebook k at slot k
        if g.finish_reason == FINISH_STOP:
            assert audio.size % num_codebooks == 0 and cut == 0  # <|audio_end|> only after whole frames
        codes = generated_audio(vocab, g.prompt, g.tokens, num_codebooks)
        frames_total += codes.shape[1]
        if codes.shape[1]:
            [wave] = codec.decode([codes])
            assert wave.shape == (codes.shape[1] * codec.samples_per_frame,) and np.isfinite(wave).all()
    assert frames_total > 0


def test_text_spans_hold_no_audio_under_the_constraint(vocab):
    loaded = random_model(vocab, seed=2)
    prompt = np.array(
        [
            vocab.bos_id,
            vocab.audio_start_id,
            *(vocab.audio_offset + np.arange(8) * vocab.codebook_size),
            vocab.audio_end_id,
            vocab.text_start_id,
        ],
        np.int32,
    )
    params = [
        SamplingParams(temperature=1.0, max_new_tokens=NEW_TOKENS, seed=s, stop_ids=(vocab.text_end_id,))
        for s in range(4)
    ]
    for g in generate(loaded, [prompt] * 4, params):
        body = g.tokens[:-1] if g.finish_reason == FINISH_STOP else g.tokens
        assert (body < vocab.text_size).all(), g.tokens


@pytest.mark.parametrize("scan_layers", [True, False])
def test_cached_logits_equal_full_forward_across_loop_segments(vocab, scan_layers):
    """Enough new tokens for two segments of the decode loop (the cache grows between them)."""
    loaded = random_model(vocab, scan_layers=scan_layers, seed=4)
    new = MIN_SEGMENT + 20
    params = SamplingParams(temperature=1.0, max_new_tokens=new, seed=5, audio_constraint=False)
    [g] = generate(loaded, [mixed_prompts(vocab)[1]], params, keep_logits=True)
    assert len(segment_ends(bucket(new, MIN_NEW_BUCKET))) == 2 and g.tokens.shape == (new,)
    sequence = np.concatenate([g.prompt, g.tokens])
    reference = full_logits(loaded, sequence[None])[0]
    np.testing.assert_allclose(g.logits, reference[g.prompt.size - 1 : -1], atol=LOGIT_ATOL, rtol=0)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_a_prefill_attended_in_query_blocks_equals_the_full_forward(vocab, scan_layers, monkeypatch):
    """Prompts longer than `PREFILL_BLOCKED_ABOVE` (8 here, 512 in use) attend in query blocks (of 8
    here, 128 in use)."""
    traced = []

    def spied(*args):
        traced.append(args[0].resolve_axis("position").size)
        return blocked(*args)

    blocked = decoder._prefill_attention
    monkeypatch.setattr(decoder, "PREFILL_QUERY_BLOCK", 8)
    monkeypatch.setattr(decoder, "PREFILL_BLOCKED_ABOVE", 8)
    monkeypatch.setattr(decoder, "_prefill_attention", spied)
    jax.clear_caches()  # a program compiled with the blocks in use must not be reused
    loaded = random_model(vocab, scan_layers=scan_layers, seed=6)
    rng = np.random.default_rng(6)
    prompts = [
        np.concatenate([[vocab.bos_id], rng.integers(4, vocab.text_size, n - 1)]).astype(np.int32) for n in (3, 17, 40)
    ]
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=1, audio_constraint=False)
    generations = generate(loaded, prompts, params, keep_logits=True)
    assert traced and min(traced) > 8  # the blocked path ran, on the padded prompt bucket
    for g in generations:
        sequence = np.concatenate([g.prompt, g.tokens])
        reference = full_logits(loaded, sequence[None])[0]
        np.testing.assert_allclose(g.logits, reference[g.prompt.size - 1 : -1], atol=LOGIT_ATOL, rtol=0)
    jax.clear_caches()


@pytest.mark.parametrize("mesh", ["unsharded", "mesh4x2"])
def test_score_equals_the_log_softmax_of_the_full_forward(models, mesh):
    """Packed rows (several sequences per row, a smaller last forward) against the materialised logits."""
    loaded = models[mesh]
    rng = np.random.default_rng(1)
    lengths = [2, 5, 17, 31, 32, 12, 3, 9, 24, 2, 30]
    sequences = [rng.integers(0, loaded.vocab.size, n).astype(np.int32) for n in lengths]
    scored = score(loaded, sequences, max_batch=2)
    for s, got, logits in zip(sequences, scored, reference_logits(loaded, sequences)):
        logits = logits.astype(np.float64)
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        expected = logp[np.arange(s.size - 1), s[1:]]
        assert got.shape == (s.size - 1,) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=SCORE_ATOL, rtol=0)


def _shape_dims(shape: str) -> tuple[int, ...]:
    """``f32[1,2,64,48]{3,2,1,0}`` -> (2, 64, 48): the dimensions other than 1, sorted."""
    dims = shape.split("[", 1)[1].split("]", 1)[0]
    return tuple(sorted(int(d) for d in dims.split(",") if d and int(d) != 1))


def _cache_passes(hlo: str, last_logits: str) -> dict[str, list[str]]:
    """For each decode-loop body of a compiled program (a while loop whose state holds the step's last
    logits, shape ``last_logits``, and the caches: its f32 arrays of rank 4 or more), the instructions
    in it that make a whole cache-sized array other than by writing into a cache in place: copies and
    transposes of a cache."""
    computations: dict[str, list[str]] = {}
    name = None
    for line in hlo.splitlines():
        if line and not line.startswith(" ") and line.rstrip().endswith("{"):
            name = line.split()[1] if line.startswith("ENTRY") else line.split()[0]
            computations[name] = []
        elif name is not None and line.startswith("  "):
            computations[name].append(line.strip())
    passes: dict[str, list[str]] = {}
    for lines in computations.values():
        for line in lines:
            if " while(" not in line or last_logits not in line.split(" while(", 1)[0]:
                continue
            state = line.split(" = ", 1)[1].split(" while(", 1)[0]
            caches = {_shape_dims(s) for s in re.findall(r"f32\[\d+(?:,\d+){3,}\]", state)}
            if not caches:
                continue
            body = re.search(r"body=(%[\w.\-]+)", line).group(1)
            passes.setdefault(body, [])
            for instruction in computations.get(body, []):
                target, _, op = instruction.partition(" = ")
                shape = op.split(" ", 1)[0]
                kind = op.split(" ", 1)[1].split("(", 1)[0] if " " in op else ""
                if not shape.startswith("f32[") or _shape_dims(shape) not in caches:
                    continue
                if kind in ("parameter", "get-tuple-element", "bitcast", "tuple") or "dynamic-update-slice" in target:
                    continue
                passes.setdefault(body, []).append(instruction.split(", metadata")[0])
    return passes


@pytest.mark.parametrize("scan_layers", [True, False])
def test_the_decode_loop_writes_its_caches_in_place(vocab, scan_layers):
    """The compiled decode loop touches a cache only to read it and to write one column in place: no
    copy or transpose of a whole cache per step. XLA's CPU backend did both (it scheduled a read after
    the write, then copied every cache twice a step; it transposed the values for their matmul): 30-60 %
    of a step at 4,096 columns (docs/inference.md)."""
    loaded = random_model(vocab, scan_layers=scan_layers)
    prompts = [np.arange(4, 4 + n, dtype=np.int32) for n in (5, 9)]
    args, kwargs = bucket_arguments(loaded, prompts, [SamplingParams(max_new_tokens=NEW_TOKENS)] * 2)
    with hax.partitioning.set_mesh(loaded.mesh), hax.axis_mapping(loaded.compute_mapping):
        hlo = _generate_bucket.lower(*args, **kwargs).compile().compiled.as_text()
    batch = batch_bucket(len(prompts), loaded.data_parallel_size)
    passes = _cache_passes(hlo, f"f32[{batch},{loaded.model.Vocab.size}]")
    assert passes, "no decode loop (a while loop carrying the caches) found in the compiled program"
    assert all(not found for found in passes.values()), passes

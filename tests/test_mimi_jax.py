"""The JAX Mimi against transformers' MimiModel with the same random weights.

Parity rule: codes are identical except near-ties. Float order differs between XLA and torch, so a
latent almost equidistant from two centroids may pick either; every first divergence in a frame's
residual chain must be such a near tie (distances within ``NEAR_TIE_RELATIVE_GAP``, measured in
float64 from transformers' latents), and at most ``MAX_NEAR_TIE_FRACTION`` of codes may differ (later
codebooks of a diverged chain quantize a different residual and are counted, not checked).
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers_audio import SENTENCES, needs_espeak, speech
from system_deps import import_or_skip
from transformers import MimiConfig

from soda_jax.audio.audio_io import load_audio
from soda_jax.audio.codec import MimiCodec
from soda_jax.audio.mimi_jax import MimiJaxConfig, convert_checkpoint, from_transformers, load_checkpoint
from soda_jax.audio.mimi_jax.convert import MANIFEST, source_hash

pytestmark = needs_espeak

NEAR_TIE_RELATIVE_GAP = 1e-4
"""A divergent code is a near tie if its two centroids' distances to the residual differ by less."""
MAX_NEAR_TIE_FRACTION = 1e-3
"""At most this fraction of codes may differ (all of them explained by near ties)."""
WAVE_RELATIVE_TOLERANCE = 1e-4
"""Decoded waveforms: max |torch - jax| <= this x max |torch|."""
K = 8


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_torch_mimi(config=None, seed=0, strong_attention=False):
    """transformers' Mimi with random weights and codebooks (`MimiCodec.random`).

    ``strong_attention``: LayerScale 1 and attention projections x10, so attention (sharp, position
    dependent through RoPE) decides many codes: a wrong mask or KV cache would change them (with the
    fresh init's LayerScale 0.01 and near-uniform attention, the convolutions decide almost alone).
    """
    model = MimiCodec.random(config, seed=seed).model
    if strong_attention:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("layer_scale.scale"):
                    param.fill_(1.0)
                if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight")):
                    param.mul_(10.0)
    return model


@pytest.fixture(scope="module")
def torch_model():
    return random_torch_mimi()


@pytest.fixture(scope="module")
def codecs(torch_model):
    return MimiCodec(torch_model), MimiCodec(from_transformers(torch_model))


def long_speech(seconds: float) -> np.ndarray:
    sentences = [np.asarray(speech(s)) for s in SENTENCES]
    audio = np.concatenate(sentences * (1 + int(seconds // sum(len(s) / 24_000 for s in sentences))))
    return audio[: round(seconds * 24_000)].copy()


def torch_latents(model, audio: np.ndarray, window: int | None = None) -> np.ndarray:
    """transformers' pre-quantization latents ``[B, frames, hidden]`` in one pass; ``window``: apply
    a sliding-window mask (what its FlashAttention-2 path and moshi do) through a custom 4D mask."""
    with torch.no_grad():
        h = model.encoder(torch.from_numpy(audio)[:, None])
        steps = h.shape[-1]
        mask = None
        if window is not None:
            delta = torch.arange(steps)[:, None] - torch.arange(steps)[None, :]
            allowed = (delta >= 0) & (delta < window)
            mask = torch.where(allowed, 0.0, float("-inf"))[None, None].expand(len(audio), 1, steps, steps)
        h = model.encoder_transformer(h.transpose(1, 2), attention_mask=mask, use_cache=False).last_hidden_state
        return model.downsample(h.transpose(1, 2)).transpose(1, 2).numpy()


def jax_latents(model, audio: np.ndarray) -> np.ndarray:
    latents, _ = model.latents(jnp.asarray(audio), model.initial_state(len(audio)))
    return np.asarray(latents)


def near_tie_report(model, latents: np.ndarray, ref: np.ndarray, got: np.ndarray) -> dict:
    """Compare codes ``[B, K, T]`` frame by frame along each RVQ's residual chain (float64)."""
    rvqs = [(model.quantizer.semantic_residual_vector_quantizer, range(1))]
    rvqs.append((model.quantizer.acoustic_residual_vector_quantizer, range(1, ref.shape[1])))
    first, consequent, gaps = 0, 0, []
    for rvq, books in rvqs:
        proj = rvq.input_proj.weight[:, :, 0].detach().double().numpy()
        embeds = [layer.codebook.embed.detach().double().numpy() for layer in rvq.layers]
        for b, t in zip(*np.nonzero((ref[:, books] != got[:, books]).any(axis=1))):
            residual = proj @ latents[b, t].astype(np.float64)
            for j, k in enumerate(books):
                if ref[b, k, t] != got[b, k, t]:
                    d_ref, d_got = (np.linalg.norm(residual - embeds[j][c[b, k, t]]) for c in (ref, got))
                    gaps.append(abs(d_got - d_ref) / d_ref)
                    first += 1
                    consequent += int((ref[b, books[j + 1 :], t] != got[b, books[j + 1 :], t]).sum())
                    break
                residual = residual - embeds[j][ref[b, k, t]]
    return {"first": first, "consequent": consequent, "max_gap": max(gaps, default=0.0)}


def assert_codes_match(model, latents, ref, got):
    assert ref.shape == got.shape
    report = near_tie_report(model, latents, ref, got)
    assert report["max_gap"] < NEAR_TIE_RELATIVE_GAP, report  # every divergence is a near tie
    assert (ref != got).mean() <= MAX_NEAR_TIE_FRACTION, report
    return report


# ------------------------------------------------------------------------------------ parity
def test_codes_match_transformers_on_synthesized_speech(torch_model, codecs):
    torch_codec, jax_codec = codecs
    audio = long_speech(8.0)
    ref, got = torch_codec.encode([audio])[0], jax_codec.encode([audio])[0]
    assert ref.shape == got.shape == (K, 100)
    latents = torch_latents(torch_model, audio[None])
    np.testing.assert_allclose(jax_latents(jax_codec.model, audio[None]), latents, rtol=1e-4, atol=1e-4)
    assert_codes_match(torch_model, latents, ref[None], got[None])


def natural_clips() -> list[np.ndarray]:
    """The pytest-audioeval recordings (27 clips, 9 languages, 1-4.5 s at 16 kHz), at 24 kHz."""
    registry = import_or_skip("pytest_audioeval.samples.registry").SampleRegistry()
    return [load_audio(str(sample.audio_path)) for sample in registry.all()]


def test_codes_match_transformers_on_natural_clips(torch_model, codecs):
    torch_codec, jax_codec = codecs
    clips = natural_clips()
    assert len(clips) >= 20
    ref, got = torch_codec.encode(clips), jax_codec.encode(clips)  # one batch each
    frames = max(c.shape[1] for c in ref)
    padded = np.zeros((len(clips), frames * 1920), np.float32)
    for i, clip in enumerate(clips):
        padded[i, : len(clip)] = clip
    latents = torch_latents(torch_model, padded)
    for i, (r, g) in enumerate(zip(ref, got)):
        assert_codes_match(torch_model, latents[i : i + 1, : r.shape[1]], r[None], g[None])


def test_decoded_waveforms_match_transformers(codecs):
    torch_codec, jax_codec = codecs
    codes = torch_codec.encode([long_speech(4.0), np.asarray(speech(SENTENCES[2]))])
    for ref, got in zip(torch_codec.decode(codes), jax_codec.decode(codes)):
        assert ref.shape == got.shape
        assert np.abs(ref - got).max() <= WAVE_RELATIVE_TOLERANCE * np.abs(ref).max()


def test_streamed_long_recording_matches_transformers_with_a_strong_transformer():
    model = random_torch_mimi(strong_attention=True)
    audio = long_speech(24.0)
    torch_codec = MimiCodec(model, chunk_seconds=4.0)
    jax_codec = MimiCodec(from_transformers(model), chunk_seconds=4.0)
    ref, got = torch_codec.encode([audio])[0], jax_codec.encode([audio])[0]
    latents = torch_latents(model, audio[None])  # one pass: near-tie check only, before any chunk edge
    report = assert_codes_match(model, latents[:, :50], ref[None, :, :50], got[None, :, :50])
    assert (ref != got).mean() <= MAX_NEAR_TIE_FRACTION, report
    # The windowed variant attends over exactly 250 steps, transformers' chunks over the 249 cached
    # + up to 99 earlier in the chunk: the masks differ past 10 s and so do many codes.
    windowed = MimiCodec(from_transformers(model, windowed_attention=True), chunk_seconds=4.0)
    other = windowed.encode([audio])[0]
    np.testing.assert_array_equal(other[:, :125], got[:, :125])  # first 10 s: the same attention
    assert (other[:, 125:] != got[:, 125:]).mean() > 0.1


def test_windowed_attention_matches_transformers_sliding_mask():
    model = random_torch_mimi(strong_attention=True)
    audio = long_speech(14.0)[None]
    mimi = from_transformers(model, windowed_attention=True)
    windowed = torch_latents(model, audio, window=model.config.sliding_window)
    np.testing.assert_allclose(jax_latents(mimi, audio), windowed, rtol=1e-3, atol=1e-3)
    # Plain causal (transformers eager/SDPA) agrees for the first 10 s (125 frames) only.
    plain = torch_latents(model, audio)
    np.testing.assert_array_equal(plain[:, :124], windowed[:, :124])
    assert np.abs(plain[:, 126:] - windowed[:, 126:]).max() > 0.1
    # Windowed streaming is exact: chunked codes equal one pass.
    one_pass = MimiCodec(mimi, chunk_seconds=60.0).encode([audio[0]])[0]
    chunked = MimiCodec(mimi, chunk_seconds=2.4).encode([audio[0]])[0]
    np.testing.assert_array_equal(chunked, one_pass)


def test_full_size_parity():
    # kyutai/mimi's shapes (79M params): ~25 s of CPU time for this test file's process, imports included.
    model = random_torch_mimi(MimiConfig())
    audio = long_speech(4.0)
    ref = MimiCodec(model).encode([audio])[0]
    got = MimiCodec(from_transformers(model)).encode([audio])[0]
    assert_codes_match(model, torch_latents(model, audio[None]), ref[None], got[None])


# --------------------------------------------------------------------------------- batching
def test_batched_encode_over_a_data_parallel_mesh(codecs):
    _, single = codecs
    devices = jax.devices()
    assert len(devices) == 8  # tests/conftest.py: 8 fake CPU devices
    meshed = MimiCodec(single.model, devices=devices)
    assert meshed.runner.num_devices == 8 and meshed.runner.padded_batch(3) == 8
    utterances = [np.asarray(speech(s)) for s in SENTENCES[:3]]
    batched = meshed.encode(utterances)
    for wave, codes in zip(utterances, batched):
        np.testing.assert_array_equal(codes, single.encode([wave])[0])
    waves = meshed.decode(batched)
    for codes, wave in zip(batched, waves):
        np.testing.assert_allclose(wave, single.decode([codes])[0], atol=1e-3)


# ------------------------------------------------------------------------- converted checkpoint
def test_converted_checkpoint_is_written_once_with_the_source_hash(torch_model, codecs, tmp_path):
    source, converted = tmp_path / "mimi", tmp_path / "mimi-jax"
    torch_model.save_pretrained(source)
    assert convert_checkpoint(str(source), str(converted)) == str(converted)
    manifest = json.loads((converted / MANIFEST).read_text())
    assert manifest["source_sha256"] == source_hash(str(source)) and len(manifest["source_sha256"]) == 64
    assert MimiJaxConfig.from_dict(manifest["config"]) == MimiJaxConfig.from_transformers(torch_model.config)
    assert sorted(os.listdir(tmp_path)) == ["mimi", "mimi-jax"]  # staged, then renamed: no leftovers
    stamp = (converted / MANIFEST).stat().st_mtime_ns
    convert_checkpoint(str(source), str(converted))  # already converted: not rewritten
    assert (converted / MANIFEST).stat().st_mtime_ns == stamp

    loaded = MimiCodec(load_checkpoint(str(converted)))
    audio = np.asarray(speech(SENTENCES[1]))
    np.testing.assert_array_equal(loaded.encode([audio])[0], codecs[1].encode([audio])[0])
    assert MimiCodec.from_pretrained(str(converted), backend="jax").weights == str(converted)

    # Another source for the same destination is refused, naming both.
    other = tmp_path / "other"
    random_torch_mimi(seed=1).save_pretrained(other)
    with pytest.raises(ValueError, match="different source"):
        convert_checkpoint(str(other), str(converted))


def test_unsupported_configs_and_missing_weights_are_named(tmp_path):
    with pytest.raises(ValueError, match="use_conv_shortcut"):
        MimiJaxConfig.from_transformers(MimiConfig(use_conv_shortcut=True))
    with pytest.raises(FileNotFoundError, match="config.json"):
        convert_checkpoint(str(tmp_path), str(tmp_path / "out"))
    from soda_jax.audio.mimi_jax import Mimi
    from soda_jax.audio.mimi_jax.convert import load_state_dict

    state = random_torch_mimi().state_dict()
    del state["encoder.layers.3.conv.weight"]
    with pytest.raises(KeyError, match="encoder.layers.3.conv.weight"):
        load_state_dict(Mimi(MimiJaxConfig.from_transformers(random_torch_mimi().config)), state)


# ------------------------------------------------------------------------------ tokenize step
def test_tokenize_step_versions_the_backend_only_when_chosen():
    from soda_jax.execution.versioning import compute_identities
    from soda_jax.recipes.defaults import default_synth_demo_corpus, default_tokenize

    speech_step = default_synth_demo_corpus()
    default = default_tokenize("demo-yodas2", speech_step / "yodas2", source="yodas2")
    jax_step = default_tokenize("demo-yodas2", speech_step / "yodas2", source="yodas2", codec_backend="jax")
    ids = compute_identities([speech_step, default, jax_step], "/prefix")
    # The path the demo's tokenization had before the backend option existed (main at ecd318b).
    assert ids[id(default)].output_path == "/prefix/tokenized/demo-yodas2-audio-4007c052"
    assert "codec_backend" not in ids[id(default)].version["config"]
    assert ids[id(jax_step)].version["config"]["codec_backend"] == "jax"
    assert ids[id(jax_step)].hash != ids[id(default)].hash


def test_tokenize_audio_with_the_jax_backend_writes_the_same_codes(tmp_path):
    import pyarrow.parquet as pq
    from helpers_audio import write_yodas2_corpus

    from soda_jax.data.tokenize_audio import TokenizeAudioConfig, tokenize_audio

    write_yodas2_corpus(str(tmp_path / "raw"), num_shards=1)
    runs = {}
    for backend in ("torch", "jax"):
        out = tmp_path / backend
        config = TokenizeAudioConfig(str(tmp_path / "raw"), str(out), "yodas2", codec_backend=backend)
        stats = tokenize_audio(config)
        assert stats["codec_backend"] == backend
        runs[backend] = pq.read_table(out / "shards" / "en000-00000000.parquet").to_pydict()
        facts = json.loads((out / "codec.json").read_text())
        assert facts.get("backend", "torch") == backend
    assert runs["jax"]["segment_id"] == runs["torch"]["segment_id"] and len(runs["jax"]["codes"]) >= 6
    assert runs["jax"]["codes"] == runs["torch"]["codes"]

"""MimiCodec with a tiny random Mimi: varied codes, the padding rule, batching, chunking, decoding.

Every test runs on both backends (torch: transformers' MimiModel; jax: soda_jax.audio.mimi_jax).
"""

import fsspec
import numpy as np
import pytest
import torch
from helpers_audio import SENTENCES, needs_espeak, speech
from transformers import MimiModel

from soda_jax.audio.codec import CodecConfig, MimiCodec, batches_by_length, tiny_mimi_config
from soda_jax.audio.text_tokenizers import train_bpe
from soda_jax.audio.vocab import MIMI_CODEBOOKS, AudioTextVocab, codebooks_for

pytestmark = needs_espeak

SAMPLES_PER_FRAME = 1920  # 24 kHz / 12.5 Hz: what the codec must derive from the model config


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny Mimi runs many small ops: on a shared 2-core machine, 2 threads wait at barriers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["torch", "jax"])
def backend(request):
    return request.param


@pytest.fixture(scope="module")
def codec(backend):
    return MimiCodec.random(seed=0, backend=backend)


@pytest.fixture(scope="module")
def utterances():
    """Real speech of different lengths, none a whole number of frames."""
    return [speech(s).copy() for s in SENTENCES[:4]]


def test_fresh_mimi_is_degenerate_and_random_codec_is_not(backend, utterances):
    # The pitfall the random codec fixes: transformers' fresh Mimi has zero codebooks.
    fresh = MimiModel(tiny_mimi_config()).eval()
    with torch.no_grad():
        zero_codes = fresh.encode(torch.from_numpy(utterances[0])[None, None], num_quantizers=8).audio_codes
    assert (zero_codes == 0).all()
    codes = MimiCodec.random(seed=0, backend=backend).encode(utterances[:1])[0]
    assert all(len(np.unique(row)) > 5 for row in codes)  # every codebook varies


def test_frames_codebook_init_uses_codebook_0_and_is_reproducible(codec, utterances):
    # Standard-normal centroids sit far from the latents, so a few dozen codebook-0 codes take every frame;
    # centroids on sampled babble latents spread the same speech over many more codes.
    frames_codec = MimiCodec.random(seed=0, backend=codec.backend, codebook_init="frames")
    frames = frames_codec.encode(utterances)
    default_0 = np.concatenate([c[0] for c in codec.encode(utterances)])
    frames_0 = np.concatenate([c[0] for c in frames])
    assert perplexity(frames_0) > 3 * perplexity(default_0)
    assert len(np.unique(frames_0)) > 2 * len(np.unique(default_0))
    # A second build (on torch, the reference, for either backend) gives the same codes.
    for again, codes in zip(MimiCodec.random(seed=0, codebook_init="frames").encode(utterances), frames):
        np.testing.assert_array_equal(again, codes)
    assert frames_codec.describe()["weights"] == "random-seed0-frames"
    assert codec.describe()["weights"] == "random-seed0"  # the default's name (and codes) do not move
    with pytest.raises(ValueError, match="codebook_init"):
        MimiCodec.random(codebook_init="kmeans")


def perplexity(codes: np.ndarray) -> float:
    """2 ** entropy of the codes' distribution: how many codes a frame effectively chooses from."""
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(2 ** -(p * np.log2(p)).sum())


def test_random_codec_is_deterministic_per_seed(codec, utterances):
    again = MimiCodec.random(seed=0, backend=codec.backend).encode(utterances[:1])[0]
    other = MimiCodec.random(seed=1, backend=codec.backend).encode(utterances[:1])[0]
    np.testing.assert_array_equal(codec.encode(utterances[:1])[0], again)
    assert (other != again).mean() > 0.5


def test_frame_count_rule_and_100_tokens_per_second(codec, utterances):
    assert codec.samples_per_frame == SAMPLES_PER_FRAME and codec.frame_rate == 12.5
    for wave in utterances:
        codes = codec.encode([wave])[0]
        assert codes.shape == (MIMI_CODEBOOKS, -(-len(wave) // SAMPLES_PER_FRAME))
        assert codes.dtype == np.int16
    # Whole frames: exactly 100 tokens per second of audio.
    for secs in (0.08, 2.4, 4.0):
        n = round(secs * codec.sample_rate)
        assert n % SAMPLES_PER_FRAME == 0
        codes = codec.encode([np.resize(utterances[0], n)])[0]
        assert codes.size == round(100 * secs)


def test_batched_equals_one_at_a_time(codec, utterances):
    batched = codec.encode(utterances)
    for wave, codes in zip(utterances, batched):
        np.testing.assert_array_equal(codes, codec.encode([wave])[0])


def test_chunked_encoding_equals_a_single_pass(backend):
    # 25 s of speech: longer than the encoder's 10 s attention window, so chunks must carry state.
    long = np.concatenate([np.asarray(speech(s)) for s in SENTENCES * 3])[: 25 * 24_000]
    whole = MimiCodec.random(seed=0, chunk_seconds=60.0, backend=backend).encode([long])[0]
    chunked = MimiCodec.random(seed=0, chunk_seconds=1.6, backend=backend).encode([long])[0]
    np.testing.assert_array_equal(chunked, whole)


@pytest.mark.parametrize("k", [1, 4])
def test_fewer_codebooks_are_the_leading_rows(codec, utterances, k):
    small = MimiCodec.random(seed=0, num_codebooks=k, backend=codec.backend)
    codes = small.encode(utterances[:2])
    for c, full in zip(codes, codec.encode(utterances[:2])):
        np.testing.assert_array_equal(c, full[:k])
    audio = small.decode(codes)
    assert [len(a) for a in audio] == [c.shape[1] * SAMPLES_PER_FRAME for c in codes]


def test_ids_to_waveform_to_codes_is_shape_consistent(codec, utterances):
    vocab = AudioTextVocab(train_bpe(SENTENCES, vocab_size=280))
    codes = codec.encode(utterances[:2])
    ids = [vocab.codes_to_ids(c) for c in codes]
    recovered = [vocab.ids_to_codes(i, codebooks_for(MIMI_CODEBOOKS))[0] for i in ids]
    waves = codec.decode(recovered)
    assert [w.shape for w in waves] == [(c.shape[1] * SAMPLES_PER_FRAME,) for c in codes]
    assert all(np.isfinite(w).all() and w.dtype == np.float32 for w in waves)
    again = codec.encode(waves)
    assert [c.shape for c in again] == [c.shape for c in codes]


def test_batched_decode_matches_single(codec, utterances):
    codes = codec.encode(utterances[:2])
    for c, wave in zip(codes, codec.decode(codes)):
        np.testing.assert_allclose(wave, codec.decode([c])[0], atol=1e-3)


def test_from_pretrained_local_directory(codec, utterances, tmp_path):
    MimiCodec.random(seed=0).model.save_pretrained(tmp_path / "mimi")  # the same weights, as files
    loaded = MimiCodec.from_pretrained(
        str(tmp_path / "mimi"), backend=codec.backend, converted_dir=str(tmp_path / "converted")
    )
    np.testing.assert_array_equal(loaded.encode(utterances[:1])[0], codec.encode(utterances[:1])[0])
    assert loaded.describe()["weights"] == str(tmp_path / "mimi")


def test_from_pretrained_directory_in_a_bucket(codec, utterances, tmp_path):
    """Mimi copied into the prefix (a bucket) loads like a local directory, named by its URL."""
    MimiCodec.random(seed=0).model.save_pretrained(tmp_path / "mimi")
    url = "memory://codec-test/mimi"
    memory = fsspec.filesystem("memory")
    try:
        memory.put(str(tmp_path / "mimi") + "/", "/codec-test/mimi/", recursive=True)
        loaded = MimiCodec.from_pretrained(url, backend=codec.backend, converted_dir=str(tmp_path / "converted"))
        np.testing.assert_array_equal(loaded.encode(utterances[:1])[0], codec.encode(utterances[:1])[0])
        assert loaded.describe()["weights"] == url
    finally:
        memory.rm("/codec-test", recursive=True)


def test_codec_config_builds_and_validates(backend):
    codec = MimiCodec.from_config(CodecConfig(seed=3, num_codebooks=2), backend=backend)
    assert codec.describe() == {
        "codec": "mimi",
        "sample_rate": 24_000,
        "frame_rate": 12.5,
        "num_codebooks": 2,
        "codebook_size": 2048,
        "weights": "random-tiny-seed3",
        **({"backend": "jax"} if backend == "jax" else {}),
    }
    with pytest.raises(ValueError, match="num_codebooks"):
        CodecConfig(num_codebooks=9)
    with pytest.raises(ValueError, match="random_size"):
        CodecConfig(random_size="medium")
    with pytest.raises(ValueError, match="backend"):
        MimiCodec.from_config(CodecConfig(), backend="tensorflow")


def test_empty_inputs(codec):
    assert codec.encode([]) == [] and codec.decode([]) == []
    with pytest.raises(ValueError, match="empty waveform"):
        codec.encode([np.zeros(0, dtype=np.float32)])
    with pytest.raises(ValueError, match="codes must be"):
        codec.decode([np.zeros((3, 4), dtype=np.int64)])


def test_batches_by_length_fills_budget_and_covers_everything():
    lengths = [5, 100, 7, 60, 61, 3, 250, 9]
    batches = batches_by_length(lengths, max_batch_samples=130)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 130
    assert [250] in [[lengths[i] for i in b] for b in batches]  # too long: alone

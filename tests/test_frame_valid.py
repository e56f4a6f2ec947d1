"""`eval.context.frame_valid`: what TTS and continuation report as their frame-valid rate."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_inference import make_vocab

from soda_jax.eval.context import frame_valid, frame_valid_rate

K = 2


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    return make_vocab(str(tmp_path_factory.mktemp("vocab")))


def frames(vocab, count: int) -> np.ndarray:
    codes = np.arange(K * count).reshape(K, count) % vocab.codebook_size
    return vocab.codes_to_ids(codes)


def test_whole_frames_in_order_closed_by_audio_end_are_valid(vocab):
    assert frame_valid(vocab, np.r_[frames(vocab, 3), vocab.audio_end_id], K)
    assert frame_valid(vocab, np.r_[frames(vocab, 1), vocab.audio_end_id, vocab.eos_id], K)


@pytest.mark.parametrize(
    "case",
    ["cut by the budget", "no frame", "half a frame", "codebooks swapped", "closed by another marker"],
)
def test_malformed_audio_is_not_valid(vocab, case):
    audio = frames(vocab, 3)
    tokens = {
        "cut by the budget": audio,
        "no frame": np.array([vocab.audio_end_id]),
        "half a frame": np.r_[audio[:-1], vocab.audio_end_id],
        "codebooks swapped": np.r_[audio.reshape(-1, K)[:, ::-1].reshape(-1), vocab.audio_end_id],
        "closed by another marker": np.r_[audio, vocab.text_end_id],
    }[case]
    assert not frame_valid(vocab, tokens, K)


def test_the_rate_counts_only_records_that_have_the_field():
    assert frame_valid_rate([{"frame_valid": True}, {"frame_valid": False}, {}]) == 0.5
    assert np.isnan(frame_valid_rate([{}]))


def test_the_results_table_gives_the_rate_a_wilson_interval():
    from soda_jax.eval.pairs import wilson_interval
    from soda_jax.eval.report import metric_intervals

    records = [
        {"id": f"u{i}", "utterance_wer": 0.0, "speaker_similarity": 0.5, "target_text": "a b", "transcript": "a b"}
        | {"frame_valid": i < 3}
        for i in range(4)
    ]
    summary = {"metrics": {"wer_x100": 0.0, "frame_valid_rate": 0.75}, "settings": {}}
    assert metric_intervals(summary, records)["frame_valid_rate"] == wilson_interval(3, 4)

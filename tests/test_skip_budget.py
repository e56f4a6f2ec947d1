"""A data step that produced nothing, or skipped most of its input, fails with the counts by reason."""

import json

import numpy as np
import pytest
from helpers_audio import SENTENCES, needs_espeak, speech, write_broken_emilia_corpus
from helpers_data import random_recording, save_test_tokenizer, write_tokenized_utterances

from soda_jax import fileio
from soda_jax.data.interleave_step import InterleaveConfig, interleave
from soda_jax.data.skip_budget import SkipBudgetExceeded, enforce_skip_budget
from soda_jax.data.synth import encode_audio, tar_bytes
from soda_jax.data.tokenize_audio import TokenizeAudioConfig, tokenize_audio
from soda_jax.data.tokenize_text import TokenizeTextConfig, tokenize_text


def test_budget_rules():
    enforce_skip_budget("s", kept=2, skipped={"a": 2}, max_skip_fraction=0.5)  # exactly half: allowed
    with pytest.raises(SkipBudgetExceeded, match=r"s: skipped 60.0% .* skipped by reason: a: 1, b: 2"):
        enforce_skip_budget("s", kept=2, skipped={"a": 1, "b": 2}, max_skip_fraction=0.5)
    with pytest.raises(SkipBudgetExceeded, match="produced nothing .* other_language: 5"):
        enforce_skip_budget(
            "s", kept=0, skipped={"other_language": 5}, max_skip_fraction=0.5, not_bad={"other_language"}
        )
    enforce_skip_budget("s", kept=1, skipped={"other_language": 50}, max_skip_fraction=0.5, not_bad={"other_language"})


@needs_espeak
def test_tokenize_audio_with_no_usable_record_fails_with_counts(tmp_path):
    mp3 = encode_audio(speech(SENTENCES[0]), "MP3")
    members = [
        ("A.mp3", mp3),
        ("A.json", json.dumps({"id": "A", "text": None}).encode()),
        ("B.mp3", b"not audio"),
        ("B.json", json.dumps({"id": "B", "text": "hi"}).encode()),
    ]
    fileio.atomic_write_bytes(str(tmp_path / "raw" / "EN-B0.tar"), tar_bytes(members))
    config = TokenizeAudioConfig(str(tmp_path / "raw"), str(tmp_path / "out"), "emilia")
    with pytest.raises(SkipBudgetExceeded, match=r"produced nothing.*empty_text: 1, unreadable_audio: 1"):
        tokenize_audio(config)
    assert fileio.read_json(str(tmp_path / "out" / "stats.json"))["utterances"] == 0  # counts kept for inspection


@needs_espeak
def test_tokenize_audio_mostly_bad_fails_unless_allowed(tmp_path):
    write_broken_emilia_corpus(str(tmp_path / "raw"))  # 3 good, 4 bad, 1 in another language
    config = TokenizeAudioConfig(str(tmp_path / "raw"), str(tmp_path / "out"), "emilia", languages=("en",))
    with pytest.raises(SkipBudgetExceeded, match=r"skipped 57.1% .*max_skip_fraction=0.5 \(3 kept\)"):
        tokenize_audio(config)
    stats = tokenize_audio(TokenizeAudioConfig(**{**config.__dict__, "max_skip_fraction": 0.6}))  # resumes
    assert stats["utterances"] == 3 and stats["shards_processed"] == []


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    return save_test_tokenizer(str(tmp_path_factory.mktemp("tok")))


def test_interleave_of_only_bad_segments_fails(tmp_path, tokenizer_dir):
    segments = random_recording(np.random.default_rng(1), "rec", 3)
    for s in segments:
        s.codes[0, 0] = 4000  # out of the codebook
    root = write_tokenized_utterances(str(tmp_path / "in"), {"s": segments})
    with pytest.raises(SkipBudgetExceeded, match="interleave .*produced nothing.*codes_out_of_range: 3"):
        interleave(InterleaveConfig(input_path=root, output_path=str(tmp_path / "out"), tokenizer=tokenizer_dir))


def test_tokenize_text_of_only_empty_records_fails(tmp_path, tokenizer_dir):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text('{"text": ""}\n{"other": 1}\n')
    with pytest.raises(SkipBudgetExceeded, match="produced nothing.*empty_text: 1, missing_or_non_string_text: 1"):
        tokenize_text(TokenizeTextConfig(str(tmp_path / "in"), str(tmp_path / "out"), tokenizer_dir))

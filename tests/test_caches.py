"""The interleave and tokenize_text steps: real shards in, levanter caches out, read back by levanter."""

from __future__ import annotations

import asyncio
import gzip
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers_data import random_recording, save_test_tokenizer, write_tokenized_utterances
from levanter.data.text.datasets import TokenSeqDataset
from levanter.store.cache import TreeCache

from soda_jax import fileio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data import caches
from soda_jax.data.cache_vocab import levanter_tokenizer_path, load_cache_vocab
from soda_jax.data.interleave_step import InterleaveConfig, interleave
from soda_jax.data.parse import document_contents
from soda_jax.data.tokenize_text import TokenizeTextConfig, tokenize_text
from soda_jax.data.utterance_shards import SKIP_CODES_LENGTH, SKIP_CODES_RANGE, ShardFormatError

RECORDINGS_PER_SHARD = 12
SEGMENTS_PER_RECORDING = 3


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    return save_test_tokenizer(str(tmp_path_factory.mktemp("tok")))


@pytest.fixture(scope="module")
def speech(tmp_path_factory, tokenizer_dir):
    """Two shards of random recordings, interleaved once for the whole module."""
    rng = np.random.default_rng(0)
    shards = {
        f"shard{j}": [
            s for i in range(RECORDINGS_PER_SHARD) for s in random_recording(rng, f"rec{j}-{i}", SEGMENTS_PER_RECORDING)
        ]
        for j in range(2)
    }
    root = str(tmp_path_factory.mktemp("speech"))
    write_tokenized_utterances(f"{root}/in", shards)
    config = InterleaveConfig(
        input_path=f"{root}/in",
        output_path=f"{root}/out",
        tokenizer=tokenizer_dir,
        patterns=("text_first", "audio_first"),
        validation_fraction=0.25,
    )
    return shards, config, interleave(config)


def recording_ids_in(split_dir: str, vocab: AudioTextVocab, shards) -> set[str]:
    """Recover each document's recording by matching its first audio segment's codes."""
    by_codes = {seg.codes.tobytes(): seg.recording_id for segs in shards.values() for seg in segs}
    found = set()
    for doc in caches.read_documents(split_dir):
        contents = document_contents(doc, vocab, num_codebooks=8)
        found |= {by_codes[c.tobytes()] for c in contents.codes}
    return found


def test_validation_never_shares_a_recording_with_train(speech, tokenizer_dir):
    shards, config, stats = speech
    vocab = AudioTextVocab.from_pretrained(tokenizer_dir)
    train = recording_ids_in(fileio.join(config.output_path, caches.TRAIN), vocab, shards)
    validation = recording_ids_in(fileio.join(config.output_path, caches.VALIDATION), vocab, shards)
    assert train and validation
    assert not train & validation
    assert train | validation == {s.recording_id for segs in shards.values() for s in segs}
    assert stats["validation"]["recordings"] == len(validation)


def test_levanter_reads_the_same_tokens(speech, tokenizer_dir):
    """Documents rebuilt from the shards equal the cache rows, and levanter's TokenSeqDataset
    (over levanter's own TreeCache.load) yields exactly their concatenation."""
    shards, config, stats = speech
    vocab = AudioTextVocab.from_pretrained(tokenizer_dir)
    split_dir = fileio.join(config.output_path, caches.TRAIN)
    cache = TreeCache.load(split_dir, {"input_ids": np.zeros((0,), np.int32)})
    docs = [row["input_ids"] for row in cache.get_batch_sync(list(range(len(cache))))]
    assert len(docs) == stats["train"]["documents"] == 2 * stats["train"]["recordings"]
    for doc in docs:
        contents = document_contents(doc, vocab, num_codebooks=8)
        assert len(contents.codes) == SEGMENTS_PER_RECORDING
    flat = np.concatenate(docs)
    assert flat.size == stats["train"]["total_tokens"] == cache.flat_field_length("input_ids")
    seq_len = 64
    windows = TokenSeqDataset(cache, seq_len)
    n = asyncio.run(windows.async_len())
    got = asyncio.run(windows.get_batch(list(range(n))))
    np.testing.assert_array_equal(np.concatenate([w["input_ids"] for w in got]), flat[: n * seq_len])


def test_stats_count_tokens_by_kind_and_hours(speech):
    shards, config, stats = speech
    written = fileio.read_json(fileio.join(config.output_path, "stats.json"))
    assert written["train"] == stats["train"]
    segments = [s for segs in shards.values() for s in segs]
    frames = sum(s.codes.shape[1] for s in segments)
    both = {k: stats["train"]["tokens"][k] + stats["validation"]["tokens"][k] for k in ("text", "special", "audio")}
    assert both["audio"] == 2 * frames * 8  # two patterns
    assert both["special"] == 2 * 4 * len(segments)
    assert stats["train"]["hours"] + stats["validation"]["hours"] == pytest.approx(frames / 12.5 / 3600)
    assert written["layout"]["patterns"] == ["text_first", "audio_first"]
    assert written["layout"]["held_out_by"] == "recording_id"


def test_vocab_and_levanter_tokenizer_are_written(speech, tokenizer_dir):
    from levanter.tokenizers import load_tokenizer

    _, config, _ = speech
    vocab = load_cache_vocab(config.output_path)
    assert vocab.describe() == AudioTextVocab.from_pretrained(tokenizer_dir).describe()
    tok = load_tokenizer(levanter_tokenizer_path(config.output_path))
    assert len(tok) == vocab.size
    assert tok.eos_token_id == vocab.eos_id and tok.bos_token_id == vocab.bos_id


def test_bad_segments_are_skipped_and_counted(tmp_path, tokenizer_dir):
    rng = np.random.default_rng(1)
    segments = random_recording(rng, "rec-a", 3) + random_recording(rng, "rec-b", 2)
    segments[1].codes[0, 0] = 4000  # out of range
    root = write_tokenized_utterances(str(tmp_path / "in"), {"s": segments})
    table = pq.read_table(f"{root}/shards/s.parquet")
    frames = table.column("num_frames").to_pylist()
    frames[3] += 1  # codes no longer K * num_frames
    table = table.set_column(table.schema.get_field_index("num_frames"), "num_frames", pa.array(frames, pa.int32()))
    pq.write_table(table, f"{root}/shards/s.parquet")
    stats = interleave(
        InterleaveConfig(
            input_path=root,
            output_path=str(tmp_path / "out"),
            tokenizer=tokenizer_dir,
            patterns=("audio_only",),
            validation_fraction=0.0,
        )
    )
    assert stats["skipped_segments"] == {SKIP_CODES_RANGE: 1, SKIP_CODES_LENGTH: 1}
    assert stats["train"]["segments"] == 3 and stats["train"]["documents"] == 2


def test_recording_out_of_time_order_is_an_error_naming_file_and_recording(tmp_path, tokenizer_dir):
    segments = random_recording(np.random.default_rng(2), "rec-x", 3)
    segments[1].index, segments[2].index = 2, 1
    root = write_tokenized_utterances(str(tmp_path / "in"), {"s": segments})
    with pytest.raises(ShardFormatError, match=r"s\.parquet: recording 'rec-x' row 2"):
        interleave(InterleaveConfig(input_path=root, output_path=str(tmp_path / "out"), tokenizer=tokenizer_dir))


def test_rerun_skips_finished_shards(tmp_path, tokenizer_dir):
    rng = np.random.default_rng(4)
    root = write_tokenized_utterances(
        str(tmp_path / "in"), {"a": random_recording(rng, "r1", 2), "b": random_recording(rng, "r2", 2)}
    )
    config = InterleaveConfig(
        input_path=root, output_path=str(tmp_path / "out"), tokenizer=tokenizer_dir, validation_fraction=0.0
    )
    first = interleave(config)
    marker = tmp_path / "out" / "shard_stats" / "a.json"
    before = marker.stat().st_mtime_ns
    os.remove(tmp_path / "out" / "shard_stats" / "b.json")
    second = interleave(config)
    assert marker.stat().st_mtime_ns == before  # shard a not redone
    assert second["train"] == first["train"]


def test_tokenize_text_jsonl_and_parquet(tmp_path, tokenizer_dir):
    texts = [f"the quick brown fox number {i}" for i in range(40)]
    (tmp_path / "in").mkdir()
    with gzip.open(tmp_path / "in" / "a.jsonl.gz", "wt") as f:
        for t in texts[:20]:
            f.write(json.dumps({"text": t, "id": 1}) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"body": "no text field"}) + "\n")
    pq.write_table(pa.table({"text": texts[20:] + [""]}), tmp_path / "in" / "b.parquet")
    stats = tokenize_text(
        TokenizeTextConfig(
            input_path=str(tmp_path / "in"),
            output_path=str(tmp_path / "out"),
            tokenizer=tokenizer_dir,
            validation_fraction=0.2,
        )
    )
    assert stats["skipped_records"] == {"invalid_json": 1, "missing_or_non_string_text": 1, "empty_text": 1}
    vocab = AudioTextVocab.from_pretrained(tokenizer_dir)
    docs = caches.read_documents(str(tmp_path / "out" / "train")) + caches.read_documents(
        str(tmp_path / "out" / "validation")
    )
    assert stats["train"]["documents"] > 0 and stats["validation"]["documents"] > 0
    assert sorted(vocab.decode_text(d[1:-1]) for d in docs) == sorted(texts)
    assert all(d[0] == vocab.bos_id and d[-1] == vocab.eos_id for d in docs)
    assert stats["train"]["tokens"]["audio"] == 0


def test_speaker_markers_number_speakers_within_a_recording(tmp_path, tokenizer_dir):
    segments = random_recording(np.random.default_rng(6), "rec-s", 4)
    for seg, speaker in zip(segments, ["alice", "bob", "alice", "carol"]):
        seg.speaker = speaker
    root = write_tokenized_utterances(str(tmp_path / "in"), {"s": segments})
    interleave(
        InterleaveConfig(
            input_path=root,
            output_path=str(tmp_path / "out"),
            tokenizer=tokenizer_dir,
            patterns=("text_first",),
            speaker_marker=True,
            validation_fraction=0.0,
        )
    )
    vocab = AudioTextVocab.from_pretrained(tokenizer_dir)
    (doc,) = caches.read_documents(str(tmp_path / "out" / "train"))
    texts = [vocab.decode_text(t) for t in document_contents(doc, vocab, num_codebooks=8).texts]
    assert texts == [f"[{i}]{seg.text}" for i, seg in zip([0, 1, 0, 2], segments)]


def test_capped_documents_split_recordings_at_segment_boundaries(tmp_path, tokenizer_dir):
    rng = np.random.default_rng(11)
    recordings = {f"rec-{i}": random_recording(rng, f"rec-{i}", 6, max_frames=4) for i in range(5)}
    root = write_tokenized_utterances(
        str(tmp_path / "in"), {"s": [seg for segs in recordings.values() for seg in segs]}
    )
    cap = 100  # a segment of up to 4 frames takes at most ~45 tokens: two fit, seldom three
    stats = interleave(
        InterleaveConfig(
            input_path=root,
            output_path=str(tmp_path / "out"),
            tokenizer=tokenizer_dir,
            patterns=("audio_first",),
            max_document_tokens=cap,
            validation_fraction=0.0,
        )
    )
    vocab = AudioTextVocab.from_pretrained(tokenizer_dir)
    docs = caches.read_documents(str(tmp_path / "out" / "train"))
    assert len(docs) > len(recordings)
    assert stats["oversized_segments"] == {"audio_first": 0} and all(len(d) <= cap for d in docs)
    # every segment appears exactly once, in order within its recording
    seen = [c.tobytes() for d in docs for c in document_contents(d, vocab, num_codebooks=8).codes]
    expected = [seg.codes.tobytes() for segs in recordings.values() for seg in segs]
    assert sorted(seen) == sorted(expected)
    for segs in recordings.values():
        positions = [seen.index(seg.codes.tobytes()) for seg in segs]
        assert positions == sorted(positions)

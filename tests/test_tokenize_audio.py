"""The tokenize_audio step: output contract, skipped records, idempotent re-runs, kill and resume."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers_audio import (
    needs_espeak,
    write_broken_emilia_corpus,
    write_broken_yodas2_corpus,
    write_yodas2_corpus,
)

from soda_jax import fileio
from soda_jax.audio.codec import CodecConfig, MimiCodec
from soda_jax.data.sources import SkipCounter, get_source
from soda_jax.data.tokenize_audio import SCHEMA, SHARD_STATS_KEY, TokenizeAudioConfig, tokenize_audio

pytestmark = needs_espeak

CODEC_KEYS = {"codec", "sample_rate", "frame_rate", "num_codebooks", "codebook_size"}
KILL_TEST_SHARDS = 8


def shard_files(out):
    directory = os.path.join(out, "shards")
    # Only finished shards: a killed run may leave a hidden temporary file behind.
    return sorted(n for n in os.listdir(directory) if n.endswith(".parquet")) if os.path.isdir(directory) else []


def read_tables(out):
    return {name: pq.read_table(os.path.join(out, "shards", name)) for name in shard_files(out)}


def expected_codes(config):
    """Each utterance encoded alone, straight from the reader: what every parquet row must hold."""
    source, codec = get_source(config.source), MimiCodec.from_config(config.codec)
    skips = SkipCounter()
    shards = source.list_shards(config.input_path, config.languages)
    return {u.segment_id: codec.encode([u.audio])[0] for s in shards for u in source.read_shard(s, skips)}


def test_yodas2_output_follows_the_contract(tmp_path):
    expected_skips = write_broken_yodas2_corpus(str(tmp_path / "raw"))
    config = TokenizeAudioConfig(
        str(tmp_path / "raw"), str(tmp_path / "out"), "yodas2", batch_seconds=4.0, max_skip_fraction=1.0
    )  # a corpus broken on purpose: most records are bad
    stats = tokenize_audio(config)

    codec_facts = fileio.read_json(str(tmp_path / "out" / "codec.json"))
    assert CODEC_KEYS <= codec_facts.keys() and codec_facts["num_codebooks"] == 8
    assert fileio.read_json(str(tmp_path / "out" / "stats.json")) == {**stats, "codec": stats["codec"]}
    assert stats["skipped"]["counts"] == expected_skips
    tables = read_tables(str(tmp_path / "out"))
    # the corrupt shards too: done
    assert list(tables) == ["en000-00000000.parquet", "en000-00000001.parquet", "en000-00000002.parquet"]
    table = tables["en000-00000000.parquet"]
    assert table.schema.remove_metadata() == SCHEMA
    rows = table.to_pylist()
    assert [r["segment_index"] for r in rows] == [0, 1, 2] and {r["recording_id"] for r in rows} == {"good"}
    assert [r["start"] for r in rows] == sorted(r["start"] for r in rows)
    want = expected_codes(config)
    for r in rows:
        codes = want[r["segment_id"]]
        assert r["num_frames"] == codes.shape[1]
        assert r["codes"] == codes.T.reshape(-1).tolist()  # frame-major, equal to one-at-a-time encoding
    assert stats["utterances"] == 3 and stats["tokens"] == 8 * sum(r["num_frames"] for r in rows)
    assert stats["hours"] == pytest.approx(sum(r["end"] - r["start"] for r in rows) / 3600, rel=1e-3)


def test_emilia_semantic_only(tmp_path):
    write_broken_emilia_corpus(str(tmp_path / "raw"))
    config = TokenizeAudioConfig(
        str(tmp_path / "raw"),
        str(tmp_path / "out"),
        "emilia",
        languages=("en",),
        codec=CodecConfig(num_codebooks=1),
        max_skip_fraction=1.0,
    )
    stats = tokenize_audio(config)
    assert fileio.read_json(str(tmp_path / "out" / "codec.json"))["num_codebooks"] == 1
    rows = [r for t in read_tables(str(tmp_path / "out")).values() for r in t.to_pylist()]
    assert [r["segment_id"] for r in rows] == ["EN_000", "EN_001", "EN_002"]
    want = expected_codes(config)
    for r in rows:
        assert len(r["codes"]) == r["num_frames"] and r["codes"] == want[r["segment_id"]][0].tolist()
    assert stats["tokens"] == sum(r["num_frames"] for r in rows)
    assert stats["skipped"]["counts"]["other_language"] == 1


def test_second_run_does_nothing(tmp_path):
    write_yodas2_corpus(str(tmp_path / "raw"), num_shards=2)
    config = TokenizeAudioConfig(str(tmp_path / "raw"), str(tmp_path / "out"), "yodas2")
    first = tokenize_audio(config)
    mtimes = {n: os.stat(tmp_path / "out" / "shards" / n).st_mtime_ns for n in shard_files(tmp_path / "out")}
    second = tokenize_audio(config)
    assert first["shards_processed"] == ["en000-00000000", "en000-00000001"]
    assert first["shards_already_done"] == []
    assert second["shards_processed"] == [] and second["shards_already_done"] == first["shards_processed"]
    assert mtimes == {n: os.stat(tmp_path / "out" / "shards" / n).st_mtime_ns for n in shard_files(tmp_path / "out")}
    drop = ("shards_processed", "shards_already_done")
    assert {k: v for k, v in first.items() if k not in drop} == {k: v for k, v in second.items() if k not in drop}


def test_resume_refuses_a_different_codec(tmp_path):
    write_yodas2_corpus(str(tmp_path / "raw"), num_shards=1)
    tokenize_audio(TokenizeAudioConfig(str(tmp_path / "raw"), str(tmp_path / "out"), "yodas2"))
    with pytest.raises(ValueError, match="codec.json: output was written with codec"):
        tokenize_audio(
            TokenizeAudioConfig(str(tmp_path / "raw"), str(tmp_path / "out"), "yodas2", codec=CodecConfig(seed=1))
        )


def test_no_shards_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no emilia shards found"):
        tokenize_audio(TokenizeAudioConfig(str(tmp_path), str(tmp_path / "out"), "emilia"))


def run_step_in_subprocess(raw, out):
    command = [
        sys.executable,
        "-m",
        "soda_jax.data.tokenize_audio",
        "--input_path",
        raw,
        "--output_path",
        out,
        "--source",
        "yodas2",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # 35 s on 2 idle cores
def test_killed_run_resumes_only_missing_shards(tmp_path):
    raw, out, reference = str(tmp_path / "raw"), str(tmp_path / "out"), str(tmp_path / "reference")
    # ~40 s of speech per shard (~0.3 s to encode): the kill lands while most shards remain.
    write_yodas2_corpus(raw, num_shards=KILL_TEST_SHARDS, recordings_per_shard=3, sentences_per_recording=6)
    expected = tokenize_audio(TokenizeAudioConfig(raw, reference, "yodas2"))

    process = run_step_in_subprocess(raw, out)
    deadline = time.monotonic() + 120
    while not shard_files(out):
        assert process.poll() is None, f"step exited early: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no shard finished in time"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_at_kill = shard_files(out)
    print(f"killed with {len(done_at_kill)} of {KILL_TEST_SHARDS} shards done")
    assert 1 <= len(done_at_kill) < KILL_TEST_SHARDS, "the step finished before it could be killed"
    assert not os.path.exists(os.path.join(out, "stats.json"))
    tables_at_kill = read_tables(out)

    resumed = run_step_in_subprocess(raw, out)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    stats = fileio.read_json(os.path.join(out, "stats.json"))
    done_names = sorted(n.removesuffix(".parquet") for n in done_at_kill)
    assert stats["shards_already_done"] == done_names
    assert sorted(stats["shards_processed"] + done_names) == sorted(expected["shards_processed"])
    for name, table in tables_at_kill.items():  # finished shards were not rewritten
        assert read_tables(out)[name].equals(table)
    final, want = read_tables(out), read_tables(reference)
    assert list(final) == list(want)
    for name in want:
        assert final[name].equals(want[name])
        assert final[name].schema.metadata[SHARD_STATS_KEY] == want[name].schema.metadata[SHARD_STATS_KEY]
    drop = ("shards_processed", "shards_already_done")
    assert {k: v for k, v in stats.items() if k not in drop} == {k: v for k, v in expected.items() if k not in drop}
    assert np.isclose(stats["hours"], expected["hours"])


@pytest.mark.slow
def test_ray_tasks_give_the_same_output(tmp_path):
    import ray

    from soda_jax.execution.parallel import ensure_ray

    write_yodas2_corpus(str(tmp_path / "raw"), num_shards=3)
    tokenize_audio(TokenizeAudioConfig(str(tmp_path / "raw"), str(tmp_path / "local"), "yodas2"))
    ensure_ray()
    try:
        stats = tokenize_audio(TokenizeAudioConfig(str(tmp_path / "raw"), str(tmp_path / "ray"), "yodas2"))
    finally:
        ray.shutdown()
    assert len(stats["shards_processed"]) == 3
    local, remote = read_tables(str(tmp_path / "local")), read_tables(str(tmp_path / "ray"))
    assert list(local) == list(remote) and all(local[n].equals(remote[n]) for n in local)

"""MLS-En in its published layouts: OpenSLR 94's ``transcripts.txt`` + ``audio/{speaker}/{book}/*.flac``,
and the hub's parquet release (``parler-tts/mls_eng`` columns), with real espeak-ng speech at MLS's 16 kHz.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from helpers_audio import SENTENCES, needs_espeak, speech

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE, resample
from soda_jax.audio.codec import CodecConfig
from soda_jax.data.sources import SkipCounter, get_source, mls
from soda_jax.data.tokenize_audio import TokenizeAudioConfig, tokenize_audio

MLS_RATE = 16_000


def flac(sentence: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, resample(speech(SENTENCES[sentence]), MIMI_SAMPLE_RATE, MLS_RATE), MLS_RATE, format="FLAC")
    return buffer.getvalue()


def write_split(root: str, split: str, lines: list[str], audio: dict[str, int]) -> None:
    """``{split}/transcripts.txt`` of ``lines`` and ``{split}/audio/{speaker}/{book}/{id}.flac`` per ``audio``."""
    fileio.atomic_write_text(fileio.join(root, split, mls.TRANSCRIPTS_FILE), "".join(f"{line}\n" for line in lines))
    for utterance_id, sentence in audio.items():
        speaker, book, _ = utterance_id.split("_")
        fileio.atomic_write_bytes(
            fileio.join(root, split, "audio", speaker, book, f"{utterance_id}.flac"), flac(sentence)
        )


GOOD = {"100_200_000000": 0, "100_200_000001": 1, "100_300_000000": 3, "101_300_000000": 5}
"""Utterance id -> sentence of the train split's good lines."""


def write_openslr(root: str) -> None:
    """train: four good lines; a line without audio, audio without a line, a line without a tab, a bad id.
    dev: one good line."""
    lines = [f"{uid}\t{SENTENCES[s].lower()}" for uid, s in itertools.islice(GOOD.items(), 2)]
    lines += [
        "100_200_000002\tthis line has no audio",
        "a line without a tab",
        f"100_300_000000\t{SENTENCES[3]}",
        "bad-id\tsomething",
        f"101_300_000000\t{SENTENCES[5]}",
    ]
    write_split(root, "train", lines, {**GOOD, "100_200_000009": 2})  # 000009: audio without a line
    write_split(root, "dev", [f"200_400_000000\t{SENTENCES[4]}"], {"200_400_000000": 4})


def read_all(root, **kwargs):
    skips = SkipCounter()
    shards = mls.list_shards(root, **kwargs)
    return shards, [u for shard in shards for u in mls.read_shard(shard, skips)], skips


@pytest.fixture(scope="module")
def openslr(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mls_english"))
    write_openslr(root)
    return root


@needs_espeak
def test_openslr_train_split_with_bad_input_counted(openslr):
    shards, utterances, skips = read_all(openslr)
    assert [s.name for s in shards] == ["train-00000"]
    assert [u.segment_id for u in utterances] == list(GOOD)
    assert all(u.recording_id == u.segment_id and u.segment_index == 0 and u.language == "en" for u in utterances)
    assert [u.speaker for u in utterances] == ["100", "100", "100", "101"]
    assert utterances[0].text == SENTENCES[0].lower()
    assert dict(skips.counts) == {"missing_audio": 1, "no_transcript": 1, "bad_metadata": 2}
    assert "100_200_000002" in skips.examples["missing_audio"][0]
    assert "100_200_000009.flac: no line of transcripts.txt" in skips.examples["no_transcript"][0]


@needs_espeak
def test_splits_are_chosen_by_name_or_by_the_root(openslr):
    assert [s.name for s in mls.list_shards(openslr, splits=("dev", "train"))] == ["dev-00000", "train-00000"]
    shards, utterances, skips = read_all(fileio.join(openslr, "dev"))
    assert [s.name for s in shards] == ["dev-00000"] and [u.segment_id for u in utterances] == ["200_400_000000"]
    assert mls.list_shards(openslr, ("de",)) == [] and len(mls.list_shards(openslr, ("en", "de"))) == 1
    with pytest.raises(ValueError, match=r"unknown MLS split\(s\) \['validation'\]"):
        mls.list_shards(openslr, splits=("validation",))


@needs_espeak
def test_small_pieces_read_the_same_utterances_once(openslr):
    _, whole, whole_skips = read_all(openslr)
    for size in (1, 17, 40, 64, 100):
        shards, pieces, skips = read_all(openslr, bytes_per_shard=size)
        assert len(shards) > 1
        assert [u.segment_id for u in pieces] == [u.segment_id for u in whole], size
        assert skips.counts == whole_skips.counts, size  # no audio counted as orphaned by a cut book


def test_pieces_cover_every_line_once_and_keep_books_whole(tmp_path):
    """The widening rule on a file with long and short runs of books and malformed lines among them."""
    rng = np.random.default_rng(0)
    lines = []
    for book in range(30):
        for n in range(int(rng.integers(1, 12))):
            lines.append(f"{book % 7}_{book}_{n:06d}\t{'word ' * int(rng.integers(1, 9))}".encode())
            if rng.random() < 0.1:
                lines.append(b"malformed line")
    path = tmp_path / "transcripts.txt"
    path.write_bytes(b"\n".join(lines) + b"\n")
    size = path.stat().st_size
    for piece_bytes in (1, 2, 7, 50, 333, size - 1, size, 10 * size):
        seen, books_of = [], []
        with open(path, "rb") as f:
            for start in range(0, size, piece_bytes):
                got = [line for _, line in mls._shard_lines(f, start, min(start + piece_bytes, size))]
                seen += got
                books_of.append({mls.book_key(line) for line in got} - {None})
        assert seen == lines, piece_bytes
        assert sum(len(books) for books in books_of) == 30, piece_bytes  # each book in exactly one piece


def parquet_rows(sentences: list[int], speaker: int, book: int) -> list[dict]:
    return [
        {
            "audio": {"bytes": flac(s), "path": None},
            "original_path": f"http://www.archive.org/download/book_{book}/chapter_{i:02d}_64kb.mp3",
            "begin_time": 10.0 * i + 0.5,
            "end_time": 10.0 * i + 5.0,
            "transcript": SENTENCES[s].lower(),
            "audio_duration": 4.5,
            "speaker_id": str(speaker),
            "book_id": str(book),
        }
        for i, s in enumerate(sentences)
    ]


def write_parquet(path: str, rows: list[dict]) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    fileio.atomic_write_bytes(path, buffer.getvalue())


@needs_espeak
def test_parquet_release(tmp_path):
    rows = parquet_rows([0, 1, 2], speaker=100, book=200)
    rows[1]["audio"]["path"] = "100_200_000007.flac"  # an MLS id in the audio's path is used
    rows.append({**rows[0], "transcript": "", "begin_time": 99.0})
    rows.append({**rows[0], "audio": None, "begin_time": 98.0})
    write_parquet(str(tmp_path / "data/train-00000-of-00002.parquet"), rows)
    write_parquet(str(tmp_path / "data/dev-00000-of-00001.parquet"), parquet_rows([4], speaker=1, book=2))
    good = tmp_path / "data/train-00000-of-00002.parquet"
    (tmp_path / "data/train-00001-of-00002.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    shards, utterances, skips = read_all(str(tmp_path))
    assert [s.name for s in shards] == ["data-train-00000-of-00002", "data-train-00001-of-00002"]
    assert [u.segment_id for u in utterances] == ["100_200_00000050", "100_200_000007", "100_200_00002050"]
    assert [u.text for u in utterances] == [SENTENCES[s].lower() for s in (0, 1, 2)]
    assert {u.speaker for u in utterances} == {"100"}
    assert dict(skips.counts) == {"empty_text": 1, "missing_audio": 1, "corrupt_shard": 1}
    assert [s.name for s in mls.list_shards(str(tmp_path), splits=("dev",))] == ["data-dev-00000-of-00001"]


def test_parquet_without_the_release_columns_is_an_error(tmp_path):
    write_parquet(str(tmp_path / "train-00000-of-00001.parquet"), [{"text": "x"}])
    (shard,) = mls.list_shards(str(tmp_path))
    with pytest.raises(ValueError, match="train-00000-of-00001.parquet: no column.*'audio', 'transcript'"):
        list(mls.read_shard(shard, SkipCounter()))


@needs_espeak
def test_tokenize_audio_reads_mls(openslr, tmp_path):
    stats = tokenize_audio(
        TokenizeAudioConfig(openslr, str(tmp_path / "out"), "mls", codec=CodecConfig(num_codebooks=1))
    )
    assert get_source("mls") is mls
    assert stats["utterances"] == len(GOOD) and stats["shards"] == 1
    assert stats["skipped"]["counts"] == {"missing_audio": 1, "no_transcript": 1, "bad_metadata": 2}

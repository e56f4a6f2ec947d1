"""Nemotron-CC as NVIDIA publishes it (``.jsonl.zstd`` under ``quality=/kind=/kind2=`` partitions), and a
parquet tree of the same partitions, through ``tokenize_text``: selection, shard names, bad input."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from helpers_data import save_test_tokenizer

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data import caches
from soda_jax.data.text_sources import NEMOTRON_HQ_ACTUAL, list_text_files, partition_of
from soda_jax.data.tokenize_text import TokenizeTextConfig, tokenize_text

RELEASE = "contrib/Nemotron/Nemotron-CC/data-jsonl"
HQ_ACTUAL, HQ_DISTILL, MEDIUM = (
    "quality=high/kind=actual/kind2=actual",
    "quality=high/kind=synthetic/kind2=distill",
    "quality=medium/kind=actual/kind2=actual",
)
PART = "CC-MAIN-2013-20-part-00000"


def record(text, n: int) -> dict:
    return {"warc_record_id": f"<urn:uuid:{n:08d}>", "url": f"https://example.com/{n}", "text": text}


def jsonl(records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def zstd_frames(data: bytes, frames: int = 2) -> bytes:
    """``data`` compressed as ``frames`` zstandard frames (line-aligned, as a streaming writer makes them)."""
    lines = data.splitlines(keepends=True)
    step = -(-len(lines) // frames)
    compressor = zstandard.ZstdCompressor()
    return b"".join(compressor.compress(b"".join(lines[i : i + step])) for i in range(0, len(lines), step))


def texts_of(partition: str, count: int = 12) -> list[str]:
    kind = partition.split("/")[-1].split("=")[1]
    return [f"the quick brown fox {kind} document {i}" for i in range(count)]


def write_release(root, partitions=(HQ_ACTUAL, HQ_DISTILL, MEDIUM)) -> None:
    for n, partition in enumerate(partitions):
        path = root / RELEASE / partition / f"{PART}.jsonl.zstd"
        path.parent.mkdir(parents=True)
        path.write_bytes(zstd_frames(jsonl(record(t, 100 * n + i) for i, t in enumerate(texts_of(partition)))))


def decoded(out, tokenizer) -> list[str]:
    vocab = AudioTextVocab.from_pretrained(tokenizer)
    docs = caches.read_documents(str(out / "train")) + caches.read_documents(str(out / "validation"))
    return sorted(vocab.decode_text(d[1:-1]) for d in docs)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> str:
    return save_test_tokenizer(str(tmp_path_factory.mktemp("tok")))


def test_default_selection_is_hq_actual(tmp_path, tokenizer):
    write_release(tmp_path / "in")
    stats = tokenize_text(TokenizeTextConfig(str(tmp_path / "in"), str(tmp_path / "out"), tokenizer))
    assert NEMOTRON_HQ_ACTUAL == (HQ_ACTUAL,)
    assert decoded(tmp_path / "out", tokenizer) == sorted(texts_of(HQ_ACTUAL))
    assert stats["skipped_records"] == {} and stats["layout"]["partitions"] == [HQ_ACTUAL]


def test_equal_file_names_in_two_partitions_are_two_shards(tmp_path, tokenizer):
    write_release(tmp_path / "in")
    files = list_text_files(str(tmp_path / "in"), (HQ_ACTUAL, "quality=high/kind=synthetic"))
    assert [f.partition for f in files] == [HQ_ACTUAL, HQ_DISTILL]
    assert [f.shard_name for f in files] == [
        f"{RELEASE.replace('/', '-')}-{p.replace('/', '-')}-{PART}" for p in (HQ_ACTUAL, HQ_DISTILL)
    ]
    config = TokenizeTextConfig(str(tmp_path / "in"), str(tmp_path / "out"), tokenizer, partitions=())
    stats = tokenize_text(config)
    assert decoded(tmp_path / "out", tokenizer) == sorted(texts_of(HQ_ACTUAL) + texts_of(HQ_DISTILL) + texts_of(MEDIUM))
    assert stats["layout"]["partitions"] == [HQ_ACTUAL, HQ_DISTILL, MEDIUM]


def test_a_selection_that_matches_nothing_names_what_there_is(tmp_path, tokenizer):
    write_release(tmp_path / "in", (MEDIUM,))
    with pytest.raises(FileNotFoundError, match=r"no files in partitions \['quality=high/kind=actual/kind2=actual'\]"):
        tokenize_text(TokenizeTextConfig(str(tmp_path / "in"), str(tmp_path / "out"), tokenizer))


@pytest.mark.parametrize("suffix", [".jsonl.zstd", ".jsonl.gz"])
def test_a_truncated_file_keeps_what_was_read_and_counts_once(tmp_path, tokenizer, suffix):
    texts = [f"the lazy dog number {i} " * 30 for i in range(400)]
    data = jsonl(record(t, i) for i, t in enumerate(texts))
    whole = zstd_frames(data, frames=4) if suffix == ".jsonl.zstd" else gzip.compress(data)
    path = tmp_path / "in" / HQ_ACTUAL / f"{PART}{suffix}"
    path.parent.mkdir(parents=True)
    path.write_bytes(whole[: int(len(whole) * 0.6)])
    stats = tokenize_text(TokenizeTextConfig(str(tmp_path / "in"), str(tmp_path / "out"), tokenizer))
    kept = decoded(tmp_path / "out", tokenizer)
    assert stats["skipped_records"] == {"corrupt_shard": 1}  # the cut-off line is not also invalid_json
    assert 0 < len(kept) < len(texts) and set(kept) <= set(texts)
    assert sorted(texts[: len(kept)]) == kept  # a prefix of the file, in order


def test_bad_lines_are_counted_by_reason(tmp_path, tokenizer):
    lines = jsonl(record(t, i) for i, t in enumerate(texts_of(HQ_ACTUAL, 10)))
    lines += b"{not json\n" + b'{"text": "caf\xe9"}\n' + b'["a", "list"]\n' + b'{"url": "no text"}\n'
    lines += b'{"text": 7}\n' + b'{"text": ""}\n' + b"\n"
    path = tmp_path / "in" / HQ_ACTUAL / f"{PART}.jsonl.zstd"
    path.parent.mkdir(parents=True)
    path.write_bytes(zstd_frames(lines, frames=3))
    stats = tokenize_text(TokenizeTextConfig(str(tmp_path / "in"), str(tmp_path / "out"), tokenizer))
    assert stats["skipped_records"] == {
        "invalid_json": 2,
        "non_utf8": 1,
        "missing_or_non_string_text": 2,
        "empty_text": 1,
    }
    assert decoded(tmp_path / "out", tokenizer) == sorted(texts_of(HQ_ACTUAL, 10))


def test_parquet_release_of_the_same_partitions(tmp_path, tokenizer):
    for n, partition in enumerate((HQ_ACTUAL, MEDIUM)):
        path = tmp_path / "in" / partition / "part_000000.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([record(t, 10 * n + i) for i, t in enumerate(texts_of(partition))]), path)
    truncated = tmp_path / "in" / HQ_ACTUAL / "part_000001.parquet"
    truncated.write_bytes((tmp_path / "in" / HQ_ACTUAL / "part_000000.parquet").read_bytes()[:200])
    stats = tokenize_text(TokenizeTextConfig(str(tmp_path / "in"), str(tmp_path / "out"), tokenizer))
    assert decoded(tmp_path / "out", tokenizer) == sorted(texts_of(HQ_ACTUAL))
    assert stats["skipped_records"] == {"corrupt_shard": 1}


def test_partition_of():
    assert partition_of(f"{RELEASE}/{HQ_ACTUAL}/{PART}.jsonl.zstd") == HQ_ACTUAL
    assert partition_of("a/b.jsonl") == "" and partition_of("x=1/sub/y=2/f.parquet") == "x=1"

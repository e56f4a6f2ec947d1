"""YODAS2 as published (``espnet/yodas2``): trees built here in the release's own schema, read back.

The schema (docs/audio.md): ``data/{subset}/audio/{index:08d}.tar.gz`` with one ``{audio_id}.wav``
(24 kHz) per video at the archive's root, ``text/{index:08d}.json`` an array of
``{"audio_id", "text": {utterance id: caption}}``, ``duration/{index:08d}.txt`` lines
``{audio_id} {seconds:.2f}``. The hand-built tree copies two published records: cr000's
``Lyy-cIbMfMM`` (a '-' in the video id, a single caption numbered 00001) and bi000's
``kWkl4Xx6t6o`` (an empty caption map).
"""

import gzip
import io
import json
import os
import tarfile

import pytest
import soundfile as sf
from helpers_audio import SENTENCES, needs_espeak, recording, seconds, speech

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.data.sources import SkipCounter, yodas2
from soda_jax.data.synth import tar_gz_bytes, write_yodas2_shard

pytestmark = needs_espeak


def read_all(root, languages=()):
    skips = SkipCounter()
    utterances = [u for shard in yodas2.list_shards(root, languages) for u in yodas2.read_shard(shard, skips)]
    return utterances, skips


def wav_24k(audio) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, MIMI_SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_by_hand(root, subset: str, index: int, videos: list[tuple[str, object, dict]]) -> None:
    """One shard with the standard library only: ``videos`` are (audio_id, audio or None, captions)."""
    base = os.path.join(root, "data", subset)
    for kind in ("audio", "text", "duration"):
        os.makedirs(os.path.join(base, kind), exist_ok=True)
    with tarfile.open(os.path.join(base, "audio", f"{index:08d}.tar.gz"), "w:gz") as archive:
        for audio_id, audio, _ in videos:
            if audio is not None:
                data = wav_24k(audio)
                info = tarfile.TarInfo(f"{audio_id}.wav")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    with open(os.path.join(base, "text", f"{index:08d}.json"), "w") as f:
        json.dump([{"audio_id": audio_id, "text": captions} for audio_id, _, captions in videos], f)
    with open(os.path.join(base, "duration", f"{index:08d}.txt"), "w") as f:
        f.writelines(f"{audio_id} {seconds(audio):.2f}\n" for audio_id, audio, _ in videos if audio is not None)


def caption_id(audio_id: str, idx: int, start: float, end: float) -> str:
    return f"{audio_id}-{idx:05d}-{round(start * 100):08d}-{round(end * 100):08d}"


def test_utterance_ids_parse_from_the_right():
    assert yodas2.parse_utterance_id("Lyy-cIbMfMM-00001-00004329-00004529") == ("Lyy-cIbMfMM", 1, 43.29, 45.29)
    assert yodas2.parse_utterance_id("a-b-c-00000-00000000-00000100") == ("a-b-c", 0, 0.0, 1.0)
    for bad in ("kWkl4Xx6t6o", "abc-1-2-3", "abc-00001-0004329-00004529", "abc-00001-00004329-0000452x"):
        with pytest.raises(ValueError, match="is not"):
            yodas2.parse_utterance_id(bad)
    assert yodas2.chunk_id("Lyy-cIbMfMM", 1, 43.29, 45.29) == "Lyy-cIbMfMM-00001-00004329-00004529"


def test_reads_a_tree_in_the_published_schema(tmp_path):
    video = recording("Lyy-cIbMfMM", (0, 1))
    (s0, e0, t0), (s1, e1, t1) = video.segments
    captions = {caption_id("Lyy-cIbMfMM", 2, s1, e1): t1, caption_id("Lyy-cIbMfMM", 1, s0, e0): t0}
    empty = ("kWkl4Xx6t6o", speech(SENTENCES[2]), {})
    write_by_hand(tmp_path, "en000", 1, [("Lyy-cIbMfMM", video.audio, captions), empty])
    utterances, skips = read_all(str(tmp_path))
    assert [s.name for s in yodas2.list_shards(str(tmp_path))] == ["en000-00000001"]
    assert [(u.recording_id, u.segment_index, u.text, u.language, u.speaker) for u in utterances] == [
        ("Lyy-cIbMfMM", 0, t0, "en", "Lyy-cIbMfMM"),
        ("Lyy-cIbMfMM", 1, t1, "en", "Lyy-cIbMfMM"),
    ]  # time order; idx re-counted from 0 as SODA's chunk ids
    times = [t for u in utterances for t in (u.start, u.end)]
    assert times == pytest.approx([s0, e0, s1, e1], abs=0.0051)  # centiseconds
    assert [u.segment_id for u in utterances] == [
        yodas2.chunk_id("Lyy-cIbMfMM", 0, s0, e0),
        yodas2.chunk_id("Lyy-cIbMfMM", 1, s1, e1),
    ]
    assert abs(seconds(utterances[1].audio) - (utterances[1].end - utterances[1].start)) < 1e-3
    assert dict(skips.counts) == {"no_transcript": 1}  # bi000's empty caption map
    assert "kWkl4Xx6t6o.wav" in skips.examples["no_transcript"][0]
    # The data/ directory itself is a root too.
    again, _ = read_all(str(tmp_path / "data"))
    assert [u.segment_id for u in again] == [u.segment_id for u in utterances]


def test_the_demo_writer_writes_the_published_schema(tmp_path):
    videos = [recording("a-1", (0, 1)), recording("b", (2,))]
    write_yodas2_shard(str(tmp_path), "en000", 3, videos)
    audio_url, text_url, duration_url = yodas2.shard_urls(str(tmp_path), "en000", 3)
    assert audio_url == str(tmp_path / "data" / "en000" / "audio" / "00000003.tar.gz")
    archive = fileio.read_bytes(audio_url)
    assert archive[:2] == b"\x1f\x8b" and archive[4:8] == bytes(4)  # gzip, header time 0
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["a-1.wav", "b.wav"] and {m.mtime for m in members} == {0}
        info = sf.info(io.BytesIO(tar.extractfile(members[0]).read()))
    assert (info.format, info.samplerate, info.channels) == ("WAV", 24_000, 1)
    published = json.loads(fileio.read_text(text_url))
    assert [sorted(v) for v in published] == [["audio_id", "text"]] * 2
    b_id = yodas2.chunk_id("b", 0, *videos[1].segments[0][:2])
    assert published[1] == {"audio_id": "b", "text": {b_id: SENTENCES[2]}}
    assert fileio.read_text(duration_url) == "".join(f"{v.audio_id} {seconds(v.audio):.2f}\n" for v in videos)
    utterances, skips = read_all(str(tmp_path))
    assert skips.total == 0 and [u.text for u in utterances] == [SENTENCES[i] for i in (0, 1, 2)]


def test_a_language_selects_all_its_subsets(tmp_path):
    for subset, audio_id in (("en000", "e0"), ("en001", "e1"), ("de000", "d0")):
        write_yodas2_shard(str(tmp_path), subset, 0, [recording(audio_id, (0,))])
    (tmp_path / "data" / "README.md").write_text("not a subset")
    (tmp_path / "data" / "misc").mkdir()  # not a subset name: ignored
    names = [s.name for s in yodas2.list_shards(str(tmp_path))]
    assert names == ["de000-00000000", "en000-00000000", "en001-00000000"]
    utterances, _ = read_all(str(tmp_path), languages=("en",))
    assert [(u.recording_id, u.language) for u in utterances] == [("e0", "en"), ("e1", "en")]
    assert yodas2.list_shards(str(tmp_path), languages=("fr",)) == []


# ------------------------------------------------------------------------------------- bad input
def test_a_captions_file_that_does_not_parse_is_counted(tmp_path):
    write_yodas2_shard(str(tmp_path), "en000", 0, [recording("a", (0,))])
    write_yodas2_shard(str(tmp_path), "en000", 1, [recording("b", (1,))])
    _, text_url, _ = yodas2.shard_urls(str(tmp_path), "en000", 0)
    fileio.atomic_write_text(text_url, fileio.read_text(text_url)[:-5])  # cut short
    _, other_url, _ = yodas2.shard_urls(str(tmp_path), "en000", 1)
    fileio.atomic_write_text(other_url, json.dumps({"audio_id": "b", "text": {}}))  # an object, not an array
    utterances, skips = read_all(str(tmp_path))
    assert utterances == [] and dict(skips.counts) == {"unparsable_captions": 2}
    assert "invalid JSON" in skips.examples["unparsable_captions"][0]
    assert "not an array of videos" in skips.examples["unparsable_captions"][1]


def test_an_utterance_id_that_does_not_parse_is_counted(tmp_path):
    video = recording("x-y", (0, 1))
    (s0, e0, t0), (s1, e1, t1) = video.segments
    captions = {
        caption_id("x-y", 0, s0, e0): t0,
        f"x-y-00001-{s1:.2f}-{e1:.2f}": t1,  # seconds, not centiseconds
        caption_id("other", 2, s1, e1): t1,  # another video's id
    }
    write_by_hand(tmp_path, "en000", 0, [("x-y", video.audio, captions)])
    utterances, skips = read_all(str(tmp_path))
    assert [u.text for u in utterances] == [t0]
    assert dict(skips.counts) == {"bad_utterance_id": 2}
    assert "names video 'other'" in skips.examples["bad_utterance_id"][1]


def test_a_caption_whose_audio_member_is_missing_is_counted(tmp_path):
    kept, lost = recording("kept", (0,)), recording("lost", (1, 2))
    captions = {caption_id("lost", k, s, e): t for k, (s, e, t) in enumerate(lost.segments)}
    kept_captions = {caption_id("kept", 0, *kept.segments[0][:2]): kept.segments[0][2]}
    write_by_hand(tmp_path, "en000", 0, [("kept", kept.audio, kept_captions), ("lost", None, captions)])
    # An index with captions and no audio archive at all is listed and counted too.
    write_yodas2_shard(str(tmp_path), "en000", 1, [recording("gone", (3,))])
    os.remove(yodas2.shard_urls(str(tmp_path), "en000", 1)[0])
    assert [s.audio_url is None for s in yodas2.list_shards(str(tmp_path))] == [False, True]
    utterances, skips = read_all(str(tmp_path))
    assert [u.recording_id for u in utterances] == ["kept"]
    assert dict(skips.counts) == {"missing_audio": 3}  # one per caption
    assert any("gone-00000" in e and "no audio archive" in e for e in skips.examples["missing_audio"])


def test_a_truncated_tar_gz_keeps_what_came_before(tmp_path):
    short, long = recording("short", (0,)), recording("long", (1, 2, 3, 4, 5))
    write_yodas2_shard(str(tmp_path), "en000", 0, [short, long])
    audio_url, _, _ = yodas2.shard_urls(str(tmp_path), "en000", 0)
    archive = fileio.read_bytes(audio_url)
    fileio.atomic_write_bytes(audio_url, archive[: int(len(archive) * 0.6)])  # inside long.wav
    utterances, skips = read_all(str(tmp_path))
    assert [u.recording_id for u in utterances] == ["short"]
    assert dict(skips.counts) == {"corrupt_shard": 1} and "00000000.tar.gz" in skips.examples["corrupt_shard"][0]
    fileio.atomic_write_bytes(audio_url, tar_gz_bytes([("short.wav", b"x" * 10_000)])[:40])  # in the first block
    assert read_all(str(tmp_path))[1].counts == {"corrupt_shard": 1}


def test_other_bad_records_are_counted(tmp_path):
    good = recording("good", (0,))
    good_captions = {caption_id("good", 0, *good.segments[0][:2]): good.segments[0][2]}
    stray = speech(SENTENCES[1])
    write_by_hand(tmp_path, "en000", 0, [("good", good.audio, good_captions), ("stray", stray, {})])
    _, text_url, duration_url = yodas2.shard_urls(str(tmp_path), "en000", 0)
    videos = json.loads(fileio.read_text(text_url))
    # No audio_id, a string, a second entry of "good"; "stray" has audio but no entry now.
    videos = [videos[0], {"text": {}}, "not a video", {**videos[0], "text": {}}]
    fileio.atomic_write_text(text_url, json.dumps(videos))
    fileio.atomic_write_text(duration_url, fileio.read_text(duration_url) + "broken line here\nx -1\n")
    utterances, skips = read_all(str(tmp_path))
    assert [u.recording_id for u in utterances] == ["good"]
    assert dict(skips.counts) == {"bad_metadata": 5, "no_transcript": 1}
    assert "stray.wav" in skips.examples["no_transcript"][0]
    # Without a duration file the audio is read unchecked; without a captions file, counted.
    os.remove(duration_url)
    assert [u.recording_id for u in read_all(str(tmp_path))[0]] == ["good"]
    os.remove(text_url)
    utterances, skips = read_all(str(tmp_path))
    assert utterances == [] and dict(skips.counts) == {"no_transcript": 1}
    assert "captions file missing" in skips.examples["no_transcript"][0]

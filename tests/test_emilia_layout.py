"""Emilia and Emilia-YODAS read from one checkout of ``amphion/Emilia-Dataset`` as published.

The fixture is a tiny checkout in the published layout (``Emilia/{LANG}/{LANG}-B{n:06d}.tar``,
``Emilia-YODAS/{LANG}/...``; per utterance an mp3 and a json with id, text, duration, speaker,
language) with real espeak-ng speech. Tars that must never be opened hold garbage: opening one
would count ``corrupt_shard``.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from helpers_audio import SENTENCES, needs_espeak, speech

from soda_jax import fileio
from soda_jax.audio.codec import CodecConfig
from soda_jax.data.sources import SkipCounter, emilia, emilia_yodas, get_source
from soda_jax.data.synth import ShortUtterance, write_emilia_shard
from soda_jax.data.tokenize_audio import TokenizeAudioConfig, tokenize_audio

pytestmark = needs_espeak

NOT_A_TAR = b"this is not a tar: opening it would count corrupt_shard " * 20


def utterance(uid: str, sentence: int, language: str = "en") -> ShortUtterance:
    return ShortUtterance(uid, speech(SENTENCES[sentence]), SENTENCES[sentence], uid.rsplit("_", 1)[0], language)


def write_checkout(root: str) -> dict[str, set[str]]:
    """A checkout with both halves; returns the English utterance ids of each half."""
    emilia_ids = {"EN_B00000_S00000_W000000", "EN_B00000_S00000_W000001", "EN_B00001_S00003_W000000"}
    yodas_ids = {"EN_B000000_S000000_W000000", "EN_B000000_S000001_W000000"}
    write_emilia_shard(
        fileio.join(root, "Emilia/EN/EN-B000000.tar"),
        [
            utterance("EN_B00000_S00000_W000000", 0),
            utterance("EN_B00000_S00000_W000001", 1),
            utterance("EN_B00000_S00001_W000000", 2, language="zh"),
        ],  # a json stating another language
    )
    write_emilia_shard(fileio.join(root, "Emilia/EN/EN-B000001.tar"), [utterance("EN_B00001_S00003_W000000", 3)])
    fileio.atomic_write_bytes(fileio.join(root, "Emilia/ZH/ZH-B000000.tar"), NOT_A_TAR)
    fileio.atomic_write_bytes(fileio.join(root, "Emilia/EN/ZH-B000007.tar"), NOT_A_TAR)  # misfiled under EN
    write_emilia_shard(
        fileio.join(root, "Emilia-YODAS/EN/EN-B000000.tar"),
        [utterance("EN_B000000_S000000_W000000", 4), utterance("EN_B000000_S000001_W000000", 5)],
    )
    fileio.atomic_write_bytes(fileio.join(root, "Emilia-YODAS/DE/DE-B000000.tar"), NOT_A_TAR)
    return {"emilia": emilia_ids, "emilia_yodas": yodas_ids}


def read_all(source, root, languages=()):
    skips = SkipCounter()
    utterances = [u for shard in source.list_shards(root, languages) for u in source.read_shard(shard, skips)]
    return utterances, skips


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("emilia-dataset"))
    return root, write_checkout(root)


def test_each_half_lists_only_its_subtree_and_the_selected_languages(checkout):
    root, _ = checkout
    assert [s.name for s in emilia.list_shards(root, ("en",))] == ["EN-EN-B000000", "EN-EN-B000001", "EN-ZH-B000007"]
    assert [s.name for s in emilia_yodas.list_shards(root, ("en",))] == ["EN-EN-B000000"]
    assert [s.name for s in emilia.list_shards(root)] == [
        "EN-EN-B000000",
        "EN-EN-B000001",
        "EN-ZH-B000007",
        "ZH-ZH-B000000",
    ]
    assert [s.name for s in emilia_yodas.list_shards(root)] == ["DE-DE-B000000", "EN-EN-B000000"]
    assert [(s.language, s.name_language) for s in emilia.list_shards(root, ("en",))] == [
        ("en", "en"),
        ("en", "en"),
        ("en", "zh"),
    ]
    assert get_source("emilia_yodas") is emilia_yodas


def test_no_utterance_is_in_two_components(checkout):
    root, written = checkout
    read = {}
    for name in ("emilia", "emilia_yodas"):
        utterances, skips = read_all(get_source(name), root, ("en",))
        read[name] = [u.segment_id for u in utterances]
        assert len(set(read[name])) == len(read[name])
        assert set(read[name]) == written[name], name
        assert all(u.language == "en" for u in utterances)
        if name == "emilia":
            # the zh json counted; the misfiled ZH tar counted without being opened (else corrupt_shard)
            assert dict(skips.counts) == {"other_language": 1, "other_language_shard": 1}
            assert "ZH-B000007.tar" in skips.examples["other_language_shard"][0]
        else:
            assert skips.total == 0  # DE never listed, so never opened
    assert not set(read["emilia"]) & set(read["emilia_yodas"])


def test_without_a_language_filter_every_tar_is_read(checkout):
    root, written = checkout
    utterances, skips = read_all(emilia, root)
    assert {u.segment_id for u in utterances} == written["emilia"] | {"EN_B00000_S00001_W000000"}
    assert dict(skips.counts) == {"corrupt_shard": 2}  # the two garbage tars, now opened


def test_a_checkout_without_a_half_lists_nothing_for_it(tmp_path):
    write_emilia_shard(str(tmp_path / "Emilia/EN/EN-B000000.tar"), [utterance("EN_B00000_S00000_W000000", 0)])
    assert emilia_yodas.list_shards(str(tmp_path)) == []
    with pytest.raises(ValueError, match="no emilia_yodas shards found"):
        tokenize_audio(TokenizeAudioConfig(str(tmp_path), str(tmp_path / "out"), "emilia_yodas"))


@pytest.mark.parametrize(
    "tree, names",
    [
        ("Emilia/EN/EN-B000000.tar", ["EN-EN-B000000"]),  # root = the checkout
        ("EN/EN-B000000.tar", ["EN-EN-B000000"]),  # root = Emilia/ itself, or the 2024 revision
        ("EN-B000000.tar", ["EN-B000000"]),  # a flat directory of tars (the demo corpus)
    ],
)
def test_the_published_subtrees_and_flat_trees_read_alike(tmp_path, tree, names):
    write_emilia_shard(str(tmp_path / tree), [utterance("EN_B00000_S00000_W000000", 0)])
    assert [s.name for s in emilia.list_shards(str(tmp_path), ("en",))] == names
    utterances, skips = read_all(emilia, str(tmp_path), ("en",))
    assert [u.segment_id for u in utterances] == ["EN_B00000_S00000_W000000"] and skips.total == 0


def test_path_languages():
    assert emilia.path_languages("EN/EN-B000000.tar") == ("en", "en")
    assert emilia.path_languages("EN/ZH-B000001.tar") == ("en", "zh")
    assert emilia.path_languages("a/EN-B000000.tar") == ("", "en")
    assert emilia.path_languages("shard.tar") == ("", "")


def test_tokenize_audio_of_both_halves_of_one_checkout(checkout, tmp_path):
    root, written = checkout
    segments, expected_skips = {}, {"emilia": {"other_language": 1, "other_language_shard": 1}, "emilia_yodas": {}}
    for name in ("emilia", "emilia_yodas"):
        out = tmp_path / name
        stats = tokenize_audio(
            TokenizeAudioConfig(root, str(out), name, languages=("en",), codec=CodecConfig(num_codebooks=1))
        )
        segments[name] = {
            r["segment_id"] for f in sorted((out / "shards").iterdir()) for r in pq.read_table(f).to_pylist()
        }
        assert stats["utterances"] == len(written[name]) and segments[name] == written[name]
        assert stats["skipped"]["counts"] == expected_skips[name]
    assert not segments["emilia"] & segments["emilia_yodas"]

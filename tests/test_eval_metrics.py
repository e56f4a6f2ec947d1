"""Evaluation arithmetic without a model: WER, normalisers, codebook selection, N-shot prompts,
data layouts and their bad-input reasons."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from helpers_data import save_test_tokenizer

from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.eval.codebooks import codebook_mask, select_codebooks, soda_reshape_selection
from soda_jax.eval.normalize import seed_tts_normalize, soda_normalize, whisper_normalize
from soda_jax.eval.pairs import PairTask, summarize_pairs, wilson_interval
from soda_jax.eval.readers import (
    EMPTY_TEXT,
    MALFORMED_RECORD,
    MISSING_AUDIO,
    UNREADABLE_AUDIO,
    BadInput,
    audio_cell,
    read_librispeech,
    read_seed_tts,
    read_table_rows,
)
from soda_jax.eval.wer import word_error_rate
from soda_jax.inference.prompts import asr_nshot_prompt, choose_shots


# ----------------------------------------------------------------------------------- WER
def test_identical_transcripts_have_zero_wer():
    result = word_error_rate(["the cat sat", "on the mat"], ["the cat sat", "on the mat"])
    assert result.corpus_wer == 0 and result.mean_utterance_wer == 0 and result.reference_words == 6


def test_known_edits_give_known_corpus_and_mean_wer():
    # one substitution in a 4-word reference, one deletion + one insertion in a 2-word reference
    result = word_error_rate(["a b c d", "e f"], ["a x c d", "f g"])
    assert (result.errors, result.reference_words) == (3, 6)
    assert result.corpus_wer == pytest.approx(3 / 6)  # errors over all reference words
    assert result.mean_utterance_wer == pytest.approx((1 / 4 + 2 / 2) / 2)  # mean of per-utterance WERs


def test_normalised_reference_that_is_empty_is_counted_not_scored():
    result = word_error_rate(["...", "hello world"], ["x", "hello world"], soda_normalize)
    assert result.empty_references == 1 and result.utterances == 1 and result.corpus_wer == 0


def test_soda_normaliser_on_its_own_examples():
    assert soda_normalize("HE HOPED THERE WOULD BE STEW FOR DINNER, TURNIPS AND CARROTS.") == (
        "he hoped there would be stew for dinner turnips and carrots"
    )
    assert (
        soda_normalize("\u201cIt's   (well) [sort of] {so}-so!\u201d she said; yes: no?")
        == "its well sort of soso she said yes no"
    )
    assert soda_normalize("  \u2018Mr. O\u2019Brien\u2019  ") == "mr obrien"


def test_seed_tts_normaliser_keeps_apostrophes_and_whisper_spells_numbers_as_digits():
    assert seed_tts_normalize("It's a dog, isn't it?") == "it's a dog isn't it"
    assert whisper_normalize("Twenty five dollars, Mr. Smith!") == "$25 mister smith"


def test_pair_summary_reports_groups_ties_and_the_strict_comparison():
    task = PairTask("salmon", "unused", group_field="task")
    records = [
        {"group": "gender", "positive": -1.0, "negative": -2.0, "correct": True, "tie": False},
        {"group": "gender", "positive": -2.0, "negative": -2.0, "correct": False, "tie": True},
        {"group": "room", "positive": -1.0, "negative": -1.5, "correct": True, "tie": False},
    ]
    summary = summarize_pairs(task, records)
    assert summary["metrics"] == {
        "accuracy": pytest.approx(2 / 3),
        "accuracy/gender": 0.5,
        "accuracy/room": 1.0,
        "accuracy_macro": 0.75,
    }
    assert summary["ties"] == 1 and summary["correct"] == 2


def test_wilson_interval_brackets_the_accuracy():
    low, high = wilson_interval(8, 10)
    assert low < 0.8 < high and 0 <= low and high <= 1
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


# ------------------------------------------------------------------------- codebook selection
def test_codebook_selection_keeps_codebooks_not_time():
    frames, k = 6, 4
    tokens = np.arange(frames * 8)  # frame-major: token t is frame t // 8, codebook t % 8
    ours = select_codebooks(tokens, k)
    assert set(ours % 8) == set(range(k)) and set(ours // 8) == set(range(frames))  # every frame, codebooks 0..3
    theirs = soda_reshape_selection(tokens, k)
    assert set(theirs % 8) == set(range(8)) and set(theirs // 8) == set(
        range(frames // 2)
    )  # all codebooks, half the time
    assert ours.size == theirs.size and not np.array_equal(np.sort(ours), np.sort(theirs))
    assert codebook_mask(16, 1).tolist() == [True] + [False] * 7 + [True] + [False] * 7
    with pytest.raises(ValueError, match="whole number"):
        codebook_mask(12, 4)


# ------------------------------------------------------------------------------ N-shot prompts
@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> AudioTextVocab:
    return AudioTextVocab.from_pretrained(save_test_tokenizer(str(tmp_path_factory.mktemp("tok"))))


def test_nshot_asr_prompt_golden_ids(vocab):
    a = vocab.codes_to_ids(np.array([[1], [2], [3], [4], [5], [6], [7], [8]]))
    b = vocab.codes_to_ids(np.array([[9], [10], [11], [12], [13], [14], [15], [16]]))
    c = vocab.codes_to_ids(np.array([[0], [0], [0], [0], [0], [0], [0], [0]]))
    hi, yo = vocab.encode_text("hi").tolist(), vocab.encode_text("yo").tolist()
    bos, eos, ts, te, as_, ae = (
        vocab.bos_id,
        vocab.eos_id,
        vocab.text_start_id,
        vocab.text_end_id,
        vocab.audio_start_id,
        vocab.audio_end_id,
    )
    expected = [bos, as_, *a, ae, ts, *hi, te, eos] + [bos, as_, *b, ae, ts, *yo, te, eos] + [bos, as_, *c, ae, ts]
    assert asr_nshot_prompt(vocab, [(a, "hi"), (b, "yo")], c).tolist() == expected
    o = vocab.audio_offset
    assert a.tolist() == [
        o + 1,
        o + 2048 + 2,
        o + 2 * 2048 + 3,
        o + 3 * 2048 + 4,
        o + 4 * 2048 + 5,
        o + 5 * 2048 + 6,
        o + 6 * 2048 + 7,
        o + 7 * 2048 + 8,
    ]


def test_shot_choice_is_deterministic_per_seed_and_varies_per_item():
    draws = [choose_shots(50, 3, item_index=i, seed=7) for i in range(10)]
    assert draws == [choose_shots(50, 3, item_index=i, seed=7) for i in range(10)]
    assert len({tuple(d) for d in draws}) > 1  # per-item shots by default
    assert draws != [choose_shots(50, 3, item_index=i, seed=8) for i in range(10)]
    same = {tuple(choose_shots(50, 3, item_index=i, seed=7, same_for_every_item=True)) for i in range(10)}
    assert len(same) == 1  # SODA's script's behaviour, as an option


def test_validation_caches_come_from_the_runs_executor_record(tmp_path):
    import json

    from soda_jax.eval.nll import recorded_caches

    data = {"components": {"yodas2": {"cache_dir": "/c/yodas2"}, "emilia": {"cache_dir": None}}, "cache_dir": "/c"}
    (tmp_path / ".executor_info").write_text(json.dumps({"config": {"data": data}}))
    assert recorded_caches(str(tmp_path)) == ("/c/emilia", "/c/yodas2")
    with pytest.raises(FileNotFoundError, match="caches="):
        recorded_caches(str(tmp_path / "elsewhere"))


# ------------------------------------------------------------------------------ data layouts
def _wav_bytes(seconds=0.2, rate=16000) -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * np.sin(np.arange(int(seconds * rate)) / 5).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def test_tables_read_audio_in_every_stored_form(tmp_path):
    rows = [
        {"id": "a", "positive": {"bytes": _wav_bytes(), "path": "a.wav"}, "positive_word": "cat"},
        {"id": "b", "positive": {"bytes": None, "path": "b.wav"}, "positive_word": "dog"},
    ]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "test-00000.parquet")
    (tmp_path / "data" / "b.wav").write_bytes(_wav_bytes(0.1))
    read = list(read_table_rows(str(tmp_path)))
    assert [r["id"] for _, r in read] == ["a", "b"]
    assert audio_cell(read[0][1], "positive", read[0][0], str(tmp_path)).load(16000).size == 3200
    assert audio_cell(read[1][1], "positive", read[1][0], str(tmp_path / "data")).load(16000).size == 1600
    # a datasets.save_to_disk export (arrow streaming format) holding decoded arrays
    arrow_dir = tmp_path / "saved"
    arrow_dir.mkdir()
    table = pa.Table.from_pylist([{"positive": {"array": [0.0, 0.5, -0.5, 0.0], "sampling_rate": 16000}}])
    with pa.ipc.new_stream(str(arrow_dir / "data-00000-of-00001.arrow"), table.schema) as writer:
        writer.write_table(table)
    ((where, row),) = read_table_rows(str(arrow_dir))
    assert audio_cell(row, "positive", where, str(arrow_dir)).load(16000).size == 4
    with pytest.raises(BadInput) as missing:
        audio_cell({"positive": {"bytes": None, "path": "nowhere.wav"}}, "positive", "t#0", str(tmp_path)).load()
    assert missing.value.reason == MISSING_AUDIO and "nowhere.wav" in missing.value.detail


def test_librispeech_and_seed_tts_bad_records_name_their_reason(tmp_path):
    chapter = tmp_path / "test-clean" / "19" / "198"
    chapter.mkdir(parents=True)
    (chapter / "19-198-0000.flac").write_bytes(_wav_bytes())
    (chapter / "19-198-0001.flac").write_bytes(b"not audio at all")
    (chapter / "19-198.trans.txt").write_text(
        "19-198-0000 HELLO\n19-198-0001 BROKEN FILE\n19-198-0002 NO FILE\n19-198-0003\n"
    )
    items = list(read_librispeech(str(tmp_path), "test-clean"))
    assert [getattr(i, "id", None) or i.item_id for i in items] == [
        "19-198-0000",
        "19-198-0001",
        "19-198-0002",
        "19-198-0003",
    ]
    assert items[0].audio.load().size > 0 and items[0].text == "HELLO"
    reasons = []
    for item in items[1:3]:
        with pytest.raises(BadInput) as error:
            item.audio.load()
        reasons.append(error.value.reason)
    assert reasons == [UNREADABLE_AUDIO, MISSING_AUDIO]
    assert isinstance(items[3], BadInput) and items[3].reason == EMPTY_TEXT and "trans.txt:4" in items[3].detail

    meta = tmp_path / "meta.lst"
    meta.write_text("u1|hello there|wavs/u1.wav|good morning\nu2|only three|wavs/u2.wav\n")
    first, second = read_seed_tts(str(meta))
    assert first.prompt_audio.path == f"{tmp_path}/wavs/u1.wav" and first.target_text == "good morning"
    assert isinstance(second, BadInput) and second.reason == MALFORMED_RECORD and "meta.lst:2" in second.detail


def test_pair_tasks_read_the_public_releases_fields(tmp_path):
    """SALMon's ``positive_audio`` / ``negative_audio`` / ``task``, sWUGGY's and sBLIMP's fields
    (speech and text versions); a row without its negative is counted, not fatal."""
    from soda_jax.eval.pairs import _items, salmon, sblimp, swuggy, tblimp, twuggy
    from soda_jax.eval.results import TaskStore

    def audio(seconds):
        return {"bytes": _wav_bytes(seconds), "path": None}

    salmon_rows = [
        {"ind": 0, "task": "gender", "positive_audio": audio(0.1), "negative_audio": audio(0.2)},
        {"ind": 1, "task": "room", "positive_audio": audio(0.3), "negative_audio": None},
    ]
    pq.write_table(pa.Table.from_pylist(salmon_rows), tmp_path / "salmon.parquet")
    store = TaskStore(str(tmp_path / "out"), "salmon")
    (item,) = _items(salmon(str(tmp_path / "salmon.parquet")), store)
    assert item.group == "gender" and [len(w) / MIMI_SAMPLE_RATE for w in item.content] == pytest.approx([0.1, 0.2])
    assert store.skip_counts() == {MISSING_AUDIO: 1}

    blimp_rows = [
        {
            "id": "b0",
            "positive": audio(0.1),
            "negative": audio(0.2),
            "positive_word": "cat",
            "negative_word": "cag",
            "positive_transcription": "The Cat sat",
            "negative_transcription": "The Cat sit",
        }
    ]
    pq.write_table(pa.Table.from_pylist(blimp_rows), tmp_path / "pairs.parquet")
    path = str(tmp_path / "pairs.parquet")
    for task in (swuggy(path), sblimp(path)):
        (item,) = _items(task, TaskStore(str(tmp_path / "out"), task.name))
        assert [len(w) / MIMI_SAMPLE_RATE for w in item.content] == pytest.approx([0.1, 0.2])
    (text,) = _items(twuggy(path), TaskStore(str(tmp_path / "out"), "twuggy"))
    assert text.content == ["cat", "cag"]
    (text,) = _items(tblimp(path), TaskStore(str(tmp_path / "out"), "tblimp"))
    assert text.content == ["the cat sat", "the cat sit"]  # lowercased, as SODA does

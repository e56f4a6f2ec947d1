"""Document patterns: golden id sequences on a hand-made 2-segment recording, round trips, splitting."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_data import save_test_tokenizer

from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.data.interleave import (
    Markers,
    audio_ids,
    get_pattern,
    interleave_recording,
    interleave_segments,
    segment_lengths,
    split_segments,
    text_only,
)
from soda_jax.data.parse import DocumentParseError, document_contents, parse_document

K = 8


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> AudioTextVocab:
    return AudioTextVocab.from_pretrained(save_test_tokenizer(str(tmp_path_factory.mktemp("tok"))))


@pytest.fixture(scope="module")
def recording(vocab):
    """Two segments: 'hello world' with 2 frames, 'the cat' with 1 frame; codes[c, f] = 10*c + f (+100 for seg 2)."""
    codes = [
        np.array([[10 * c + f for f in range(2)] for c in range(K)], dtype=np.int16),
        np.array([[100 + 10 * c] for c in range(K)], dtype=np.int16),
    ]
    texts = [vocab.encode_text("hello world"), vocab.encode_text("the cat")]
    return texts, codes


def hand_audio(vocab, codes: np.ndarray, codebooks=range(K)) -> list[int]:
    """Frame-major ids written out the slow, obvious way."""
    return [
        vocab.audio_offset + c * vocab.codebook_size + int(codes[c, f])
        for f in range(codes.shape[1])
        for c in codebooks
    ]


def flat(codes: np.ndarray) -> np.ndarray:
    return codes.T.reshape(-1)


def build(vocab, name, texts, codes, **kwargs):
    return interleave_recording(
        get_pattern(name), texts, [flat(c) for c in codes], K, Markers.from_vocab(vocab), **kwargs
    )


def test_audio_ids_match_vocab_codes_to_ids(vocab, recording):
    _, codes = recording
    for c in codes:
        np.testing.assert_array_equal(audio_ids(flat(c), K, vocab), vocab.codes_to_ids(c))
        np.testing.assert_array_equal(audio_ids(flat(c), K, vocab, semantic_only=True), vocab.codes_to_ids(c[:1]))


def test_text_first_golden(vocab, recording):
    texts, codes = recording
    (doc,) = build(vocab, "text_first", texts, codes)
    v = vocab
    expected = (
        [v.bos_id]
        + [
            v.text_start_id,
            *texts[0].tolist(),
            v.text_end_id,
            v.audio_start_id,
            *hand_audio(v, codes[0]),
            v.audio_end_id,
        ]
        + [
            v.text_start_id,
            *texts[1].tolist(),
            v.text_end_id,
            v.audio_start_id,
            *hand_audio(v, codes[1]),
            v.audio_end_id,
        ]
        + [v.eos_id]
    )
    assert doc.dtype == np.int32
    assert doc.tolist() == expected
    # SODA type1 is the same pattern
    assert build(vocab, "type1", texts, codes)[0].tolist() == expected


def test_audio_first_golden(vocab, recording):
    texts, codes = recording
    (doc,) = build(vocab, "type2", texts, codes)
    v = vocab
    expected = (
        [v.bos_id]
        + [
            v.audio_start_id,
            *hand_audio(v, codes[0]),
            v.audio_end_id,
            v.text_start_id,
            *texts[0].tolist(),
            v.text_end_id,
        ]
        + [
            v.audio_start_id,
            *hand_audio(v, codes[1]),
            v.audio_end_id,
            v.text_start_id,
            *texts[1].tolist(),
            v.text_end_id,
        ]
        + [v.eos_id]
    )
    assert doc.tolist() == expected


def test_audio_only_and_semantic_only_golden(vocab, recording):
    texts, codes = recording
    v = vocab
    (full,) = build(vocab, "audio_only", texts, codes)
    (semantic,) = build(vocab, "semantic_only", texts, codes)
    assert full.tolist() == [
        v.bos_id,
        v.audio_start_id,
        *hand_audio(v, codes[0]),
        v.audio_end_id,
        v.audio_start_id,
        *hand_audio(v, codes[1]),
        v.audio_end_id,
        v.eos_id,
    ]
    # codebook 0 only: seg 1 frames 0, 1 -> codes 0, 1; seg 2 frame 0 -> code 100
    assert semantic.tolist() == [
        v.bos_id,
        v.audio_start_id,
        v.audio_offset + 0,
        v.audio_offset + 1,
        v.audio_end_id,
        v.audio_start_id,
        v.audio_offset + 100,
        v.audio_end_id,
        v.eos_id,
    ]


def test_speaker_marker_follows_text_start(vocab, recording):
    texts, codes = recording
    speakers = [vocab.encode_text("[0]"), vocab.encode_text("[1]")]
    (doc,) = build(vocab, "text_first", texts, codes, speakers=speakers)
    v = vocab
    starts = np.flatnonzero(doc == v.text_start_id)
    for start, speaker, text in zip(starts, speakers, texts):
        n = len(speaker)
        assert doc[start + 1 : start + 1 + n].tolist() == speaker.tolist()
        assert doc[start + 1 + n : start + 1 + n + len(text)].tolist() == text.tolist()
        assert doc[start + 1 + n + len(text)] == v.text_end_id


def test_text_only_golden(vocab):
    ids = vocab.encode_text("the quick brown fox")
    assert text_only(ids, Markers.from_vocab(vocab)).tolist() == [vocab.bos_id, *ids.tolist(), vocab.eos_id]


@pytest.mark.parametrize("name", ["text_first", "audio_first"])
def test_round_trip_text_and_codes(vocab, name):
    rng = np.random.default_rng(7)
    codes = [rng.integers(0, 2048, size=(K, int(rng.integers(1, 9)))).astype(np.int16) for _ in range(5)]
    texts = [vocab.encode_text(t) for t in ["a long recording", "becomes one", "document", "hello", "world"]]
    (doc,) = build(vocab, name, texts, codes)
    contents = document_contents(doc, vocab, num_codebooks=K)
    expected_order = ["text", "audio"] * 5 if name == "text_first" else ["audio", "text"] * 5
    assert contents.order == expected_order
    assert [t.tolist() for t in contents.texts] == [t.tolist() for t in texts]
    assert len(contents.codes) == len(codes)
    for got, want in zip(contents.codes, codes):
        np.testing.assert_array_equal(got, want)
    assert [vocab.decode_text(t) for t in contents.texts] == [
        "a long recording",
        "becomes one",
        "document",
        "hello",
        "world",
    ]


def test_round_trip_semantic_only(vocab, recording):
    texts, codes = recording
    (doc,) = build(vocab, "semantic_only", texts, codes)
    contents = document_contents(doc, vocab, num_codebooks=1)
    assert contents.texts == []
    for got, want in zip(contents.codes, codes):
        np.testing.assert_array_equal(got, want[:1])


def test_text_only_document_parses_as_one_text_span(vocab):
    ids = vocab.encode_text("hello world")
    spans = parse_document(text_only(ids, Markers.from_vocab(vocab)), vocab)
    assert [(s.kind, s.ids.tolist()) for s in spans] == [("text", ids.tolist())]


def test_parser_rejects_malformed_documents(vocab, recording):
    texts, codes = recording
    (doc,) = build(vocab, "text_first", texts, codes)
    with pytest.raises(DocumentParseError, match="never closed"):
        parse_document(doc[:-3], vocab)  # drops <|audio_end|>-adjacent tail
    swapped = doc.copy()
    swapped[np.flatnonzero(doc == vocab.text_end_id)[0]] = vocab.audio_end_id
    with pytest.raises(DocumentParseError, match="inside the text span"):
        parse_document(swapped, vocab)
    audio_in_text = doc.copy()
    audio_in_text[2] = vocab.audio_offset
    with pytest.raises(DocumentParseError, match="position 2: an audio id in a text span"):
        parse_document(audio_in_text, vocab)


def test_partial_model_output_trims_incomplete_frame(vocab, recording):
    texts, codes = recording
    (doc,) = build(vocab, "audio_first", texts, codes)
    cut = int(np.flatnonzero(doc == vocab.audio_end_id)[0]) - 3  # inside seg 1's last frame
    contents = document_contents(doc[:cut], vocab, num_codebooks=K, partial=True)
    assert contents.dropped_audio_tokens == K - 3
    np.testing.assert_array_equal(contents.codes[0], codes[0][:, :1])


def test_split_segments_never_cuts_a_segment():
    lengths = np.array([10, 10, 10, 50, 5, 5])
    groups = split_segments(lengths, max_document_tokens=25)
    assert groups == [slice(0, 2), slice(2, 3), slice(3, 4), slice(4, 6)]
    assert split_segments(lengths, None) == [slice(0, 6)]


def test_max_document_tokens_splits_recording_into_valid_documents(vocab):
    rng = np.random.default_rng(3)
    codes = [rng.integers(0, 2048, size=(K, 3)).astype(np.int16) for _ in range(6)]
    texts = [vocab.encode_text("hello world") for _ in range(6)]
    pattern = get_pattern("text_first")
    per_segment = segment_lengths(pattern, texts, [K * 3] * 6)
    cap = int(per_segment[:2].sum()) + 2  # exactly two segments per document
    docs = build(vocab, "text_first", texts, codes, max_document_tokens=cap)
    assert len(docs) == 3 and all(len(d) <= cap for d in docs)
    recovered = [c for d in docs for c in document_contents(d, vocab, num_codebooks=K).codes]
    for got, want in zip(recovered, codes, strict=True):
        np.testing.assert_array_equal(got, want)


def obvious_documents(pattern, markers, texts, speakers, audios, per_document):
    """The documents written out with Python lists, part by part."""
    documents, segment = [], 0
    for count in per_document:
        document = [markers.bos]
        for i in range(segment, segment + count):
            for part in pattern.segment:
                if part == "audio":
                    document += audios[i].tolist()
                elif part == "text":
                    document += texts[i].tolist()
                elif part == "speaker":
                    document += speakers[i].tolist()
                else:
                    document.append(getattr(markers, part))
        documents.append(document + [markers.eos])
        segment += count
    return documents


@pytest.mark.parametrize("name", ["text_first", "audio_first", "audio_only", "semantic_only"])
def test_a_whole_shard_at_once_matches_the_obvious_build(vocab, name):
    rng = np.random.default_rng(9)
    pattern, markers = get_pattern(name), Markers.from_vocab(vocab)
    segments = 23
    codes = [rng.integers(0, 2048, size=K * int(rng.integers(1, 6))).astype(np.int16) for _ in range(segments)]
    audios = [audio_ids(c, K, vocab, semantic_only=pattern.semantic_only) for c in codes]
    texts = [rng.integers(0, vocab.text_size, size=int(rng.integers(0, 5))).astype(np.int32) for _ in range(segments)]
    speakers = [vocab.encode_text(f"[{i % 3}]") for i in range(segments)]
    per_document = [1, 4, 2, 7, 1, 8]
    documents = interleave_segments(
        pattern,
        np.concatenate(codes),
        [len(c) for c in codes],
        K,
        markers,
        texts=texts if pattern.uses_text else None,
        speakers=speakers if pattern.uses_text else None,
        segments_per_document=per_document,
    )
    expected = obvious_documents(pattern, markers, texts, speakers, audios, per_document)
    assert [d.tolist() for d in documents] == expected
    assert documents.tokens.dtype == np.int32 and len(documents) == len(per_document)


def test_inconsistent_segments_are_refused(vocab):
    markers, pattern = Markers.from_vocab(vocab), get_pattern("text_first")
    codes = np.zeros(16, np.int16)
    with pytest.raises(ValueError, match="code_lengths sum to 8 but codes holds 16"):
        interleave_segments(pattern, codes, [8], K, markers, texts=[np.zeros(1, np.int32)])
    with pytest.raises(ValueError, match="needs one text per segment"):
        interleave_segments(pattern, codes, [8, 8], K, markers, texts=[np.zeros(1, np.int32)])
    with pytest.raises(ValueError, match="must be positive and sum to 2"):
        interleave_segments(get_pattern("audio_only"), codes, [8, 8], K, markers, segments_per_document=[3])

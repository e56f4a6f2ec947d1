"""Where fine-tuning pairs come from: a tokenized corpus (ASR/TTS), CVSS, or a generic JSONL.

Every source yields ``(key, pair_or_skip_reason)``: the key (a recording or record id) picks the
split by hash, and a record that cannot be used yields the reason it is skipped instead of a pair,
so the step counts it and goes on.

* `TokenizedTaskSource`: utterances of a ``tokenize_audio`` output (data contract section 1),
  one ASR or TTS pair per segment, no audio decoding needed.
* `JsonlTaskSource`: lines ``{"id": ..., "prompt": [segment, ...], "response": [segment, ...]}``,
  a segment being ``{"text": "..."}`` or ``{"audio": "path"}`` (relative paths resolve against the
  JSONL's directory); audio files are read and Mimi-encoded.
* `CvssTaskSource`: CVSS's layout (``{split}.tsv`` rows ``source clip \\t target text``, target
  audio ``{split}/{clip}.wav``, source audio in Common Voice's ``clips/``, optionally CoVoST 2's
  TSV for the source transcript) turned into the same records as the JSONL.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from soda_jax import fileio
from soda_jax.audio.audio_io import AudioReadError, load_audio
from soda_jax.audio.vocab import AudioTextVocab
from soda_jax.contracts import CODEC_FILE, SHARDS_DIR
from soda_jax.data.interleave import audio_ids
from soda_jax.data.sft_prompts import (
    AUDIO,
    S2ST_RESPONSES,
    TEXT,
    PromptResponse,
    Span,
    asr_pair,
    prompt_response,
    tts_pair,
)
from soda_jax.data.utterance_shards import read_utterance_shard

logger = logging.getLogger(__name__)

TOKENIZED_TASKS = ("asr", "tts")
SKIP_BAD_JSON = "bad_json"
SKIP_EMPTY_PROMPT = "empty_prompt"
SKIP_EMPTY_RESPONSE = "empty_response"
SKIP_BAD_SEGMENT = "bad_segment"
SKIP_MISSING_AUDIO = "missing_audio"
SKIP_UNREADABLE_AUDIO = "unreadable_audio"
SKIP_EMPTY_TEXT = "empty_text"

Yielded = tuple[str, PromptResponse | str]


@dataclass(frozen=True)
class TokenizedTaskSource:
    """ASR or TTS pairs, one per segment of a tokenized corpus."""

    input_path: str
    """A ``tokenize_audio`` output (codec.json, shards/*.parquet)."""
    task: str = "asr"
    """``asr`` (audio -> transcript) or ``tts`` (transcript -> audio)."""

    def __post_init__(self):
        if self.task not in TOKENIZED_TASKS:
            raise ValueError(f"task must be one of {TOKENIZED_TASKS}, got {self.task!r}")

    def codebook_size(self) -> int:
        return int(fileio.read_json(fileio.join(self.input_path, CODEC_FILE))["codebook_size"])

    def pairs(self, vocab: AudioTextVocab, codec=None) -> Iterator[Yielded]:
        del codec  # already tokenized
        codec_info = fileio.read_json(fileio.join(self.input_path, CODEC_FILE))
        num_codebooks = int(codec_info["num_codebooks"])
        fs, shards_dir = fileio.filesystem(fileio.join(self.input_path, SHARDS_DIR))
        protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
        for path in sorted(fs.glob(f"{shards_dir}/*.parquet")):
            url = path if fileio.is_local(self.input_path) else f"{protocol}://{path}"
            shard = read_utterance_shard(url, num_codebooks, vocab.codebook_size)
            for reason, count in shard.skipped.items():
                for _ in range(count):
                    yield url, reason
            for recording_id, rows in zip(shard.recording_ids, shard.recording_rows):
                texts = vocab.encode_texts([shard.texts[r] for r in rows])
                for row, text in zip(rows, texts):
                    if text.size == 0:
                        yield recording_id, SKIP_EMPTY_TEXT
                        continue
                    codes = shard.codes[shard.code_offsets[row] : shard.code_offsets[row + 1]]
                    audio = audio_ids(codes, num_codebooks, vocab)
                    yield (
                        recording_id,
                        asr_pair(vocab, audio, text) if self.task == "asr" else tts_pair(vocab, text, audio),
                    )


@dataclass(frozen=True)
class JsonlTaskSource:
    """Any task as prompt/response segments, one JSON object per line (module docstring)."""

    path: str
    """The JSONL file; relative audio paths resolve against its directory."""

    def pairs(self, vocab: AudioTextVocab, codec) -> Iterator[Yielded]:
        base = self.path.rsplit("/", 1)[0] if "/" in self.path else "."
        for number, line in enumerate(fileio.read_text(self.path).splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{self.path}:{number}"
            try:
                record = json.loads(line)
            except ValueError as error:
                record, why = None, str(error)
            else:
                why = f"a JSON {type(record).__name__}"
            if not isinstance(record, dict):
                logger.warning("%s: skipped, not a JSON object (%s)", where, why)
                yield where, SKIP_BAD_JSON
                continue
            key = str(record.get("id", where))
            yield key, encode_record(record, vocab, codec, base=base, where=where)


def encode_record(
    record: dict[str, Any], vocab: AudioTextVocab, codec, *, base: str, where: str
) -> PromptResponse | str:
    """A ``{"prompt": [...], "response": [...]}`` record -> its token pair, or why it is skipped."""
    prompt, response = record.get("prompt"), record.get("response")
    for name, segments, empty in (("prompt", prompt, SKIP_EMPTY_PROMPT), ("response", response, SKIP_EMPTY_RESPONSE)):
        if not isinstance(segments, list) or not segments:
            logger.warning("%s: skipped, %s is missing or empty", where, name)
            return empty
    assert isinstance(prompt, list) and isinstance(response, list)  # checked above
    spans: list[Span] = []
    for segment in prompt + response:
        span = _encode_segment(segment, vocab, codec, base=base, where=where)
        if isinstance(span, str):
            return span
        spans.append(span)
    return prompt_response(vocab, spans[: len(prompt)], spans[len(prompt) :])


def _encode_segment(segment: Any, vocab: AudioTextVocab, codec, *, base: str, where: str) -> Span | str:
    if not isinstance(segment, dict) or len(segment) != 1 or next(iter(segment)) not in (TEXT, AUDIO):
        logger.warning("%s: skipped, segment %r is not {'text': ...} or {'audio': path}", where, segment)
        return SKIP_BAD_SEGMENT
    kind, value = next(iter(segment.items()))
    if not isinstance(value, str) or not value.strip():
        logger.warning("%s: skipped, empty %s segment", where, kind)
        return SKIP_EMPTY_TEXT if kind == TEXT else SKIP_MISSING_AUDIO
    if kind == TEXT:
        ids = vocab.encode_text(value)
        return Span(TEXT, ids) if ids.size else SKIP_EMPTY_TEXT
    path = value if "://" in value or value.startswith("/") else fileio.join(base, value)
    if not fileio.exists(path):
        logger.warning("%s: skipped, audio file %s does not exist", where, path)
        return SKIP_MISSING_AUDIO
    try:
        wave = load_audio(path, codec.sample_rate)
    except AudioReadError as error:
        logger.warning("%s: skipped, %s", where, error)
        return SKIP_UNREADABLE_AUDIO
    codes = codec.encode([wave])[0]
    return Span(AUDIO, vocab.codes_to_ids(codes))


@dataclass(frozen=True)
class CvssTaskSource:
    """Speech-to-speech translation pairs from CVSS (module docstring)."""

    cvss_dir: str
    """One CVSS language pair, e.g. ``$SODA_RAW_ROOT/cvss/cvss_c_fr_en_v1.0`` ({split}.tsv, {split}/*.wav)."""
    source_clips_dir: str
    """Common Voice's ``clips/`` directory of the source language (the source audio)."""
    split: str = "train"
    """CVSS split: ``train``, ``dev`` or ``test``."""
    response: str = "text_audio"
    """``text_audio``: target text then target audio; ``audio``: target audio alone."""
    covost_tsv: str | None = None
    """CoVoST 2's ``covost_v2.{src}_en.tsv``: with it, the prompt also carries the source transcript."""

    def __post_init__(self):
        if self.response not in S2ST_RESPONSES:
            raise ValueError(f"response must be one of {S2ST_RESPONSES}, got {self.response!r}")

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(where, record)`` in the JSONL's record form (absolute audio paths)."""
        transcripts = _covost_transcripts(self.covost_tsv) if self.covost_tsv else {}
        tsv = fileio.join(self.cvss_dir, f"{self.split}.tsv")
        for number, row in enumerate(
            csv.reader(fileio.read_text(tsv).splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE), 1
        ):
            if len(row) < 2:
                yield f"{tsv}:{number}", {}
                continue
            clip, target_text = row[0], row[1]
            prompt: list[dict] = [{AUDIO: fileio.join(self.source_clips_dir, clip)}]
            if self.covost_tsv:
                prompt.append({TEXT: transcripts.get(clip, "")})
            target_audio = {AUDIO: fileio.join(self.cvss_dir, self.split, f"{clip}.wav")}
            response = [{TEXT: target_text}, target_audio] if self.response == "text_audio" else [target_audio]
            yield f"{tsv}:{number}", {"id": clip, "prompt": prompt, "response": response}

    def pairs(self, vocab: AudioTextVocab, codec) -> Iterator[Yielded]:
        for where, record in self.records():
            yield str(record.get("id", where)), encode_record(record, vocab, codec, base=self.cvss_dir, where=where)


def _covost_transcripts(path: str) -> dict[str, str]:
    """Source clip -> its transcript, from CoVoST 2's TSV (header: path, sentence, translation, ...)."""
    rows = csv.DictReader(fileio.read_text(path).splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    return {row["path"]: row["sentence"] for row in rows}


TaskSource = TokenizedTaskSource | JsonlTaskSource | CvssTaskSource


def source_needs_codec(source: TaskSource) -> bool:
    return not isinstance(source, TokenizedTaskSource)

"""ASR and TTS items from a corpus's held-out validation recordings, in the public layouts.

The interleave step holds recordings out by a salted hash of their id (`data.caches.split_of`).
`write_heldout_sets` reads the corpus's layouts with the training readers (`data.sources`:
``yodas2/``, ``emilia/``), keeps exactly the recordings that hash puts in the validation split (so
no item's audio was trained on) and writes

    {out}/librispeech/test-clean/{speaker}/1/{speaker}-1-{n:04d}.flac + {speaker}-1.trans.txt   ASR items
    {out}/librispeech/dev-clean/{speaker}/1/...                            N-shot examples
    {out}/seed-tts/en/meta.lst + prompt-wavs/{id}.wav + wavs/{id}.wav      TTS items (wavs/: the ground truth)

**Excerpts.** A small model's context cannot hold a whole sentence (the demo model's 256 tokens are
2.5 s of 8-codebook audio). With ``item_seconds``, an item is the leading words of a held-out
utterance that fit in it, cut at the word boundaries PocketSphinx's forced alignment of the
utterance's own transcript finds, with exactly those words as its transcript. The N-shot examples
are the trailing words of the same held-out utterances (within ``shot_seconds``, never overlapping
the item), so shots are held out too. ``item_seconds=None`` keeps whole utterances (no shots).

**TTS.** Every ASR item is a target (its text; its audio is the ground truth); the prompt is the
next held-out item of the same voice (Seed-TTS's: another recording of the target's speaker).

Skips are counted by reason, never fatal: the readers' own (unreadable audio, ...), and
``alignment_failed``, ``first_word_too_long``, ``partly_aligned``, ``no_tail_within_shot_seconds``,
``only_utterance_of_its_voice``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter, defaultdict

import numpy as np
from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE, resample
from soda_jax.data import caches
from soda_jax.data.sources import SOURCES, SkipCounter, Utterance
from soda_jax.eval.asr_backends import ASR_SAMPLE_RATE, PocketSphinxAsr
from soda_jax.eval.normalize import seed_tts_normalize
from soda_jax.eval.readers import audio_bytes_of

logger = logging.getLogger(__name__)

TEST_SPLIT, SHOT_SPLIT = "test-clean", "dev-clean"
CHAPTER = "1"
SPEAKER_BASE = 100
"""LibriSpeech speaker ids: SPEAKER_BASE + the voice's rank among the held-out voices (sorted)."""
EDGE_SECONDS = 0.05
"""Kept around a cut (never into the neighbouring word): the alignment's 10 ms frames are coarse."""
_VARIANT = re.compile(r"\(\d+\)$")

ALIGNMENT_FAILED = "alignment_failed"
FIRST_WORD_TOO_LONG = "first_word_too_long"
PARTLY_ALIGNED = "partly_aligned"
NO_TAIL = "no_tail_within_shot_seconds"
ONLY_UTTERANCE = "only_utterance_of_its_voice"


@dataclasses.dataclass(frozen=True)
class HeldOutSpec:
    """Which recordings are held out, and how long the excerpts may be."""

    corpus_path: str
    """A corpus with ``yodas2/`` and/or ``emilia/`` layouts (the demo's ``raw/demo-speech``)."""
    validation_fraction: float
    """The interleave step's (`InterleaveConfig.validation_fraction`)."""
    split_salt: str = "soda-validation"
    """The interleave step's (`InterleaveConfig.split_salt`)."""
    item_seconds: float | None = 1.0
    """Longest ASR item / TTS prompt and target (leading words); None: whole utterances."""
    shot_seconds: float = 0.8
    """Longest N-shot example (trailing words)."""


@dataclasses.dataclass(frozen=True)
class Excerpt:
    """Words of a held-out utterance and their audio."""

    source: str
    """The corpus segment id."""
    recording: str
    """Its recording's id (what the split hashes)."""
    speaker: str
    words: tuple[str, ...]
    """The transcript's words (as written)."""
    start: float
    end: float
    """Where the excerpt lies in its utterance, seconds."""
    audio: np.ndarray

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def librispeech_text(self) -> str:
        """LibriSpeech's transcript form: upper case, no punctuation but apostrophes."""
        return seed_tts_normalize(self.text).upper()


def held_out_utterances(spec: HeldOutSpec, skips: SkipCounter) -> tuple[list[Utterance], dict]:
    """The corpus's utterances whose recording the interleave split holds out (sorted by segment id),
    and counts of both splits (with how many held-out transcripts a training recording also reads)."""
    held_out: list[Utterance] = []
    train_texts: set[str] = set()
    recordings: dict[str, set[str]] = {split: set() for split in caches.SPLITS}
    utterances: Counter[str] = Counter()
    for name, source in sorted(SOURCES.items()):
        root = fileio.join(spec.corpus_path, name)
        if not fileio.exists(root):
            continue
        for shard in source.list_shards(root):
            for utterance in source.read_shard(shard, skips):
                split = caches.split_of(utterance.recording_id, spec.validation_fraction, spec.split_salt)
                recordings[split].add(utterance.recording_id)
                utterances[split] += 1
                if split == caches.VALIDATION:
                    held_out.append(utterance)
                else:
                    train_texts.add(seed_tts_normalize(utterance.text))
    if not sum(utterances.values()):
        raise FileNotFoundError(f"{spec.corpus_path}: no utterances in its {' or '.join(sorted(SOURCES))} layouts")
    summary: dict = {
        split: {"recordings": len(recordings[split]), "utterances": utterances[split]} for split in caches.SPLITS
    }
    summary["held_out_texts_also_read_in_training"] = sum(seed_tts_normalize(u.text) in train_texts for u in held_out)
    return sorted(held_out, key=lambda u: u.segment_id), summary


def aligned_words(aligner: PocketSphinxAsr, utterance: Utterance) -> tuple[tuple[str, ...], list[tuple[float, float]]]:
    """The transcript's words and the (start, end) seconds of the leading ones the alignment found in order."""
    words = tuple(w for w in utterance.text.split() if seed_tts_normalize(w))
    keys = [seed_tts_normalize(w).replace(" ", "") for w in words]
    segments = aligner.align(resample(utterance.audio, MIMI_SAMPLE_RATE, ASR_SAMPLE_RATE), " ".join(keys))
    spans: list[tuple[float, float]] = []
    for word, start, end in segments:
        if word.startswith(("<", "[")):  # <s>, </s>, <sil>, [NOISE]
            continue
        if len(spans) == len(keys) or _VARIANT.sub("", word) != keys[len(spans)]:
            break
        spans.append((start, end))
    return words, spans


def _excerpt(utterance: Utterance, words: tuple[str, ...], start: float, end: float) -> Excerpt:
    audio = utterance.audio[max(0, round(start * MIMI_SAMPLE_RATE)) : round(end * MIMI_SAMPLE_RATE)]
    return Excerpt(utterance.segment_id, utterance.recording_id, utterance.speaker, words, start, end, audio)


def excerpts(
    utterance: Utterance, aligner: PocketSphinxAsr, spec: HeldOutSpec, skips: dict[str, SkipCounter]
) -> tuple[Excerpt | None, Excerpt | None]:
    """(item, shot) of one held-out utterance; a missing one is counted in ``skips["items"|"shots"]``."""
    duration = len(utterance.audio) / MIMI_SAMPLE_RATE
    where = f"{utterance.segment_id} ({utterance.text!r})"
    if spec.item_seconds is None:
        words = tuple(utterance.text.split())
        return Excerpt(
            utterance.segment_id, utterance.recording_id, utterance.speaker, words, 0.0, duration, utterance.audio
        ), None
    words, spans = aligned_words(aligner, utterance)
    if not spans:
        skips["items"].skip(ALIGNMENT_FAILED, where, "PocketSphinx aligned none of its words")
        return None, None
    # leading words: [first start - edge, end of word k + edge (not into word k + 1)]
    begin = max(0.0, spans[0][0] - EDGE_SECONDS)
    ends = [
        min(end + EDGE_SECONDS, spans[i + 1][0] if i + 1 < len(spans) else duration) for i, (_, end) in enumerate(spans)
    ]
    fitting = [k for k, end in enumerate(ends, 1) if end - begin <= spec.item_seconds]
    item = None
    if fitting:
        k = fitting[-1]
        item = _excerpt(utterance, words[:k], begin, ends[k - 1])
    else:
        skips["items"].skip(
            FIRST_WORD_TOO_LONG, where, f"its first word ends {ends[0] - begin:.2f} s in > {spec.item_seconds} s"
        )
    if len(spans) < len(words):
        skips["shots"].skip(PARTLY_ALIGNED, where, f"{len(spans)} of {len(words)} words aligned")
        return item, None
    # trailing words: [start of word j - edge (not into word j - 1), last end + edge]
    finish = min(spans[-1][1] + EDGE_SECONDS, duration)
    starts = [max(start - EDGE_SECONDS, spans[j - 1][1] if j else 0.0) for j, (start, _) in enumerate(spans)]
    first_free = len(item.words) if item else 0
    tails = [j for j in range(first_free, len(spans)) if finish - starts[j] <= spec.shot_seconds]
    if not tails:
        skips["shots"].skip(NO_TAIL, where, f"no trailing words after the item's within {spec.shot_seconds:.2f} s")
        return item, None
    j = tails[0]
    return item, _excerpt(utterance, words[j:], starts[j], finish)


def _flac(wave: np.ndarray) -> bytes:
    return audio_bytes_of(wave, MIMI_SAMPLE_RATE, "FLAC")


def write_librispeech(root: str, split: str, chosen: list[Excerpt], speaker_ids: dict[str, int]) -> dict[str, Excerpt]:
    """``{root}/{split}/{speaker}/1/``: one flac per excerpt + the chapter's trans.txt; returns {id: excerpt}."""
    by_speaker: dict[int, list[tuple[str, Excerpt]]] = defaultdict(list)
    for excerpt in chosen:
        speaker = speaker_ids[excerpt.speaker]
        rows = by_speaker[speaker]
        rows.append((f"{speaker}-{CHAPTER}-{len(rows):04d}", excerpt))
    written = {}
    for speaker, rows in sorted(by_speaker.items()):
        directory = fileio.join(root, split, str(speaker), CHAPTER)
        for utterance_id, excerpt in rows:
            fileio.atomic_write_bytes(fileio.join(directory, f"{utterance_id}.flac"), _flac(excerpt.audio))
            written[utterance_id] = excerpt
        transcript = "".join(f"{u} {e.librispeech_text}\n" for u, e in rows)
        fileio.atomic_write_text(fileio.join(directory, f"{speaker}-{CHAPTER}.trans.txt"), transcript)
    return written


def write_seed_tts(root: str, items: dict[str, Excerpt], skips: SkipCounter) -> list[str]:
    """``{root}/meta.lst``: each item spoken in the voice of the next item of its speaker; returns the target ids."""
    by_speaker: dict[str, list[str]] = defaultdict(list)
    for item_id, excerpt in items.items():
        by_speaker[excerpt.speaker].append(item_id)
    lines, targets = [], []
    for item_id, target in items.items():
        same_voice = by_speaker[target.speaker]
        if len(same_voice) < 2:
            skips.skip(
                ONLY_UTTERANCE, f"{item_id} ({target.source})", f"no other held-out utterance of {target.speaker}"
            )
            continue
        prompt_id = same_voice[(same_voice.index(item_id) + 1) % len(same_voice)]
        prompt = items[prompt_id]
        fileio.atomic_write_bytes(
            fileio.join(root, "prompt-wavs", f"{prompt_id}.wav"), audio_bytes_of(prompt.audio, MIMI_SAMPLE_RATE)
        )
        fileio.atomic_write_bytes(
            fileio.join(root, "wavs", f"{item_id}.wav"), audio_bytes_of(target.audio, MIMI_SAMPLE_RATE)
        )
        lines.append(f"{item_id}|{prompt.text}|prompt-wavs/{prompt_id}.wav|{target.text}")
        targets.append(item_id)
    fileio.atomic_write_text(fileio.join(root, "meta.lst"), "".join(f"{line}\n" for line in lines))
    return targets


def write_heldout_sets(spec: HeldOutSpec, output_path: str) -> dict:
    """Write the LibriSpeech and Seed-TTS sets of `spec`'s held-out utterances; returns their record
    (sources, counts, skips by reason: the mini-set step's ``stats.json`` keeps it)."""
    reader_skips = SkipCounter("held-out corpus")
    utterances, split_counts = held_out_utterances(spec, reader_skips)
    skips = {part: SkipCounter(f"held-out {part}") for part in ("items", "shots", "tts")}
    aligner = PocketSphinxAsr()
    items, shots = [], []
    for utterance in tqdm(utterances, desc="align held-out utterances", unit="utt"):
        item, shot = excerpts(utterance, aligner, spec, skips)
        items += [item] if item else []
        shots += [shot] if shot else []
    speaker_ids = {speaker: SPEAKER_BASE + i for i, speaker in enumerate(sorted({u.speaker for u in utterances}))}
    librispeech = fileio.join(output_path, "librispeech")
    written = {
        TEST_SPLIT: write_librispeech(librispeech, TEST_SPLIT, items, speaker_ids),
        SHOT_SPLIT: write_librispeech(librispeech, SHOT_SPLIT, shots, speaker_ids),
    }
    tts_targets = write_seed_tts(fileio.join(output_path, "seed-tts", "en"), written[TEST_SPLIT], skips["tts"])
    record = {
        "held_out_by": {
            "key": "recording_id",
            "validation_fraction": spec.validation_fraction,
            "split_salt": spec.split_salt,
        },
        "corpus": spec.corpus_path,
        "splits": split_counts,
        "item_seconds": spec.item_seconds,
        "shot_seconds": spec.shot_seconds,
        "counts": {
            "asr_items": len(written[TEST_SPLIT]),
            "shots": len(written[SHOT_SPLIT]),
            "tts_items": len(tts_targets),
        },
        "skipped": {"corpus": reader_skips.to_dict(), **{part: counter.to_dict() for part, counter in skips.items()}},
        "speakers": {str(number): speaker for speaker, number in speaker_ids.items()},
        "sources": {
            split: {
                item_id: {
                    "segment": e.source,
                    "recording": e.recording,
                    "text": e.text,
                    "start": round(e.start, 3),
                    "end": round(e.end, 3),
                }
                for item_id, e in rows.items()
            }
            for split, rows in written.items()
        },
    }
    logger.info(
        "held-out sets from %s: %s, skipped %s",
        spec.corpus_path,
        record["counts"],
        {part: counter.total for part, counter in (("corpus", reader_skips), *skips.items())},
    )
    return record

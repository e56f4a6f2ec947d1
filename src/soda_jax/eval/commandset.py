"""The learning demo's task sets: spoken commands the model never heard, in the public layouts.

Every held-out command (a combination of words no training recording reads, `data.demo_text.command_split`)
is synthesised afresh, so no item's audio was trained on:

    {out}/librispeech/test-clean/...   each held-out command read by one training voice (voices in turn)
    {out}/librispeech/test-other/...   each held-out command read by ``unseen_voice`` (the harder split)
    {out}/librispeech/dev-clean/...    each held-out command read by the next training voice (N-shot examples)
    {out}/swuggy/test.parquet          word vs non-word: a held-out command against the same command with
                                       one word replaced by a pronounceable non-word (`NON_WORDS`), both
                                       read by the same training voice; texts as ``positive_word`` /
                                       ``negative_word`` (tWUGGY-style)
    {out}/seed-tts/en/meta.lst         TTS: each test-clean command, prompted by another of its voice
    {out}/stats.json                   counts, each split's speakers, and the speaker-similarity baseline
                                       of real recordings (same voice, different voice: `speaker_baseline`)

LibriSpeech's layout (`eval.heldout.write_librispeech`: speaker directories, transcripts in upper
case) and Seed-TTS's (`eval.heldout.write_seed_tts`); the same readers as for the real releases read
them (`soda_jax.eval.readers`).
"""

from __future__ import annotations

import dataclasses
import logging

from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.contracts import STATS_FILE
from soda_jax.data.sources import SkipCounter
from soda_jax.data.synth import Voice, synthesize
from soda_jax.eval.heldout import (
    SHOT_SPLIT,
    SPEAKER_BASE,
    TEST_SPLIT,
    Excerpt,
    write_librispeech,
    write_seed_tts,
)
from soda_jax.eval.miniset import audio_struct, write_pairs

logger = logging.getLogger(__name__)

UNSEEN_SPLIT = "test-other"
"""The split read by the voice never heard in training (LibriSpeech's harder test split's name)."""
NON_WORDS = {
    "set": "sep",
    "turn": "turm",
    "move": "mofe",
    "dim": "dib",
    "red": "rell",
    "green": "greep",
    "blue": "blay",
    "yellow": "yellin",
    "white": "whipe",
    "black": "blatch",
    "lamp": "lamk",
    "door": "doot",
    "fan": "fon",
    "screen": "scroon",
    "light": "lipe",
    "one": "wum",
    "two": "tay",
    "three": "thraw",
    "four": "fove",
    "five": "fide",
    "six": "sim",
    "seven": "sevel",
    "eight": "eyf",
    "nine": "nime",
    "ten": "teb",
}
"""A pronounceable non-word for every content word of the commands ("the" and "to" have none)."""


@dataclasses.dataclass(frozen=True)
class CommandTaskSetConfig:
    """What the learning demo's task sets are made of."""

    output_path: str
    commands: tuple[str, ...]
    """The held-out commands (never read in training)."""
    voices: tuple[Voice, ...]
    """Training voices: they read ``test-clean`` (in turn), ``dev-clean`` (the next one) and the pairs."""
    unseen_voice: Voice
    """The voice of ``test-other``: one that training never heard."""
    speaker_encoder: str = "resemblyzer"
    """Who measures the speaker-similarity baseline (`eval.speaker`; the TTS and continuation tasks' default)."""


def non_word_variant(command: str, position: int) -> tuple[str, str] | None:
    """(command with its ``position``-th content word replaced by its non-word, that word); None
    when the command has no content word."""
    words = command.split()
    content = [i for i, w in enumerate(words) if w in NON_WORDS]
    if not content:
        return None
    i = content[position % len(content)]
    replaced = words[i]
    return " ".join([*words[:i], NON_WORDS[replaced], *words[i + 1 :]]), replaced


def speaker_baseline(items: list[Excerpt], encoder_name: str) -> dict[str, float | str]:
    """Mean speaker similarity of real recordings: each item against the next item of its own voice
    (``same_voice``) and against the next item of another voice (``different_voice``): the levels to
    read a continuation's or a TTS output's similarity to its prompt against."""
    import numpy as np

    from soda_jax.eval.context import to_16k
    from soda_jax.eval.speaker import cosine_similarities, speaker_encoder

    same, other = [], []
    for i, item in enumerate(items):
        later = items[i + 1 :] + items[:i]
        same += [next((x for x in later if x.speaker == item.speaker), None)]
        other += [next((x for x in later if x.speaker != item.speaker), None)]
    encoder = speaker_encoder(encoder_name)

    def mean_similarity(pairs: list[Excerpt | None]) -> float:
        kept = [(item, x) for item, x in zip(items, pairs) if x is not None]
        if not kept:
            return float("nan")
        return float(
            np.mean(
                cosine_similarities(encoder, [to_16k(a.audio) for a, _ in kept], [to_16k(b.audio) for _, b in kept])
            )
        )

    return {"same_voice": mean_similarity(same), "different_voice": mean_similarity(other), "encoder": encoder_name}


def build_command_tasksets(config: CommandTaskSetConfig) -> dict[str, str]:
    """Write every set; returns {set: path}."""
    if not config.commands or not config.voices:
        raise ValueError(f"{config.output_path}: command task sets need commands and voices")
    voices, commands = config.voices, config.commands
    progress = tqdm(total=5 * len(commands), desc="synthesise command task sets", unit="clip")

    def excerpt(index: int, text: str, voice: Voice) -> Excerpt:
        progress.update()
        audio = synthesize(text, voice)
        item = f"command{index:04d}"
        return Excerpt(item, item, voice.speaker, tuple(text.split()), 0.0, len(audio) / MIMI_SAMPLE_RATE, audio)

    test = [excerpt(i, c, voices[i % len(voices)]) for i, c in enumerate(commands)]
    shots = [excerpt(i, c, voices[(i + 1) % len(voices)]) for i, c in enumerate(commands)]
    unseen = [excerpt(i, c, config.unseen_voice) for i, c in enumerate(commands)]
    speakers = sorted({v.speaker for v in voices} | {config.unseen_voice.speaker})
    speaker_ids = {speaker: SPEAKER_BASE + i for i, speaker in enumerate(speakers)}
    root, librispeech = config.output_path, fileio.join(config.output_path, "librispeech")
    written = write_librispeech(librispeech, TEST_SPLIT, test, speaker_ids)
    write_librispeech(librispeech, SHOT_SPLIT, shots, speaker_ids)
    write_librispeech(librispeech, UNSEEN_SPLIT, unseen, speaker_ids)
    tts_skips = SkipCounter("command tts items")
    tts_targets = write_seed_tts(fileio.join(root, "seed-tts", "en"), written, tts_skips)

    rows = []
    for i, command in enumerate(commands):
        variant = non_word_variant(command, i)
        if variant is None:
            continue
        negative, _ = variant
        voice = voices[i % len(voices)]
        item = f"w{i:04d}"
        progress.update(2)
        rows.append(
            {
                "id": item,
                "positive": audio_struct(test[i].audio, f"{item}-pos.wav"),
                "negative": audio_struct(synthesize(negative, voice), f"{item}-neg.wav"),
                "positive_word": command,
                "negative_word": negative,
            }
        )
    write_pairs(fileio.join(root, "swuggy", "test.parquet"), rows)
    progress.close()
    stats = {
        "speaker_similarity_baseline": speaker_baseline(test, config.speaker_encoder),
        "commands": len(commands),
        "splits": {TEST_SPLIT: len(test), SHOT_SPLIT: len(shots), UNSEEN_SPLIT: len(unseen)},
        "speakers": {str(n): s for s, n in speaker_ids.items()},
        "unseen_voice": config.unseen_voice.speaker,
        "swuggy": len(rows),
        "tts_items": len(tts_targets),
        "skipped": {"tts": tts_skips.to_dict()},
    }
    fileio.atomic_write_json(fileio.join(root, STATS_FILE), stats)
    paths = {
        "librispeech": librispeech,
        "swuggy": fileio.join(root, "swuggy"),
        "seed_tts": fileio.join(root, "seed-tts", "en", "meta.lst"),
    }
    logger.info("command task sets: %s", paths)
    return paths

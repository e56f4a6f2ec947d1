"""Miniature task sets in the public layouts, for the demo: pairs synthesised offline from the demo
voices, ASR and TTS items from the demo corpus's held-out validation recordings.

    {out}/swuggy/test.parquet          id, positive, negative (audio), positive_word, negative_word
    {out}/sblimp/test.parquet          the same, plus positive_transcription, negative_transcription
    {out}/librispeech/{split}/{speaker}/{chapter}/{speaker}-{chapter}.trans.txt + *.flac
                                       test-clean (items) and dev-clean (N-shot examples), `eval.heldout`
    {out}/seed-tts/en/meta.lst         filename|prompt_text|prompt_wav|target_text, + prompt-wavs/, wavs/
    {out}/stats.json                   counts, the held-out items' sources, skips by reason

Real words against pronounceable non-words (sWUGGY-style) and grammatical against ungrammatical
sentences (sBLIMP/tBLIMP-style) are synthesised with flite/espeak-ng. ASR, TTS and continuation
items are word-aligned excerpts of the recordings the interleave step held out (`eval.heldout`), so
no item's audio was trained on. Everything is short, so prompts fit the demo model's 256-token
context. The same readers as for the real releases read them (`soda_jax.eval.readers`).
"""

from __future__ import annotations

import dataclasses
import logging

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.contracts import STATS_FILE
from soda_jax.data.synth import DEMO_VOICES, Voice, synthesize
from soda_jax.eval.heldout import HeldOutSpec, write_heldout_sets
from soda_jax.eval.readers import audio_bytes_of

logger = logging.getLogger(__name__)

WORD_PAIRS = (
    ("garden", "gardel"),
    ("window", "wintow"),
    ("coffee", "kofflen"),
    ("river", "rilver"),
    ("market", "marfet"),
    ("teacher", "teaspor"),
    ("flower", "flonder"),
    ("bridge", "brisk"),
    ("morning", "morting"),
    ("village", "vilmage"),
    ("bicycle", "bicrasle"),
    ("island", "ispland"),
    ("weather", "wemther"),
    ("library", "librisen"),
    ("orchestra", "orchastel"),
    ("mountain", "mountel"),
    ("station", "stalchon"),
    ("kitchen", "kitphen"),
    ("pilot", "pilork"),
    ("summer", "sumbel"),
    ("dinner", "dinnet"),
    ("paper", "papel"),
    ("table", "tarble"),
    ("water", "wapter"),
)
"""(real word, pronounceable non-word) pairs."""

SENTENCE_PAIRS = (
    ("the cat sleeps", "the cat sleep"),
    ("she has eaten", "she have eaten"),
    ("they were happy", "they was happy"),
    ("he reads books", "he read books yesterday tomorrow"),
    ("the dogs bark", "the dogs barks"),
    ("we are here", "we is here"),
    ("a small boat", "a boat small"),
    ("the birds sing", "the birds sings"),
    ("i saw him", "i saw he"),
    ("this is mine", "this are mine"),
    ("the children play", "the children plays"),
    ("she sings well", "she sing well"),
    ("he fixed it", "he fixed"),
    ("those books are old", "those books is old"),
    ("the sun rises", "the sun rise"),
    ("you were right", "you was right"),
)
"""(grammatical, ungrammatical) sentence pairs."""


@dataclasses.dataclass(frozen=True)
class MiniTaskSetConfig:
    """What the mini task sets are made of."""

    output_path: str
    heldout: HeldOutSpec
    """Where the ASR/TTS items come from: the corpus, its held-out split, the excerpt lengths."""
    voices: tuple[Voice, ...] = DEMO_VOICES
    """Who reads the pairs (rotating over items; both members of a pair share a voice)."""


def audio_struct(wave, name: str) -> dict:
    return {"bytes": audio_bytes_of(wave, MIMI_SAMPLE_RATE), "path": name}


def write_pairs(path: str, rows: list[dict]) -> None:
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    fileio.atomic_write_bytes(path, buffer.getvalue().to_pybytes())


def build_mini_tasksets(config: MiniTaskSetConfig) -> dict[str, str]:
    """Write every mini task set; returns {set: path}."""
    voices = config.voices
    total = 2 * len(WORD_PAIRS) + 2 * len(SENTENCE_PAIRS)
    progress = tqdm(total=total, desc="synthesise mini task sets", unit="clip")

    def speak(text: str, voice: Voice):
        progress.update()
        return synthesize(text, voice)

    def spoken_pairs(pairs, id_prefix: str, text_field: str) -> list[dict]:
        """Rows of a pair set in its release's layout: both sides spoken by the same voice (voices
        taken in turn), their texts under ``positive_{text_field}`` / ``negative_{text_field}``."""
        rows = []
        for i, (positive, negative) in enumerate(pairs):
            voice, item = voices[i % len(voices)], f"{id_prefix}{i:03d}"
            rows.append(
                {
                    "id": item,
                    "positive": audio_struct(speak(positive, voice), f"{item}-pos.wav"),
                    "negative": audio_struct(speak(negative, voice), f"{item}-neg.wav"),
                    f"positive_{text_field}": positive,
                    f"negative_{text_field}": negative,
                }
            )
        return rows

    swuggy = spoken_pairs(WORD_PAIRS, "w", "word")
    sblimp = spoken_pairs(SENTENCE_PAIRS, "s", "transcription")
    root = config.output_path
    write_pairs(fileio.join(root, "swuggy", "test.parquet"), swuggy)
    write_pairs(fileio.join(root, "sblimp", "test.parquet"), sblimp)

    progress.close()
    heldout = write_heldout_sets(config.heldout, root)
    fileio.atomic_write_json(
        fileio.join(root, STATS_FILE),
        {
            "swuggy": len(swuggy),
            "sblimp": len(sblimp),
            "heldout": heldout,
        },
    )
    paths = {
        "swuggy": fileio.join(root, "swuggy"),
        "sblimp": fileio.join(root, "sblimp"),
        "librispeech": fileio.join(root, "librispeech"),
        "seed_tts": fileio.join(root, "seed-tts", "en", "meta.lst"),
    }
    logger.info("mini task sets: %s", paths)
    return paths

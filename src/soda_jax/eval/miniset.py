"""Miniature task sets in the public layouts, synthesised offline from the demo voices.

    {out}/swuggy/test.parquet          id, positive, negative (audio), positive_word, negative_word
    {out}/sblimp/test.parquet          the same, plus positive_transcription, negative_transcription
    {out}/librispeech/{split}/{speaker}/{chapter}/{speaker}-{chapter}.trans.txt + *.flac
                                       splits test-clean (items) and dev-clean (N-shot examples)
    {out}/seed-tts/en/meta.lst         filename|prompt_text|prompt_wav|target_text, + prompt-wavs/*.wav

Real words against pronounceable non-words (sWUGGY-style), grammatical against ungrammatical
sentences (sBLIMP/tBLIMP-style), short phrases of the demo corpus's sentences for ASR, TTS and
continuation. Everything is short, so prompts fit the demo model's 256-token context. The same
readers as for the real releases read them (`soda_jax.eval.layouts`).
"""

from __future__ import annotations

import dataclasses
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.data.synth import DEFAULT_SENTENCES, DEMO_VOICES, Voice, synthesize
from soda_jax.eval.layouts import audio_bytes_of

logger = logging.getLogger(__name__)

WORD_PAIRS = (
    ("garden", "gardel"), ("window", "wintow"), ("coffee", "kofflen"), ("river", "rilver"),
    ("market", "marfet"), ("teacher", "teaspor"), ("flower", "flonder"), ("bridge", "brisk"),
    ("morning", "morting"), ("village", "vilmage"), ("bicycle", "bicrasle"), ("island", "ispland"),
    ("weather", "wemther"), ("library", "librisen"), ("orchestra", "orchastel"), ("mountain", "mountel"),
    ("station", "stalchon"), ("kitchen", "kitphen"), ("pilot", "pilork"), ("summer", "sumbel"),
    ("dinner", "dinnet"), ("paper", "papel"), ("table", "tarble"), ("water", "wapter"),
)  # fmt: skip
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

PHRASE_WORDS = 2
"""Words per ASR/TTS phrase (the first words of a demo sentence): under a second of speech."""
TEST_PHRASES = 12
SHOT_PHRASES = 6
TTS_ITEMS = 8
SPEAKER_BASE = 100
"""LibriSpeech speaker ids: SPEAKER_BASE + voice index."""


@dataclasses.dataclass(frozen=True)
class MiniTaskSetConfig:
    """What the mini task sets are made of."""

    output_path: str
    voices: tuple[Voice, ...] = DEMO_VOICES
    """Who reads (rotating over items; both members of a pair share a voice)."""
    sentences: tuple[str, ...] = DEFAULT_SENTENCES
    """Where ASR/TTS phrases come from (their first `PHRASE_WORDS` words)."""


def phrases(sentences) -> list[str]:
    return [" ".join(s.rstrip(".?!").split()[:PHRASE_WORDS]) for s in sentences]


def _audio_struct(wave, name: str) -> dict:
    return {"bytes": audio_bytes_of(wave, MIMI_SAMPLE_RATE), "path": name}


def _write_pairs(path: str, rows: list[dict]) -> None:
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    fileio.atomic_write_bytes(path, buffer.getvalue().to_pybytes())


def build_mini_tasksets(config: MiniTaskSetConfig) -> dict[str, str]:
    """Write every mini task set; returns {set: path}."""
    voices = config.voices
    lines = phrases(config.sentences)
    total = 2 * len(WORD_PAIRS) + 2 * len(SENTENCE_PAIRS) + TEST_PHRASES + SHOT_PHRASES + 2 * TTS_ITEMS
    progress = tqdm(total=total, desc="synthesise mini task sets", unit="clip")

    def speak(text: str, voice: Voice):
        progress.update()
        return synthesize(text, voice)

    swuggy = []
    for i, (word, nonword) in enumerate(WORD_PAIRS):
        voice = voices[i % len(voices)]
        swuggy.append({
            "id": f"w{i:03d}", "positive": _audio_struct(speak(word, voice), f"w{i:03d}-pos.wav"),
            "negative": _audio_struct(speak(nonword, voice), f"w{i:03d}-neg.wav"),
            "positive_word": word, "negative_word": nonword,
        })  # fmt: skip
    sblimp = []
    for i, (good, bad) in enumerate(SENTENCE_PAIRS):
        voice = voices[i % len(voices)]
        sblimp.append({
            "id": f"s{i:03d}", "positive": _audio_struct(speak(good, voice), f"s{i:03d}-pos.wav"),
            "negative": _audio_struct(speak(bad, voice), f"s{i:03d}-neg.wav"),
            "positive_transcription": good, "negative_transcription": bad,
        })  # fmt: skip
    root = config.output_path
    _write_pairs(fileio.join(root, "swuggy", "test.parquet"), swuggy)
    _write_pairs(fileio.join(root, "sblimp", "test.parquet"), sblimp)

    # LibriSpeech: test phrases from the end of the sentence list, one-word shots (the last
    # words of the sentences just before), so a 1-shot prompt fits the demo model's 256 tokens.
    librispeech = fileio.join(root, "librispeech")
    shots = [s.rstrip(".?!").split()[-1] for s in config.sentences[-TEST_PHRASES - SHOT_PHRASES : -TEST_PHRASES]]
    for split, chosen in (("test-clean", lines[-TEST_PHRASES:]), ("dev-clean", shots)):
        by_speaker: dict[int, list[tuple[str, str]]] = {}
        for i, text in enumerate(chosen):
            v = i % len(voices)
            speaker = SPEAKER_BASE + v
            utterance_id = f"{speaker}-1-{i:04d}"
            wave = speak(text, voices[v])
            directory = fileio.join(librispeech, split, str(speaker), "1")
            fileio.atomic_write_bytes(fileio.join(directory, f"{utterance_id}.flac"), _flac(wave))
            by_speaker.setdefault(speaker, []).append((utterance_id, text.upper()))
        for speaker, rows in by_speaker.items():
            transcript = "".join(f"{u} {t}\n" for u, t in rows)
            fileio.atomic_write_text(fileio.join(librispeech, split, str(speaker), "1", f"{speaker}-1.trans.txt"), transcript)

    # Seed-TTS: a prompt phrase in one voice, a target phrase to say in that voice.
    seed_tts = fileio.join(root, "seed-tts", "en")
    meta = []
    middle = lines[SHOT_PHRASES : SHOT_PHRASES + 2 * TTS_ITEMS]
    for i in range(TTS_ITEMS):
        voice = voices[i % len(voices)]
        prompt_text, target_text = middle[2 * i], middle[2 * i + 1]
        name = f"tts{i:03d}"
        fileio.atomic_write_bytes(fileio.join(seed_tts, "prompt-wavs", f"{name}.wav"), audio_bytes_of(speak(prompt_text, voice), MIMI_SAMPLE_RATE))
        progress.update()  # the target is not synthesised: the model speaks it
        meta.append(f"{name}|{prompt_text}|prompt-wavs/{name}.wav|{target_text}")
    fileio.atomic_write_text(fileio.join(seed_tts, "meta.lst"), "\n".join(meta) + "\n")
    progress.close()
    paths = {
        "swuggy": fileio.join(root, "swuggy"), "sblimp": fileio.join(root, "sblimp"),
        "librispeech": librispeech, "seed_tts": fileio.join(seed_tts, "meta.lst"),
    }  # fmt: skip
    logger.info("mini task sets: %s", paths)
    return paths


def _flac(wave) -> bytes:
    import io as _io

    buffer = _io.BytesIO()
    sf.write(buffer, wave, MIMI_SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()

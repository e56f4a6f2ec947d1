"""The demo speech corpus: synthesised with flite and espeak-ng, in YODAS2's and Emilia's published layouts.

Deterministic (same sentences, voices and bytes every run) and small: ``DEFAULT_SENTENCES`` read by
six voices, flite's four (kal, awb, rms, slt: distinct and intelligible) and two espeak-ng ones.
The two layouts take alternate voices, so no clip is in both (a held-out Emilia utterance is never
a YODAS2 training segment). ``readings=k`` reads the sentence list k times per layout, each time by
other voices (``CHORUS_VOICES`` has 32: up to 16 readings), for a corpus k times larger whose
every reading is new audio.

    {output_path}/yodas2/data/en000/{audio,text,duration}/{index:08d}.*   long-form recordings (wav in
                                                                           tar.gz, captions, durations)
    {output_path}/emilia/{shard}.tar                                      one utterance per key (mp3 + json)

    {output_path}/stats.json     counts, the synthesisers' versions, each YODAS2 recording's voice (the
                                 layout has no speaker field), a SHA-256 of every file written

The writers (`write_yodas2_shard`, `write_emilia_shard`) are the layouts' reference and are used
by the tests to build corpora with deliberately bad records.

Reproducible bytes: espeak-ng (1.51) draws the breath noise of its female variants from libc's
``rand()``, unseeded and so the same every run, unless something else in the process draws first:
libpulse (which espeak-ng loads even when writing a file) does, when it creates its runtime
directory the first time a user runs it (fresh machine, fresh ``$HOME``, cleaned ``/tmp``). That
made the first espeak-ng recording of a run differ. `synthesize` gives every call a private
``PULSE_RUNTIME_PATH``, so libpulse never draws. flite has no randomness; the audio is not
dithered anywhere (sox is not used: python-soxr resamples, libsndfile writes WAV and MP3); the
tar.gz has fixed member metadata and a gzip header without time or name.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import logging
import os
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE, load_audio, resample
from soda_jax.contracts import STATS_FILE
from soda_jax.data.sources import yodas2

logger = logging.getLogger(__name__)

DEMO_LANGUAGE = "en"
DEMO_SUBSET = "en000"
"""The YODAS2 subset the demo's recordings are filed under."""
PAUSE_SECONDS = 0.4
"""Silence between sentences of a long-form recording."""
TAR_MTIME = 0
"""Fixed member timestamp so the same corpus gives byte-identical tars."""
GZIP_LEVEL = 6
"""gzip's default compression level (and ``tar czf``'s)."""

DEFAULT_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A stitch in time saves nine.",
    "She sells sea shells by the sea shore.",
    "The early bird catches the worm.",
    "Every cloud has a silver lining.",
    "Actions speak louder than words.",
    "The weather today is sunny with a light breeze.",
    "Please remember to turn off the lights when you leave.",
    "Our train departs from platform nine at half past seven.",
    "The library opens at ten in the morning on weekdays.",
    "He poured a cup of coffee and read the newspaper.",
    "Children were playing football in the park.",
    "The museum has a new exhibition about ancient Egypt.",
    "We planted tomatoes and beans in the garden this spring.",
    "The orchestra played a beautiful symphony last night.",
    "Could you tell me the way to the nearest station?",
    "The river flows gently through the green valley.",
    "She learned to play the piano when she was six.",
    "The bakery on the corner sells fresh bread every day.",
    "Mountains covered in snow rose above the small village.",
    "The scientist explained the results of the experiment.",
    "A gentle rain fell on the roof all afternoon.",
    "The cat slept peacefully on the warm windowsill.",
    "They built a wooden boat and sailed across the lake.",
    "Reading books is a wonderful way to learn new things.",
    "The market was full of colorful fruits and vegetables.",
    "He fixed the old bicycle and rode it to school.",
    "The stars shine brightly on a clear winter night.",
    "Our teacher asked us to write a short story.",
    "The bridge connects the two sides of the city.",
    "Fresh air and exercise are good for your health.",
    "The pilot announced that we would land in twenty minutes.",
    "A small boat drifted slowly toward the island.",
    "The chef prepared a delicious soup with fresh herbs.",
    "Birds sing loudly in the trees at sunrise.",
    "The meeting has been moved to Thursday afternoon.",
    "He found an old map hidden inside the book.",
    "The flowers in the garden bloom every spring.",
    "We watched the sunset from the top of the hill.",
    "Thank you for listening to this short demonstration.",
)


@dataclass(frozen=True)
class Voice:
    """A synthesiser voice."""

    engine: str
    """"flite" or "espeak-ng"."""
    name: str
    """The engine's voice name."""

    @property
    def speaker(self) -> str:
        return f"{self.engine}-{self.name}"


ESPEAK_WORDS_PER_MINUTE = 175
"""espeak-ng's default speaking rate (its ``-s``)."""


@dataclass(frozen=True)
class StyledVoice(Voice):
    """A voice read faster or slower and higher or lower: the same speaker (`Voice.speaker`)."""

    rate: float = 1.0
    """Speaking rate, a factor (1.2: 20% faster): flite's ``duration_stretch``, espeak-ng's ``-s``."""
    pitch: float = 1.0
    """Pitch, a factor: the speech is synthesised ``pitch`` times slower, then resampled to be
    ``pitch`` times shorter (every frequency times ``pitch``, the duration as ``rate`` alone makes it)."""


def styled(voices: Sequence[Voice], styles: Sequence[tuple[float, float]]) -> tuple[StyledVoice, ...]:
    """Every voice in every (rate, pitch) style, style by style."""
    return tuple(StyledVoice(v.engine, v.name, rate, pitch) for rate, pitch in styles for v in voices)


# kal16 is flite's kal voice at 16 kHz (plain "kal" is 8 kHz).
FLITE_VOICES = tuple(Voice("flite", v) for v in ("kal16", "awb", "rms", "slt"))
# espeak-ng voices are {language}+{variant}; "en" is British English ("en-gb" is not a voice name
# and silently falls back to the default).
ESPEAK_VOICES = tuple(Voice("espeak-ng", v) for v in ("en-us+f2", "en+m3"))
DEMO_VOICES = FLITE_VOICES + ESPEAK_VOICES
CHORUS_VOICES = DEMO_VOICES + tuple(
    Voice("espeak-ng", f"{language}+{variant}")
    for language, variants in (
        ("en-us", ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f3", "f4", "f5")),
        ("en", ("m1", "m2", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")),
        ("en-gb-scotland", ("m1", "f1")),
        ("en-029", ("m1", "f1")),
    )
    for variant in variants
)
"""32 distinct voices (measured: pairwise different audio) for corpora that read every sentence
many times."""


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak ``text`` with ``voice``: mono float32 at 24 kHz (a `StyledVoice` at its rate and pitch)."""
    rate, pitch = (voice.rate, voice.pitch) if isinstance(voice, StyledVoice) else (1.0, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "speech.wav")
        if voice.engine == "flite":
            stretch = [] if rate == pitch == 1.0 else ["--setf", f"duration_stretch={pitch / rate:.4f}"]
            command = ["flite", "-voice", voice.name, *stretch, "-t", text, "-o", wav]
        elif voice.engine == "espeak-ng":
            speed = [] if rate == pitch == 1.0 else ["-s", str(round(ESPEAK_WORDS_PER_MINUTE * rate / pitch))]
            command = ["espeak-ng", "-v", voice.name, *speed, "-w", wav, text]
        else:
            raise ValueError(f"unknown speech engine {voice.engine!r}")
        # A private runtime dir: libpulse then draws no rand() that would shift espeak-ng's noise.
        env = {**os.environ, "PULSE_RUNTIME_PATH": tmp}
        try:
            subprocess.run(command, check=True, capture_output=True, env=env)
        except FileNotFoundError:
            raise RuntimeError(f"{voice.engine} is not installed (Debian: apt-get install flite espeak-ng)") from None
        audio = load_audio(wav)
    if pitch != 1.0:  # played back at the Mimi rate: pitch times higher, pitch times shorter
        audio = resample(audio, MIMI_SAMPLE_RATE, round(MIMI_SAMPLE_RATE / pitch)).astype(np.float32)
    return audio


@functools.cache
def tool_versions() -> dict[str, str | None]:
    """Versions of what makes the corpus' bytes: the synthesisers, the encoder, the resampler."""

    def line_with(word: str, *command: str) -> str | None:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = [line.strip() for line in (out.stdout + out.stderr).splitlines() if word in line]
        return lines[0] if lines else None

    return {
        "flite": line_with("version", "flite", "--version"),  # "version: flite-2.2-current Sep 2018 ..."
        "espeak-ng": line_with("eSpeak NG", "espeak-ng", "--version"),  # "eSpeak NG text-to-speech: 1.51 ..."
        "libsndfile": sf.__libsndfile_version__,
        "python-soxr": soxr.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


def file_hashes(root: str) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by path relative to it (sorted)."""
    fs, base = fileio.filesystem(root)
    base = base.rstrip("/")
    return {
        path[len(base) + 1 :]: hashlib.sha256(fs.cat_file(path)).hexdigest()
        for path in sorted(fs.find(base))
        if not path.rsplit("/", 1)[-1].startswith(".")
    }


@dataclass(frozen=True)
class Recording:
    """A long-form recording with caption segments (one YODAS2 video)."""

    audio_id: str
    audio: np.ndarray
    """Mono float32 at 24 kHz."""
    segments: tuple[tuple[float, float, str], ...]
    """(start, end, text) in seconds; written as utterance ids in centiseconds."""
    speaker: str = ""
    """Who reads it. YODAS2 has no speaker field: not written into the layout."""


@dataclass(frozen=True)
class ShortUtterance:
    """One utterance of an Emilia shard."""

    id: str
    audio: np.ndarray
    """Mono float32 at 24 kHz."""
    text: str
    speaker: str = ""
    language: str = DEMO_LANGUAGE


def encode_audio(audio: np.ndarray, audio_format: str) -> bytes:
    """Audio as file bytes ("FLAC", "WAV", "MP3", ...) at 24 kHz."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, MIMI_SAMPLE_RATE, format=audio_format)
    return buffer.getvalue()


def tar_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A tar of ``(name, bytes)`` members, in order, with fixed metadata (reproducible bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_gz_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    """`tar_bytes` gzipped, its header without a time or a file name (reproducible bytes)."""
    return gzip.compress(tar_bytes(members), compresslevel=GZIP_LEVEL, mtime=0)


def published_captions(recording: Recording) -> dict[str, str]:
    """``{utterance id: caption}`` of a recording, keyed as YODAS2's text JSON keys them."""
    return {
        yodas2.chunk_id(recording.audio_id, k, start, end): text
        for k, (start, end, text) in enumerate(recording.segments)
    }


def write_yodas2_shard(
    root: str, subset: str, index: int, recordings: Sequence[Recording], audio_format: str = "WAV"
) -> None:
    """Write ``{root}/data/{subset}/`` ``audio/{index:08d}.tar.gz``, ``text/{index:08d}.json`` and
    ``duration/{index:08d}.txt`` as YODAS2 publishes them (docs/audio.md)."""
    audio_url, text_url, duration_url = yodas2.shard_urls(root, subset, index)
    suffix = audio_format.lower()
    members = [(f"{r.audio_id}.{suffix}", encode_audio(r.audio, audio_format)) for r in recordings]
    videos = [{"audio_id": r.audio_id, "text": published_captions(r)} for r in recordings]
    durations = "".join(f"{r.audio_id} {len(r.audio) / MIMI_SAMPLE_RATE:.2f}\n" for r in recordings)
    fileio.atomic_write_bytes(audio_url, tar_gz_bytes(members))
    fileio.atomic_write_text(text_url, json.dumps(videos) + "\n")
    fileio.atomic_write_text(duration_url, durations)


def write_emilia_shard(path: str, utterances: Sequence[ShortUtterance], audio_format: str = "MP3") -> None:
    """Write one Emilia-style tar: ``{id}.{fmt}`` + ``{id}.json`` per utterance, adjacent."""
    members = []
    for u in utterances:
        meta = {
            "id": u.id,
            "text": u.text,
            "duration": round(len(u.audio) / MIMI_SAMPLE_RATE, 3),
            "speaker": u.speaker,
            "language": u.language,
        }
        members.append((f"{u.id}.{audio_format.lower()}", encode_audio(u.audio, audio_format)))
        members.append((f"{u.id}.json", json.dumps(meta).encode()))
    fileio.atomic_write_bytes(path, tar_bytes(members))


def long_form(audio_id: str, speeches: Sequence[np.ndarray], texts: Sequence[str], speaker: str) -> Recording:
    """Concatenate sentences with pauses into one recording with a caption per sentence."""
    pause = np.zeros(round(PAUSE_SECONDS * MIMI_SAMPLE_RATE), dtype=np.float32)
    pieces, segments, cursor = [pause], [], len(pause)
    for speech, text in zip(speeches, texts):
        segments.append((cursor / MIMI_SAMPLE_RATE, (cursor + len(speech)) / MIMI_SAMPLE_RATE, text))
        pieces += [speech, pause]
        cursor += len(speech) + len(pause)
    return Recording(audio_id, np.concatenate(pieces), tuple(segments), speaker)


@dataclass(frozen=True)
class SynthDemoConfig:
    """Configuration of the demo corpus synthesis."""

    output_path: str
    """Directory receiving ``yodas2/`` and ``emilia/``."""
    sentences: tuple[str, ...] = DEFAULT_SENTENCES
    """What is read aloud (each sentence once per layout)."""
    sentences_per_recording: int = 5
    """Sentences in one YODAS2 long-form recording (one speaker each)."""
    recordings_per_shard: int = 4
    """YODAS2 recordings per shard (one audio tar.gz, one captions JSON)."""
    utterances_per_shard: int = 20
    """Emilia utterances per tar shard."""
    voices: tuple[Voice, ...] = DEMO_VOICES
    """Who reads: YODAS2 takes the even-indexed voices, Emilia the odd ones; they rotate over
    recordings (YODAS2) and utterances (Emilia)."""
    readings: int = 1
    """How many times each layout reads the sentence list; reading k shifts every voice by k, so no
    sentence is read twice by one voice (at most ``len(voices) // 2``)."""
    text_shift: int = 0
    """Tests only: caption sentence i with the speech of sentence i + ``text_shift`` (cyclically), a
    corpus whose text and speech do not match (tests/test_learning_demo.py). 0: every caption is what
    is spoken."""


def synthesize_demo_corpus(config: SynthDemoConfig) -> dict[str, str]:
    """Synthesise the demo corpus in both layouts; returns {"yodas2": root, "emilia": root}."""
    per_recording, sentences = config.sentences_per_recording, config.sentences
    shift = config.text_shift % len(sentences) if sentences else 0
    spoken = dict(zip(sentences, sentences[shift:] + sentences[:shift]))  # caption -> what is read aloud
    yodas_voices, emilia_voices = config.voices[0::2], config.voices[1::2]
    if not 1 <= config.readings <= len(emilia_voices):
        raise ValueError(
            f"readings must be 1..{len(emilia_voices)} (half of {len(config.voices)} voices per layout, "
            f"one per reading), got {config.readings}"
        )
    progress = tqdm(total=2 * len(sentences) * config.readings, desc="synthesise demo speech", unit="utterance")

    def speak(text: str, voice: Voice) -> np.ndarray:
        progress.update()
        return synthesize(spoken[text], voice)

    recordings: list[Recording] = []
    utterances: list[ShortUtterance] = []
    for reading in range(config.readings):  # reading k shifts every voice by k: no sentence twice by one voice
        # YODAS2: consecutive sentences form a recording with one speaker.
        for j, first in enumerate(range(0, len(sentences), per_recording)):
            voice, texts = yodas_voices[(j + reading) % len(yodas_voices)], sentences[first : first + per_recording]
            audio_id = f"demo{len(recordings):04d}"
            recordings.append(long_form(audio_id, [speak(t, voice) for t in texts], texts, voice.speaker))
        # Emilia: the same sentences as short utterances, voices rotating (several per shard).
        for i, text in enumerate(sentences):
            voice = emilia_voices[(i + reading) % len(emilia_voices)]
            utterance_id = f"EN_DEMO_{len(utterances):06d}"
            utterances.append(ShortUtterance(utterance_id, speak(text, voice), text, voice.speaker))
    progress.close()
    yodas_root = fileio.join(config.output_path, "yodas2")
    for s in range(0, len(recordings), config.recordings_per_shard):
        shard = recordings[s : s + config.recordings_per_shard]
        write_yodas2_shard(yodas_root, DEMO_SUBSET, s // config.recordings_per_shard, shard)
    emilia_root = fileio.join(config.output_path, "emilia")
    for s in range(0, len(utterances), config.utterances_per_shard):
        shard_path = fileio.join(emilia_root, f"EN-B{s // config.utterances_per_shard:06d}.tar")
        write_emilia_shard(shard_path, utterances[s : s + config.utterances_per_shard])
    stats = {
        "recordings": len(recordings),
        "utterances": len(utterances),
        "tools": tool_versions(),
        "yodas2_voices": {r.audio_id: r.speaker for r in recordings},
        "files": {**_prefixed("yodas2", file_hashes(yodas_root)), **_prefixed("emilia", file_hashes(emilia_root))},
    }
    fileio.atomic_write_json(fileio.join(config.output_path, STATS_FILE), stats)
    logger.info(
        "demo corpus: %d recordings, %d utterances in %s (%s)",
        len(recordings),
        len(utterances),
        config.output_path,
        stats["tools"],
    )
    return {"yodas2": yodas_root, "emilia": emilia_root}


def _prefixed(prefix: str, hashes: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}/{path}": digest for path, digest in hashes.items()}

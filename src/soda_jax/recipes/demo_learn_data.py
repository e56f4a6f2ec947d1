"""The learning demo's data steps (experiments/demo_learn.py): spoken commands -> Mimi codes -> token caches.

A closed vocabulary (`soda_jax.data.demo_text.command_sentences`: "set the red lamp to seven", 1,200
combinations of 28 words) read by five training speakers (flite kal16, awb, slt; espeak-ng en-us+f2,
en+m3), each at four (rate, pitch) styles, in YODAS2 and Emilia layouts; a tenth of the combinations
is held out of training (`command_split`) for the evaluation sets (src/soda_jax/recipes/demo_learn_eval.py),
and a sixth speaker (flite rms) never speaks in training. Text by a 512-id BPE of the commands;
audio as the first `LEARN_CODEBOOKS` codebooks of a tiny Mimi distilled on the training commands
(`learn_mimi`), of the demo's seeded random tiny Mimi (``--mimi random``), or of a pretrained Mimi
given with ``--mimi DIR`` (`learn_codec`).

Importing this module defines steps only: it builds no model and starts nothing.
"""

from __future__ import annotations

import dataclasses

from soda_jax.audio.codec import CodecConfig
from soda_jax.contracts import CODEC_DIR
from soda_jax.data.demo_text import command_sentences, command_split
from soda_jax.data.mixture import MixtureSpec
from soda_jax.data.synth import Voice, styled
from soda_jax.execution import ExecutorStep
from soda_jax.recipes.data_mixes import EMILIA, YODAS2, mixture_config
from soda_jax.recipes.defaults import (
    DEMO_CODEC,
    default_bpe_tokenizer,
    default_demo_codec,
    default_interleave,
    default_synth_demo_corpus,
    default_tokenize,
)

LEARN_HELD_OUT_FRACTION = 0.1
"""Combinations of words held out of training (never read in training, by any voice)."""
LEARN_VALIDATION_FRACTION = 0.05
"""Training recordings the interleave steps hold out for the validation loss."""
LEARN_CODEBOOKS = 2
"""Mimi codebooks kept: 25 audio tokens a second instead of 100, and still two, so that a wrong
codebook order changes every frame."""
LEARN_TEXT_VOCAB = 512
"""Text ids of the commands' BPE (as the mini sweep's): the LM head stays small."""
LEARN_SPEAKERS = (
    Voice("flite", "kal16"),
    Voice("flite", "awb"),
    Voice("flite", "slt"),
    Voice("espeak-ng", "en-us+f2"),
    Voice("espeak-ng", "en+m3"),
)
"""Who reads the training corpus (and the held-out combinations of the main evaluation split)."""
UNSEEN_SPEAKER = Voice("flite", "rms")
"""The harder split's speaker: never heard in training."""
LEARN_STYLES = ((1.0, 1.0), (1.12, 0.92))
"""(rate, pitch) of each reading style (`StyledVoice`)."""
LEARN_VOICES = styled(LEARN_SPEAKERS, LEARN_STYLES)
"""10 styled voices: YODAS2 takes the even ones and Emilia the odd ones (every speaker in both layouts)."""
LEARN_READINGS = 2
"""Each layout reads the training commands twice, by two voices (4 readings of every command in all)."""

TRAIN_COMMANDS, HELD_OUT_COMMANDS = command_split(LEARN_HELD_OUT_FRACTION)


RANDOM_MIMI = "random"
"""``--mimi random``: the demo's seeded random tiny Mimi (`DEMO_CODEC`) instead of the distilled one."""
DISTIL_RECORDINGS = 600
"""Training commands the demo Mimi is distilled on (each read by the next styled voice)."""

learn_mimi = default_demo_codec(
    "demo-mimi-distilled", TRAIN_COMMANDS, LEARN_VOICES, num_codebooks=LEARN_CODEBOOKS, recordings=DISTIL_RECORDINGS
)
"""``codecs/demo-mimi-distilled``: the demo's tiny Mimi distilled on the training commands (docs/audio.md)."""


def learn_codec(mimi: str | None = None) -> CodecConfig:
    """The learning demo's codec: by default the tiny Mimi distilled on the training commands
    (`learn_mimi`); ``"random"``: the demo's seeded random tiny Mimi; otherwise the pretrained Mimi in
    the directory ``mimi``."""
    if mimi is None:
        # a path once the executor resolves it
        return CodecConfig(pretrained=learn_mimi / CODEC_DIR, num_codebooks=LEARN_CODEBOOKS)  # type: ignore[arg-type]
    codec = DEMO_CODEC if mimi == RANDOM_MIMI else CodecConfig(pretrained=mimi)
    return dataclasses.replace(codec, num_codebooks=LEARN_CODEBOOKS)


def codec_suffix(mimi: str | None) -> str:
    """What step names add for the codec: nothing (distilled), ``-random`` or ``-mimi`` (a pretrained one)."""
    return "" if mimi is None else "-random" if mimi == RANDOM_MIMI else "-mimi"


def learn_speech(text_shift: int = 0) -> ExecutorStep:
    """``raw/demo-commands``: the training commands read by the styled voices in both layouts.
    ``text_shift`` (tests only): each caption paired with the speech of the command that many places
    later (`SynthDemoConfig.text_shift`), a corpus the model cannot learn to transcribe."""
    return default_synth_demo_corpus(
        LEARN_READINGS,
        LEARN_VOICES,
        name="demo-commands" + (f"-shifted{text_shift}" if text_shift else ""),
        sentences=TRAIN_COMMANDS,
        text_shift=text_shift,
        sentences_per_recording=4,
        recordings_per_shard=16,
        utterances_per_shard=64,
    )


learn_tokenizer = default_bpe_tokenizer(f"demo-commands-bpe-{LEARN_TEXT_VOCAB}", command_sentences(), LEARN_TEXT_VOCAB)


def learn_caches(mimi: str | None = None, text_shift: int = 0) -> dict[str, ExecutorStep]:
    """Component name -> the interleaved commands in that layout (text-first and audio-first documents)."""
    codec, speech = learn_codec(mimi), learn_speech(text_shift)
    corpus = "demo-commands" + codec_suffix(mimi) + (f"-shifted{text_shift}" if text_shift else "")
    return {
        source: default_interleave(
            f"{corpus}-{source}",
            default_tokenize(f"{corpus}-{source}", speech / source, source=source, codec=codec),
            tokenizer=learn_tokenizer,
            validation_fraction=LEARN_VALIDATION_FRACTION,
        )
        for source in (YODAS2, EMILIA)
    }


def learn_data(mimi: str | None = None, text_shift: int = 0) -> MixtureSpec:
    """The demo mix (YODAS2 and Emilia layouts 50/50) over `learn_caches`."""
    return mixture_config("demo", learn_caches(mimi, text_shift))

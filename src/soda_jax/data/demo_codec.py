"""The CPU learning demo's codec as a step: a tiny Mimi distilled on speech the demo's own voices read.

`distil_demo_codec` synthesises ``recordings`` of the given sentences (the demo's training commands
only: a codec fitted on held-out speech would leak it), each read by the next of ``voices``, and builds
`soda_jax.audio.distilled_mimi.build_distilled_mimi` on them. It writes ``{output}/mimi/`` (`CODEC_DIR`:
``config.json`` + ``model.safetensors`` + how it was made), which ``CodecConfig(pretrained=...)`` loads
with either backend, so tokenization, evaluation and generation take it like any pretrained Mimi.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from soda_jax import fileio
from soda_jax.audio.audio_io import MIMI_SAMPLE_RATE
from soda_jax.audio.distilled_mimi import DistilledMimiConfig, build_distilled_mimi, describe, save_distilled_mimi
from soda_jax.contracts import CODEC_DIR
from soda_jax.data.synth import Voice, synthesize, tool_versions


@dataclass(frozen=True)
class DemoCodecConfig:
    """Distil a demo Mimi on synthesised readings of ``sentences``."""

    output_path: str
    """The step's directory; the Mimi goes to its `CODEC_DIR`."""
    sentences: tuple[str, ...]
    """What the codec is distilled on (never held-out evaluation text)."""
    voices: tuple[Voice, ...]
    """Who reads them, in turn."""
    recordings: int = 600
    """Sentences drawn (without replacement; all of them when there are fewer)."""
    sample_seed: int = 0
    """Seed of the draw."""
    distil: DistilledMimiConfig = DistilledMimiConfig()
    """How the Mimi is distilled and its codebooks fitted (its ``num_codebooks`` must cover the codec's)."""


def distil_demo_codec(config: DemoCodecConfig) -> dict:
    """Synthesise, distil, write ``{output}/mimi/``; returns what `save_distilled_mimi` records."""
    if not config.sentences or not config.voices:
        raise ValueError(f"{config.output_path}: a demo codec needs sentences and voices to distil on")
    rng = np.random.default_rng(config.sample_seed)
    count = min(config.recordings, len(config.sentences))
    picks = rng.choice(len(config.sentences), count, replace=False)
    waves = [
        synthesize(config.sentences[pick], config.voices[i % len(config.voices)])
        for i, pick in enumerate(tqdm(picks, desc="synthesise speech to distil on", unit="utt", mininterval=10))
    ]
    model, losses = build_distilled_mimi(waves, config.distil)
    facts = describe(config.distil, waves, losses, MIMI_SAMPLE_RATE) | {"tools": tool_versions()}
    save_distilled_mimi(model, fileio.join(config.output_path, CODEC_DIR), facts)
    return facts

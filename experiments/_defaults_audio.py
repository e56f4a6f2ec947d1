"""Executor wiring for the speech-to-tokens steps (for the lead to fold into experiments/defaults.py).

demo_speech = default_synth_demo_corpus()
yodas2_tokens = default_tokenize_audio("demo-yodas2", demo_speech / "yodas2", source="yodas2")
emilia_tokens = default_tokenize_audio("demo-emilia", demo_speech / "emilia", source="emilia")

# production: real Mimi weights (a local dir or "kyutai/mimi"), real corpora
yodas2_tokens = default_tokenize_audio(
    "yodas2-en", "gs://bucket/yodas2", source="yodas2", languages=("en",),
    codec=CodecConfig(pretrained="kyutai/mimi"), cpus=4)
"""

from __future__ import annotations

from soda_jax.audio.codec import CodecConfig
from soda_jax.data.synth import SynthDemoConfig, synthesize_demo_corpus
from soda_jax.data.tokenize_audio import TokenizeAudioConfig, tokenize_audio
from soda_jax.execution import ExecutorStep, InputName, this_output_path, versioned

DEMO_CODEC = CodecConfig(pretrained=None, random_size="tiny", seed=0)
"""The CPU demo's codec: a seeded random tiny Mimi (real shapes and frame rate, ~10 ms per audio-second)."""


def default_synth_demo_corpus() -> ExecutorStep[SynthDemoConfig]:
    """``raw/demo-speech``: 40 sentences x 6 voices (flite, espeak-ng) in YODAS2 and Emilia layouts."""
    return ExecutorStep(
        name="raw/demo-speech",
        fn=synthesize_demo_corpus,
        config=SynthDemoConfig(output_path=this_output_path()),
        description="synthesise the demo speech corpus (flite + espeak-ng)",
    )


def default_tokenize_audio(
    name: str,
    input_path: ExecutorStep | InputName | str,
    *,
    source: str,
    languages: tuple[str, ...] = (),
    codec: CodecConfig = DEMO_CODEC,
    cpus: float = 1,
) -> ExecutorStep[TokenizeAudioConfig]:
    """``tokenized/{name}-audio``: a YODAS2/Emilia corpus -> Mimi codes per utterance (contract section 1).

    The source, languages and codec are versioned; batching and CPU counts are not (they do not
    change the codes). Shards run as Ray tasks with ``cpus`` each.
    """
    if isinstance(input_path, ExecutorStep):
        input_path = input_path / ""
    return ExecutorStep(
        name=f"tokenized/{name}-audio",
        fn=tokenize_audio,
        config=TokenizeAudioConfig(
            input_path=input_path,
            output_path=this_output_path(),
            source=versioned(source),
            languages=versioned(tuple(languages)),
            codec=versioned(codec),
            num_cpus_per_shard=cpus,
        ),
        description=f"Mimi-tokenize {source} ({codec.weights}, {codec.num_codebooks} codebooks)",
    )

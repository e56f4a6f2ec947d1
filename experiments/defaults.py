"""The steps experiment files are made of: one function per kind of step, each returning an `ExecutorStep`.

An experiment chains them; the executor derives every output path from the versioned settings
and the inputs, so the same call in two experiment files is the same step, run once::

    speech = default_synth_demo_corpus()
    tokenizer = default_text_tokenizer("mistral-v1")
    yodas2 = default_interleave("demo-yodas2", default_tokenize("demo-yodas2", speech / "yodas2", source="yodas2"),
                                tokenizer=tokenizer)
    data = mixture_config("yodas2_only", {"yodas2": yodas2})       # experiments.data_mixes
    model = default_train("demo-6m", data, DEMO_6M, DEMO_RECIPE)

What is versioned: whatever changes the step's output (the source, languages and codec of a
tokenization; the tokenizer and patterns of an interleave; the model shape, recipe and data mix of
a training run). What is not: resources, batching, logging, checkpoint cadence, the mesh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from levanter.data.text import LmDataConfig

from soda_jax.audio.codec import CodecConfig
from soda_jax.audio.text_tokenizers import ExportTokenizerConfig, export_tokenizer
from soda_jax.data.interleave_step import InterleaveConfig, interleave
from soda_jax.data.synth import DEMO_VOICES, SynthDemoConfig, Voice, synthesize_demo_corpus
from soda_jax.data.tokenize_audio import TokenizeAudioConfig, tokenize_audio
from soda_jax.data.tokenize_text import TokenizeTextConfig, tokenize_text
from soda_jax.execution import ExecutorStep, InputName, Resources, output_path_of, this_output_path, versioned
from soda_jax.models import ModelShape
from soda_jax.scaling.analysis import ScalingAnalysisConfig, analyze_scaling
from soda_jax.training import CheckpointPolicy, ParallelismConfig, TrainConfig, TrainRecipe
from soda_jax.training.train import train

Path = ExecutorStep | InputName | str
"""Where a step reads from: another step's output (whole, or ``step / "sub"``) or a fixed path."""

DEMO_CODEC = CodecConfig(pretrained=None, random_size="tiny", seed=0)
"""The CPU demo's codec: a seeded random tiny Mimi (real shapes and frame rate, ~10 ms per audio-second)."""

SODA_PATTERNS = ("text_first", "audio_first")
"""SODA pretrains on both interleaved types of every recording."""

TRAIN_STEP_CPUS = 1
"""Host cores a CPU training step reserves (JAX uses the machine's cores regardless)."""


# -- speech to tokens ---------------------------------------------------------------------------


def default_synth_demo_corpus(readings: int = 1, voices: Sequence[Voice] = DEMO_VOICES) -> ExecutorStep[SynthDemoConfig]:
    """``raw/demo-speech``: 40 sentences read by 6 voices (flite, espeak-ng) in YODAS2 and Emilia
    layouts; ``raw/demo-speech-x{k}`` reads them k times, each time by other ``voices``."""
    return ExecutorStep(
        name="raw/demo-speech" if readings == 1 else f"raw/demo-speech-x{readings}",
        fn=synthesize_demo_corpus,
        config=SynthDemoConfig(output_path=this_output_path(), voices=versioned(tuple(voices)), readings=versioned(readings)),
        description="synthesise the demo speech corpus (flite + espeak-ng)",
    )


def default_text_tokenizer(name: str = "mistral-v1") -> ExecutorStep[ExportTokenizerConfig]:
    """``tokenizers/{name}``: an offline text tokenizer written to a directory (production passes
    Llama-3's directory or hub id straight to `default_interleave` instead)."""
    return ExecutorStep(
        name=f"tokenizers/{name}",
        fn=export_tokenizer,
        config=ExportTokenizerConfig(output_path=this_output_path(), name=versioned(name)),
        description=f"export the offline {name} text tokenizer",
    )


def default_tokenize(
    name: str,
    input_path: Path,
    *,
    source: str,
    languages: Sequence[str] = (),
    codec: CodecConfig = DEMO_CODEC,
    cpus: float = 1,
) -> ExecutorStep[TokenizeAudioConfig]:
    """``tokenized/{name}-audio``: a YODAS2/Emilia corpus -> Mimi codes per utterance (docs/audio.md).

    Shards run as Ray tasks with ``cpus`` each. Production: ``codec=CodecConfig(pretrained="kyutai/mimi")``.
    """
    return ExecutorStep(
        name=f"tokenized/{name}-audio",
        fn=tokenize_audio,
        config=TokenizeAudioConfig(
            input_path=input_path,  # type: ignore[arg-type]  (a path once the executor resolves it)
            output_path=this_output_path(),
            source=versioned(source),
            languages=versioned(tuple(languages)),
            codec=versioned(codec),
            num_cpus_per_shard=cpus,
        ),
        description=f"Mimi-tokenize {source} ({codec.weights}, {codec.num_codebooks} codebooks)",
    )


# -- token caches ----------------------------------------------------------------------------------


def default_interleave(
    name: str,
    tokenized_audio: Path,
    *,
    tokenizer: Path,
    patterns: Sequence[str] = SODA_PATTERNS,
    validation_fraction: float = 0.01,
    max_document_tokens: int | None = None,
    speaker_marker: bool = False,
    cpus: float = 1,
) -> ExecutorStep[InterleaveConfig]:
    """``tokenized/{name}-interleaved``: a `default_tokenize` output -> train/validation token caches (docs/data.md)."""
    return ExecutorStep(
        name=f"tokenized/{name}-interleaved",
        fn=interleave,
        config=InterleaveConfig(
            input_path=tokenized_audio,  # type: ignore[arg-type]
            output_path=this_output_path(),
            tokenizer=versioned(tokenizer),  # type: ignore[arg-type]
            patterns=versioned(tuple(patterns)),
            validation_fraction=versioned(validation_fraction),
            max_document_tokens=versioned(max_document_tokens),
            speaker_marker=versioned(speaker_marker),
        ),
        description=f"interleave {name} ({', '.join(patterns)})",
        resources=Resources(cpus=cpus),
    )


def default_tokenize_text(
    name: str, input_path: Path, *, tokenizer: Path, validation_fraction: float = 0.001, cpus: float = 1
) -> ExecutorStep[TokenizeTextConfig]:
    """``tokenized/{name}-text``: jsonl/parquet text -> token caches in the same vocabulary."""
    return ExecutorStep(
        name=f"tokenized/{name}-text",
        fn=tokenize_text,
        config=TokenizeTextConfig(
            input_path=input_path,  # type: ignore[arg-type]
            output_path=this_output_path(),
            tokenizer=versioned(tokenizer),  # type: ignore[arg-type]
            validation_fraction=versioned(validation_fraction),
        ),
        description=f"tokenize text corpus {name}",
        resources=Resources(cpus=cpus),
    )


# -- training and analysis ------------------------------------------------------------------------


def default_train(
    name: str,
    data: LmDataConfig,
    model: ModelShape,
    recipe: TrainRecipe,
    *,
    tpu: str | None = None,
    parallelism: ParallelismConfig = ParallelismConfig(),
    checkpoints: CheckpointPolicy = CheckpointPolicy(),
    **options: Any,
) -> ExecutorStep[TrainConfig]:
    """``checkpoints/{name}``: train ``model`` on ``data`` with ``recipe`` (docs/training.md).

    Its output holds checkpoints/, hf/, metrics.jsonl and summary.json (docs/data-contracts.md).
    The model, the recipe and the data (mix weights, and the caches by their producers' versions)
    define the version; the mesh, checkpoint policy and logging do not, so a run may move to
    another slice and resume. ``tpu`` (e.g. ``"v5p-64"``) places the step on that slice through
    Ray; without a TPU cluster it runs on the local CPU. ``options``: further `TrainConfig` fields.
    """
    return ExecutorStep(
        name=f"checkpoints/{name}",
        fn=train,
        config=TrainConfig(
            data=versioned(data),  # type: ignore[arg-type]
            model=versioned(model),  # type: ignore[arg-type]
            output_path=this_output_path(),
            recipe=versioned(recipe),  # type: ignore[arg-type]
            parallelism=parallelism,
            checkpoints=checkpoints,
            **options,
        ),
        description=f"train {name}: {recipe.num_train_steps} steps x {recipe.batch_size} x {recipe.seq_len}",
        resources=Resources(cpus=TRAIN_STEP_CPUS, tpu=tpu),
    )


def default_scaling_analysis(
    name: str,
    train_steps: Sequence[ExecutorStep],
    *,
    eval_steps: Sequence[ExecutorStep | None] = (),
    reference_train_steps: Sequence[ExecutorStep] = (),
    reference_eval_steps: Sequence[ExecutorStep | None] = (),
    num_bootstrap: int = 1000,
) -> ExecutorStep[ScalingAnalysisConfig]:
    """Scaling-law fits and plots over a sweep's training runs (docs/scaling.md).

    ``eval_steps`` pair with ``train_steps`` one to one (None: a run without eval); their outputs
    hold results.json. ``reference_*``: another sweep (e.g. a text-only baseline) to compare with.
    """
    if eval_steps and len(eval_steps) != len(train_steps):
        raise ValueError("eval_steps must match train_steps one to one (use None for a run without eval)")
    if reference_eval_steps and len(reference_eval_steps) != len(reference_train_steps):
        raise ValueError("reference_eval_steps must match reference_train_steps one to one")

    def paths(steps: Sequence[ExecutorStep | None]) -> tuple[Any, ...]:
        return tuple("" if step is None else output_path_of(step) for step in steps)

    return ExecutorStep(
        name=name,
        fn=analyze_scaling,
        config=ScalingAnalysisConfig(
            run_paths=paths(train_steps),
            eval_paths=paths(eval_steps),
            reference_run_paths=paths(reference_train_steps),
            reference_eval_paths=paths(reference_eval_steps),
            output_path=this_output_path(),
            num_bootstrap=versioned(num_bootstrap),
        ),
        description=f"scaling fits over {len(train_steps)} runs",
    )


# -- evaluation ------------------------------------------------------------------------------------


def default_mini_tasksets(voices: Sequence[Voice] = DEMO_VOICES) -> ExecutorStep:
    """``raw/eval-mini``: sWUGGY/sBLIMP/LibriSpeech/Seed-TTS-style sets in the public layouts,
    synthesised from the demo voices (docs/evaluation.md)."""
    from soda_jax.eval.miniset import MiniTaskSetConfig, build_mini_tasksets

    return ExecutorStep(
        name="raw/eval-mini",
        fn=build_mini_tasksets,
        config=MiniTaskSetConfig(output_path=this_output_path(), voices=versioned(tuple(voices))),
        description="synthesise the mini evaluation sets (flite + espeak-ng)",
    )


def default_eval(
    name: str,
    checkpoint_step: Path,
    tasks: Sequence[Any],
    *,
    codec: CodecConfig | None = None,
    batch_size: int = 32,
    parallelism: ParallelismConfig = ParallelismConfig(),
    tpu: str | None = None,
) -> ExecutorStep:
    """``evaluation/{name}``: ``tasks`` (`soda_jax.eval.tasks`) on the latest checkpoint of a
    `default_train` step (or an HF directory): results.json, items/{task}.jsonl, generated WAVs.

    The tasks (their data by the producing steps' versions) and the model define the version; a
    killed evaluation re-runs only unfinished tasks and items (docs/evaluation.md).
    """
    from soda_jax.eval.step import EvalConfig, run_eval

    return ExecutorStep(
        name=f"evaluation/{name}",
        fn=run_eval,
        config=EvalConfig(
            model_path=checkpoint_step,  # type: ignore[arg-type]
            output_path=this_output_path(),
            tasks=versioned(tuple(tasks)),  # type: ignore[arg-type]
            codec=versioned(codec),  # type: ignore[arg-type]
            parallelism=parallelism,
            batch_size=batch_size,
        ),
        description=f"evaluate {name}: {', '.join(t.name for t in tasks)}",
        resources=Resources(cpus=TRAIN_STEP_CPUS, tpu=tpu),
    )

"""The steps experiment files are made of: one function per kind of step, each returning an `ExecutorStep`.

An experiment chains them; the executor derives every output path from the versioned settings
and the inputs, so the same call in two experiment files is the same step, run once::

    speech = default_synth_demo_corpus()
    tokenizer = default_text_tokenizer("mistral-v1")
    yodas2 = default_interleave("demo-yodas2", default_tokenize("demo-yodas2", speech / "yodas2", source="yodas2"),
                                tokenizer=tokenizer)
    data = mixture_config("yodas2_only", {"yodas2": yodas2})       # soda_jax.recipes.data_mixes
    model = default_train("demo-6m", data, DEMO_6M, DEMO_RECIPE)

What is versioned: whatever changes the step's output (the source, languages and codec of a
tokenization; the tokenizer and patterns of an interleave; the model shape, recipe and data mix of
a training run). What is not: resources, batching, logging, checkpoint cadence, the mesh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from soda_jax.aot.preflight import SmallestFittingSlice, compile_check_train
from soda_jax.audio.codec import DEFAULT_BACKEND, CodecConfig
from soda_jax.audio.precision import DEFAULT_MATMUL_PRECISION
from soda_jax.data.download import DEFAULT_WORKERS, DownloadConfig, download
from soda_jax.data.interleave_step import InterleaveConfig, interleave
from soda_jax.data.mixture import MixtureSpec
from soda_jax.data.sft import sft_mixture
from soda_jax.data.sft_sources import TaskSource
from soda_jax.data.sft_step import SftDataConfig, build_sft_data
from soda_jax.data.synth import DEMO_VOICES, SynthDemoConfig, Voice, synthesize_demo_corpus
from soda_jax.data.text_sources import NEMOTRON_HQ_ACTUAL
from soda_jax.data.tokenize_audio import (
    BUFFERED_BATCHES,
    DEFAULT_BATCH_SECONDS,
    TokenizeAudioConfig,
    tokenize_audio,
)
from soda_jax.data.tokenize_text import TokenizeTextConfig, tokenize_text
from soda_jax.data.tokenizer_steps import (
    ExportTokenizerConfig,
    TrainBpeConfig,
    export_tokenizer,
    train_bpe_tokenizer,
)
from soda_jax.execution import ExecutorStep, InputName, Resources, output_path_of, this_output_path, versioned
from soda_jax.execution.tpu_slices import tpu_slice
from soda_jax.models import ModelShape
from soda_jax.scaling.adaptive import AdaptiveLimits
from soda_jax.scaling.analysis import ScalingAnalysisConfig, analyze_scaling
from soda_jax.scaling.proposals import SweepProposalsConfig, SweepRunRef, propose_sweep_round
from soda_jax.scaling.runs import DEFAULT_FITTED_LOSS
from soda_jax.scaling.sweep import SweepRules, SweepRun
from soda_jax.training import CheckpointPolicy, ParallelismConfig, TrainConfig, TrainRecipe
from soda_jax.training.sft_recipe import SFT_RECIPE, SFT_SEQ_LEN
from soda_jax.training.train import train

StepInput = ExecutorStep | InputName | str
"""Where a step reads from: another step's output (whole, or ``step / "sub"``) or a fixed path."""

DEMO_CODEC = CodecConfig(pretrained=None, random_size="tiny", seed=0)
"""The CPU demo's codec: a seeded random tiny Mimi (real shapes and frame rate, ~10 ms per audio-second)."""

SODA_PATTERNS = ("text_first", "audio_first")
"""SODA pretrains on both interleaved types of every recording."""

TRAIN_STEP_CPUS = 1
"""Host cores a CPU training step reserves (JAX uses the machine's cores regardless)."""


# -- raw data from the hub ------------------------------------------------------------------------


def default_download(
    name: str, repo: str, *, include: Sequence[str] = (), workers: int = DEFAULT_WORKERS
) -> ExecutorStep[DownloadConfig]:
    """``raw/{name}``: a copy of a hub repository at a revision, ``repo`` written
    ``hf://datasets/{namespace}/{name}@{commit}`` (a model: ``hf://{namespace}/{name}@{commit}``), of the
    files ``include`` matches (fnmatch; a folder takes all below it: ``("data/en*",)``), in the
    repository's layout, with ``download_manifest.json`` (commit, files, sizes, hashes).

    The location (repository and revision) and the patterns are versioned; ``workers`` (files at
    once) is not. Resumable: a re-run copies only the files not yet complete (`soda_jax.data.download`).
    """
    return ExecutorStep(
        name=f"raw/{name}",
        fn=download,
        config=DownloadConfig(
            input_path=repo, output_path=this_output_path(), include=versioned(tuple(include)), max_workers=workers
        ),
        description=f"copy {repo} ({', '.join(include) or 'every file'})",
    )


# -- speech to tokens ---------------------------------------------------------------------------


def default_synth_demo_corpus(
    readings: int = 1,
    voices: Sequence[Voice] = DEMO_VOICES,
    *,
    name: str | None = None,
    sentences: Sequence[str] | None = None,
    text_shift: int = 0,
    **layout: Any,
) -> ExecutorStep[SynthDemoConfig]:
    """``raw/demo-speech``: 40 sentences read by 6 voices (flite, espeak-ng) in YODAS2 and Emilia
    layouts; ``raw/demo-speech-x{k}`` reads them k times, each time by other ``voices``.

    ``name`` and ``sentences``: another corpus read the same way (``raw/{name}``; the sentences are then
    versioned); ``text_shift`` (tests only, versioned when set): each caption paired with the speech of
    the sentence that many places later; ``layout``: `SynthDemoConfig`'s recording and shard sizes."""
    if name is None:
        name = "demo-speech" if readings == 1 else f"demo-speech-x{readings}"
    given = {"sentences": versioned(tuple(sentences))} if sentences is not None else {}
    if text_shift:
        given["text_shift"] = versioned(text_shift)
    return ExecutorStep(
        name=f"raw/{name}",
        fn=synthesize_demo_corpus,
        config=SynthDemoConfig(
            output_path=this_output_path(),
            voices=versioned(tuple(voices)),
            readings=versioned(readings),
            **given,
            **layout,
        ),
        description=f"synthesise the {name} speech corpus (flite + espeak-ng)",
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


def default_bpe_tokenizer(name: str, texts: Sequence[str], vocab_size: int = 512) -> ExecutorStep[TrainBpeConfig]:
    """``tokenizers/{name}``: a byte-level BPE of ``vocab_size`` text ids trained on ``texts`` (a
    small vocabulary for a small corpus: the LM head and embeddings stop dominating tiny models)."""
    return ExecutorStep(
        name=f"tokenizers/{name}",
        fn=train_bpe_tokenizer,
        config=TrainBpeConfig(
            output_path=this_output_path(), texts=versioned(tuple(texts)), vocab_size=versioned(vocab_size)
        ),
        description=f"train a {vocab_size}-id BPE on {len(texts)} texts",
    )


def default_demo_codec(
    name: str,
    sentences: Sequence[str],
    voices: Sequence[Voice],
    *,
    num_codebooks: int,
    recordings: int = 600,
) -> ExecutorStep:
    """``codecs/{name}``: a tiny Mimi distilled on ``recordings`` of ``sentences`` read by ``voices``
    (`soda_jax.data.demo_codec`; its first ``num_codebooks`` codebooks fitted). Pass
    ``CodecConfig(pretrained=step / CODEC_DIR)`` to the steps that use it (docs/audio.md)."""
    from soda_jax.audio.distilled_mimi import DistilledMimiConfig
    from soda_jax.data.demo_codec import DemoCodecConfig, distil_demo_codec

    return ExecutorStep(
        name=f"codecs/{name}",
        fn=distil_demo_codec,
        config=DemoCodecConfig(
            output_path=this_output_path(),
            sentences=versioned(tuple(sentences)),
            voices=versioned(tuple(voices)),
            recordings=versioned(recordings),
            distil=versioned(DistilledMimiConfig(num_codebooks=num_codebooks)),
        ),
        description=f"distil a demo Mimi on {min(recordings, len(sentences))} readings",
    )


def default_tokenize(
    name: str,
    input_path: StepInput,
    *,
    source: str,
    languages: Sequence[str] = (),
    codec: CodecConfig = DEMO_CODEC,
    cpus: float | None = None,
    codec_backend: str | None = None,
    resources: Resources | None = None,
    matmul_precision: str = DEFAULT_MATMUL_PRECISION,
    batch_seconds: float = DEFAULT_BATCH_SECONDS,
) -> ExecutorStep[TokenizeAudioConfig]:
    """``tokenized/{name}-audio``: a YODAS2/Emilia corpus -> Mimi codes per utterance (docs/audio.md).

    Shards run as Ray tasks with ``cpus`` each (default 1). Production: ``codec=CodecConfig(pretrained="kyutai/mimi")``.
    ``codec_backend`` ("torch" or "jax"): versioned when given; None runs the default (torch) with
    the output path it always had. ``resources`` instead of ``cpus``: what each shard task reserves
    (``Resources(cpus=4, gpu=1)``: the torch codec runs on the GPU), or, with ``tpu``, the slice the
    step runs on: one process per host, each tokenizing its share of the shards with the JAX codec
    over its chips (``codec_backend="jax"``; docs/tpu.md). ``matmul_precision`` on accelerators:
    "highest" keeps the CPU's codes; "high"/"default" are faster, change codes, and are versioned.
    ``batch_seconds``: padded audio per encoder batch (`BUFFERED_BATCHES` of it read ahead); a TPU
    host splits each batch over its chips, so give it a host's worth (docs/tpu.md).
    """
    if resources is not None and cpus is not None:
        raise ValueError("default_tokenize: give cpus or resources, not both")
    shard = resources or Resources(cpus=1 if cpus is None else cpus)
    if shard.tpu is not None and codec_backend != "jax":
        raise ValueError(f"default_tokenize: a TPU slice ({shard.tpu}) runs the JAX codec: pass codec_backend='jax'")
    return ExecutorStep(
        name=f"tokenized/{name}-audio",
        fn=tokenize_audio,
        config=TokenizeAudioConfig(
            input_path=input_path,  # type: ignore[arg-type]  # a path once the executor resolves it
            output_path=this_output_path(),
            source=versioned(source),
            languages=versioned(tuple(languages)),
            codec=versioned(codec),
            num_cpus_per_shard=shard.cpus,
            num_gpus_per_shard=shard.gpu,
            batch_seconds=batch_seconds,
            buffer_seconds=BUFFERED_BATCHES * batch_seconds,
            codec_backend=DEFAULT_BACKEND if codec_backend is None else versioned(codec_backend),
            matmul_precision=matmul_precision
            if matmul_precision == DEFAULT_MATMUL_PRECISION
            else versioned(matmul_precision),
        ),
        description=f"Mimi-tokenize {source} ({codec.weights}, {codec.num_codebooks} codebooks)",
        resources=shard if shard.tpu is not None else Resources(),
    )


# -- token caches ----------------------------------------------------------------------------------


def default_interleave(
    name: str,
    tokenized_audio: StepInput,
    *,
    tokenizer: StepInput,
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
            tokenizer=versioned(tokenizer),
            patterns=versioned(tuple(patterns)),
            validation_fraction=versioned(validation_fraction),
            max_document_tokens=versioned(max_document_tokens),
            speaker_marker=versioned(speaker_marker),
        ),
        description=f"interleave {name} ({', '.join(patterns)})",
        resources=Resources(cpus=cpus),
    )


def default_tokenize_text(
    name: str,
    input_path: StepInput,
    *,
    tokenizer: StepInput,
    validation_fraction: float = 0.001,
    partitions: Sequence[str] = NEMOTRON_HQ_ACTUAL,
    cpus: float = 1,
) -> ExecutorStep[TokenizeTextConfig]:
    """``tokenized/{name}-text``: jsonl / jsonl.zstd / parquet text -> token caches in the same vocabulary.

    ``partitions``: the ``key=value`` partitions of a Nemotron-CC-style tree to read (default SODA's
    ``hq_actual``; empty: all); an input without partitions is read whole (docs/data.md).
    """
    return ExecutorStep(
        name=f"tokenized/{name}-text",
        fn=tokenize_text,
        config=TokenizeTextConfig(
            input_path=input_path,  # type: ignore[arg-type]
            output_path=this_output_path(),
            tokenizer=versioned(tokenizer),
            validation_fraction=versioned(validation_fraction),
            partitions=versioned(tuple(partitions)),
        ),
        description=f"tokenize text corpus {name}",
        resources=Resources(cpus=cpus),
    )


# -- training and analysis ------------------------------------------------------------------------


def train_resources(tpu: str | Sequence[str] | None, slices: int, preflight: bool) -> Resources:
    """A training step's `Resources` (`default_train`'s ``tpu``, ``slices`` and ``preflight``)."""
    if tpu is None or isinstance(tpu, str):
        return Resources(
            cpus=TRAIN_STEP_CPUS, tpu=tpu, slices=slices, preflight=compile_check_train if preflight and tpu else None
        )
    if not preflight:
        raise ValueError(
            f"tpu={tuple(tpu)}: choosing the smallest slice that fits needs the pre-flight compile (preflight=True)"
        )
    choice = SmallestFittingSlice(tuple(tpu))
    return Resources(cpus=TRAIN_STEP_CPUS, tpu=choice.smallest, slices=slices, preflight=choice)


def default_train(
    name: str,
    data: MixtureSpec,
    model: ModelShape,
    recipe: TrainRecipe,
    *,
    tpu: str | Sequence[str] | None = None,
    slices: int = 1,
    preflight: bool = True,
    parallelism: ParallelismConfig = ParallelismConfig(),
    checkpoints: CheckpointPolicy = CheckpointPolicy(),
    **options: Any,
) -> ExecutorStep[TrainConfig]:
    """``checkpoints/{name}``: train ``model`` on ``data`` with ``recipe`` (docs/training.md).

    Its output holds checkpoints/, hf/, metrics.jsonl and summary.json (docs/data-contracts.md).
    The model, the recipe and the data (mix weights, and the caches by their producers' versions)
    define the version; the mesh, checkpoint policy and logging do not, so a run may move to
    another slice and resume. ``tpu`` (e.g. ``"v5p-64"``) runs the step on every host of ``slices``
    such slices through Ray (docs/tpu.md); a local run (no cluster address) trains on CPU instead.
    Several slice types (``("v5p-8", "v5p-16", "v5p-32")``) put it on the smallest its compiled step
    fits (`soda_jax.aot.preflight.SmallestFittingSlice`). ``preflight``: on a cluster, first compile
    the step for the slice on the driver and stop it there if it does not fit (`soda_jax.aot.preflight`).
    ``options``: further `TrainConfig` fields.
    """
    resources = train_resources(tpu, slices, preflight)
    return ExecutorStep(
        name=f"checkpoints/{name}",
        fn=train,
        config=TrainConfig(
            data=versioned(data),
            model=versioned(model),
            output_path=this_output_path(),
            recipe=versioned(recipe),
            parallelism=parallelism,
            checkpoints=checkpoints,
            **options,
        ),
        description=f"train {name}: {recipe.num_train_steps} steps x {recipe.batch_size} x {recipe.seq_len}",
        resources=resources,
    )


def default_scaling_analysis(
    name: str,
    train_steps: Sequence[ExecutorStep],
    *,
    eval_steps: Sequence[ExecutorStep | None] = (),
    reference_train_steps: Sequence[ExecutorStep] = (),
    reference_eval_steps: Sequence[ExecutorStep | None] = (),
    num_bootstrap: int = 1000,
    capability_metrics: Sequence[str] = (),
    bracket_limits: AdaptiveLimits | None = None,
    fitted_loss: str = DEFAULT_FITTED_LOSS,
) -> ExecutorStep[ScalingAnalysisConfig]:
    """Scaling-law fits and plots over a sweep's training runs (docs/scaling.md).

    ``eval_steps`` pair with ``train_steps`` one to one (None: a run without eval); their outputs
    hold results.json. ``reference_*``: another sweep (e.g. a text-only baseline) to compare with.
    ``capability_metrics``: the eval metrics to fit against loss (empty: all of them).
    ``bracket_limits``: fit N* and D* through the budgets bracketed under these limits only
    (an adaptive sweep passes the limits its proposals judge by). ``fitted_loss``: the loss every fit
    uses (`soda_jax.scaling.runs.fitted_loss_names`; SODA's held-out speech NLL by default). It is
    always versioned: an analysis of another loss is another output.
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
            # versioned only when given, so the analysis steps that fit every metric keep their versions
            capability_metrics=versioned(tuple(capability_metrics)) if capability_metrics else (),
            bracket_limits=versioned(bracket_limits) if bracket_limits is not None else None,
            fitted_loss=versioned(fitted_loss),
        ),
        description=f"scaling fits over {len(train_steps)} runs",
    )


def default_sweep_proposals(
    name: str,
    runs: Sequence[SweepRun],
    train_steps: Sequence[ExecutorStep],
    rules: SweepRules,
    *,
    limits: AdaptiveLimits = AdaptiveLimits(),
) -> ExecutorStep[SweepProposalsConfig]:
    """``{name}``: judge each budget of a sweep's finished runs and propose the runs that would
    bracket its optimum (``proposals.json``; docs/scaling.md, "Adaptive grids").

    ``train_steps`` pair with ``runs`` one to one. The rules and limits are versioned; the runs
    are inputs, so each round of proposals (over more runs) is a step of its own.
    """
    if len(runs) != len(train_steps):
        raise ValueError(f"{len(runs)} runs but {len(train_steps)} training steps: they pair one to one")
    refs = tuple(
        SweepRunRef(budget=run.budget, hidden=run.shape.hidden_dim, path=output_path_of(step))  # type: ignore[arg-type]
        for run, step in zip(runs, train_steps)
    )
    return ExecutorStep(
        name=name,
        fn=propose_sweep_round,
        config=SweepProposalsConfig(
            runs=refs, rules=versioned(rules), output_path=this_output_path(), limits=versioned(limits)
        ),
        description=f"bracket check and proposals over {len(runs)} sweep runs",
    )


# -- fine-tuning (docs/training.md "Fine-tuning") ----------------------------------------------------
# SFT data steps and `default_sft`, which is `default_train` started from a model.


def default_sft_data(
    name: str,
    source: TaskSource,
    *,
    tokenizer: StepInput,
    max_tokens: int = SFT_SEQ_LEN,
    overlong: str = "skip",
    validation_fraction: float = 0.01,
    codec: CodecConfig | None = None,
) -> ExecutorStep[SftDataConfig]:
    """``tokenized/{name}-sft``: prompt/response caches of a task (`soda_jax.data.sft_sources`).

    ``tokenizer`` and ``codec`` must be the base model's (the vocabulary is checked when training
    starts); ``max_tokens`` is the fine-tuning sequence length.
    """
    return ExecutorStep(
        name=f"tokenized/{name}-sft",
        fn=build_sft_data,
        config=SftDataConfig(
            source=versioned(source),
            output_path=this_output_path(),
            tokenizer=versioned(tokenizer),
            max_tokens=versioned(max_tokens),
            overlong=versioned(overlong),
            validation_fraction=versioned(validation_fraction),
            codec=versioned(codec),
        ),
        description=f"{type(source).__name__} -> fine-tuning caches",
    )


def default_sft(
    name: str,
    base: ExecutorStep | str,
    task_data: ExecutorStep | Mapping[str, ExecutorStep] | MixtureSpec,
    recipe: TrainRecipe = SFT_RECIPE,
    *,
    model: ModelShape | None = None,
    **train_options: Any,
) -> ExecutorStep[TrainConfig]:
    """``checkpoints/{name}``: fine-tune ``base`` on ``task_data`` (loss on responses only).

    ``base``: a `default_train` step (its latest checkpoint; its model shape is taken) or a
    transformers directory of a SODA-layout Qwen3 (then ``model`` gives the shape). The source is
    an input of the step (a step dependency, or a versioned path), so it is in the version and the
    provenance. ``task_data``: a `default_sft_data` step, several by name (mixed equally), or a
    ready `MixtureSpec` (`soda_jax.data.sft.sft_mixture`). ``train_options``: `default_train`'s
    (``tpu``, ``parallelism``, ...).
    """
    if isinstance(base, ExecutorStep):
        init_from: Any = output_path_of(base)
        model = model or base.config.model.value  # default_train versions its shape
    else:
        init_from = versioned(base)
    if model is None:
        raise ValueError(f"default_sft({name!r}): starting from the path {base!r} needs model=ModelShape(...)")
    if isinstance(task_data, ExecutorStep):
        task_data = {name: task_data}
    for step in task_data.values() if isinstance(task_data, Mapping) else ():
        max_tokens = getattr(step.config, "max_tokens", None)
        max_tokens = getattr(max_tokens, "value", max_tokens)
        if isinstance(max_tokens, int) and max_tokens > recipe.seq_len:
            raise ValueError(
                f"{step.name}: pairs of up to {max_tokens} tokens do not fit sequences of {recipe.seq_len}"
            )
    data = task_data if isinstance(task_data, MixtureSpec) else sft_mixture(task_data)
    return default_train(name, data, model, recipe, init_from=init_from, **train_options)


# -- evaluation ------------------------------------------------------------------------------------


def default_mini_tasksets(
    corpus: StepInput,
    *,
    validation_fraction: float,
    voices: Sequence[Voice] = DEMO_VOICES,
    item_seconds: float | None = 1.0,
    shot_seconds: float = 0.8,
) -> ExecutorStep:
    """``raw/eval-mini``: sWUGGY/sBLIMP-style pairs synthesised from ``voices``, and LibriSpeech /
    Seed-TTS items cut from the recordings of ``corpus`` (a `default_synth_demo_corpus` step) that
    its interleave steps hold out (``validation_fraction`` as theirs), in the public layouts
    (docs/evaluation.md)."""
    from soda_jax.eval.heldout import HeldOutSpec
    from soda_jax.eval.miniset import MiniTaskSetConfig, build_mini_tasksets

    heldout = HeldOutSpec(
        corpus_path=corpus,  # type: ignore[arg-type]
        validation_fraction=versioned(validation_fraction),
        item_seconds=versioned(item_seconds),
        shot_seconds=versioned(shot_seconds),
    )
    return ExecutorStep(
        name="raw/eval-mini",
        fn=build_mini_tasksets,
        config=MiniTaskSetConfig(output_path=this_output_path(), heldout=heldout, voices=versioned(tuple(voices))),
        description="mini evaluation sets: synthesised pairs, held-out demo recordings for ASR/TTS",
    )


def default_eval(
    name: str,
    checkpoint_step: StepInput,
    tasks: Sequence[Any],
    *,
    codec: CodecConfig | None = None,
    batch_size: int = 32,
    parallelism: ParallelismConfig = ParallelismConfig(),
    tpu: str | None = None,
    compilation_cache_dir: Any = None,
) -> ExecutorStep:
    """``evaluation/{name}``: ``tasks`` (`soda_jax.eval.tasks`) on the latest checkpoint of a
    `default_train` step (or an HF directory): results.json, items/{task}.jsonl, generated WAVs.
    ``compilation_cache_dir``: a JAX compilation cache to share (e.g. ``prefix_path("jax-cache")``).

    The tasks (their data by the producing steps' versions) and the model define the version; a
    killed evaluation re-runs only unfinished tasks and items (docs/evaluation.md). ``tpu``: a
    one-host slice (``"v5p-8"``): an evaluation runs in one process (`soda_jax.eval.step`).
    """
    from soda_jax.eval.step import EvalConfig, run_eval

    if tpu is not None and tpu_slice(tpu).num_hosts > 1:
        raise ValueError(
            f"default_eval({name!r}, tpu={tpu!r}): {tpu} has {tpu_slice(tpu).num_hosts} hosts; an evaluation runs "
            f"on one host (one process loads, scores and writes): use a one-host slice such as v5p-8"
        )

    return ExecutorStep(
        name=f"evaluation/{name}",
        fn=run_eval,
        config=EvalConfig(
            # a path (an HF directory, a run trained elsewhere) is versioned by its location
            model_path=versioned(checkpoint_step) if isinstance(checkpoint_step, str) else checkpoint_step,  # type: ignore[arg-type]
            output_path=this_output_path(),
            tasks=versioned(tuple(tasks)),
            codec=versioned(codec),
            parallelism=parallelism,
            batch_size=batch_size,
            compilation_cache_dir=compilation_cache_dir,
        ),
        description=f"evaluate {name}: {', '.join(t.name for t in tasks)}",
        resources=Resources(cpus=TRAIN_STEP_CPUS, tpu=tpu),
    )

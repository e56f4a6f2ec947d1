"""`make demo`: the whole pipeline on CPU, from synthesised speech to a trained model.

    python experiments/demo.py --prefix ./demo-output [--full] [executor flags: --dry_run, --local, ...]

1. ``raw/demo-speech``: 40 sentences read by six flite/espeak-ng voices, in YODAS2 (long-form
   recordings + caption segments) and Emilia (tar shards of utterances) layouts.
2. ``tokenizers/mistral-v1``: a real 32k SentencePiece text tokenizer, available offline.
3. ``tokenized/demo-{yodas2,emilia}-audio``: Mimi codes per utterance (a seeded random tiny Mimi).
4. ``tokenized/demo-{yodas2,emilia}-interleaved``: text-first and audio-first documents -> token caches.
5. ``checkpoints/demo-6m``: a 6.4M-parameter Qwen3 (0.2M outside the embeddings) trained on the two caches mixed 50/50.
6. ``{prefix}/generated/``: the trained model speaks one sentence (TTS WAV) and transcribes one
   sentence read by flite (ASR text), with `soda_jax.inference`. Expect nonsense: 6M parameters
   trained on 40 sentences. The point is the path from checkpoint to WAV and text.

``--full`` also runs the miniature isoFLOP sweep (up to 3 adaptive rounds, every run evaluated)
and its scaling-law fits on a 16-times larger reading of the same sentences with a 512-id BPE
(experiments/isoflop_mini.py; docs/scaling.md has the measured time), and ends with its result:
the fitted loss, the exponents with their intervals, each budget's bracket verdict, the plots.
``evaluation/demo-6m`` then scores the model on mini task sets synthesised from the demo voices
(``raw/eval-mini``; src/soda_jax/recipes/demo_eval.py) and prints the results table: chance level expected.
Re-running skips every finished step.
"""

from __future__ import annotations

from soda_jax import fileio
from soda_jax.contracts import HF_DIR, METRICS_FILE, PROVENANCE_FILE, SUMMARY_FILE
from soda_jax.execution import ExecutorStep, executor_main
from soda_jax.execution.parallel import shutdown_workers
from soda_jax.execution.timeline import wall_shares
from soda_jax.recipes.adaptive_sweep import pop_rounds
from soda_jax.recipes.defaults import default_train
from soda_jax.recipes.demo_data import demo_data
from soda_jax.recipes.demo_eval import demo_evaluation, report_evaluation
from soda_jax.recipes.soda_models import DEMO_6M, DEMO_RECIPE
from soda_jax.training import CheckpointPolicy

FULL_FLAG = "--full"
MINI_SWEEP_ROUNDS = 3
"""Train-and-propose rounds of the mini sweep under ``--full`` (the first grid, then the runs that
bracket each budget)."""

demo_model = default_train(
    "demo-6m",
    demo_data(),
    DEMO_6M,
    DEMO_RECIPE,
    gradient_checkpointing=False,  # tiny model: recomputation costs time and saves nothing
    steps_per_eval=40,
    max_eval_batches=4,
    checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),
)
demo_eval = demo_evaluation(demo_model)


def report_training(step: ExecutorStep, output_path: str) -> None:
    summary = fileio.read_json_or_none(fileio.join(output_path, SUMMARY_FILE))
    if summary is None:
        return
    speech = ((summary.get("heldout_nll") or {}).get("speech") or {}).get("loss")
    print(
        f"\n{step.name}: {summary['steps']} steps, {summary['tokens']:,} tokens, "
        f"final train loss {summary['final_train_loss']:.3f}, validation loss {summary['final_validation_loss']:.3f}"
        + (f" (held-out speech NLL {speech:.3f} nats/token)" if speech is not None else "")
    )
    print(f"  model for transformers:  {fileio.join(output_path, HF_DIR)}")
    print(f"  metrics per step:        {fileio.join(output_path, METRICS_FILE)}")
    print(f"  provenance:              {fileio.join(output_path, PROVENANCE_FILE)}   (soda info {output_path})")


def report_sweep(analysis_name: str, output_paths: dict[str, str]) -> None:
    """The mini sweep's result, last: the fitted loss, exponents with intervals, each budget's bracket
    verdict, and where the plots are (`soda_jax.scaling.analysis.describe_fits`)."""
    from soda_jax.contracts import FITS_FILE, PROPOSALS_FILE
    from soda_jax.scaling.analysis import describe_fits

    path = output_paths.get(analysis_name)
    fits = fileio.read_json_or_none(fileio.join(path, FITS_FILE)) if path else None
    if fits is None:
        print(f"\n{analysis_name}: no fits yet ({path or 'not run'})")
        return
    proposals_path = output_paths.get(f"{analysis_name}-proposals")
    proposals = fileio.read_json_or_none(fileio.join(proposals_path, PROPOSALS_FILE)) if proposals_path else None
    print(f"\n{analysis_name}: the isoFLOP mini sweep's result")
    print(describe_fits(fits, path, proposals))


def demo_generation(run_dir: str, out_dir: str) -> None:
    """TTS of one demo sentence and ASR of the same sentence read by flite (nonsense quality expected)."""
    from soda_jax.data.synth import DEFAULT_SENTENCES, synthesize
    from soda_jax.data.synth import DEMO_VOICES as VOICES
    from soda_jax.inference.loader import load_model
    from soda_jax.inference.parse import write_wav
    from soda_jax.inference.prompts import sampling_params
    from soda_jax.inference.requests import run_task

    loaded = load_model(run_dir)
    codec = loaded.mimi_codec()
    sentence = DEFAULT_SENTENCES[1]
    transcript_tokens = 40
    # the demo model's context is 256 tokens: keep the speech short enough to leave room for the transcript
    audio_tokens_per_second = codec.frame_rate * loaded.num_codebooks
    max_seconds = (loaded.context_length - transcript_tokens - 8) / audio_tokens_per_second
    speech = fileio.join(out_dir, "asr-input.wav")
    write_wav(speech, synthesize(sentence, VOICES[0])[: int(max_seconds * codec.sample_rate)], codec.sample_rate)
    tts = run_task(
        "tts",
        loaded,
        out_dir,
        codec=codec,
        inputs={"text": sentence},
        params=sampling_params("tts", loaded.vocab, max_new_tokens=loaded.context_length, seed=0),
    )
    asr = run_task(
        "asr",
        loaded,
        out_dir,
        codec=codec,
        inputs={"audio": speech},
        params=sampling_params("asr", loaded.vocab, max_new_tokens=transcript_tokens, seed=0),
    )
    print(f"\ngenerated by {loaded.source} (a 6M model trained on 40 sentences: expect nonsense):")
    print(f"  TTS of {sentence!r}: {tts.output_path or '(no whole frame)'}  ({tts.record['frames']} frames)")
    print(f"  ASR of {speech}: {asr.record['text']!r}  -> {asr.output_path}")
    print(
        f"  requests, ids and sampling parameters: {fileio.join(out_dir, 'tts.json')}, "
        f"{fileio.join(out_dir, 'asr.json')}"
    )


def main(argv: list[str]) -> None:
    full = FULL_FLAG in argv
    argv = [a for a in argv if a != FULL_FLAG]
    rounds, executor_args = pop_rounds(argv, default=MINI_SWEEP_ROUNDS)
    description = "soda-jax demo: synthesised speech -> tokens -> trained model"
    if full:  # the demo's steps run alongside the sweep's first round, sharing the cores
        from soda_jax.recipes.adaptive_sweep import run_adaptive_sweep
        from soda_jax.recipes.isoflop_mini import mini_adaptive_sweep

        sweep = mini_adaptive_sweep()
        _, report = run_adaptive_sweep(
            sweep,
            [*executor_args, "--rounds", str(rounds)],
            f"{description}, and the isoFLOP mini sweep",
            with_steps=[demo_model, demo_eval],
        )
    else:
        report = executor_main([demo_model, demo_eval], description=description, args=executor_args)
    if report is not None:
        shutdown_workers()  # flush the workers' logs before the summary
        report_training(demo_model, report.output_paths[demo_model.name])
        if "--dry_run" not in argv:
            demo_generation(report.output_paths[demo_model.name], fileio.join(report.prefix, "generated"))
        report_evaluation(demo_eval, report.output_paths[demo_eval.name])
        print(f"\nevery step, its provenance and metrics in a browser:  soda dashboard --prefix {report.prefix}")
        if full:
            report_sweep(sweep.name, report.output_paths)
        print(f"where this run's time went: {wall_shares(report, training=[demo_model.name]).describe()}")

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

``--full`` also runs the miniature isoFLOP sweep and its scaling-law fits on a 16-times larger
reading of the same sentences (experiments/isoflop_mini.py; about 16 minutes on 2 cores).
``evaluation/demo-6m`` then scores the model on mini task sets synthesised from the demo voices
(``raw/eval-mini``; experiments/demo_eval.py) and prints the results table: chance level expected.
Re-running skips every finished step.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import ray

from experiments.data_mixes import EMILIA, YODAS2, mixture_config
from experiments.defaults import (
    default_interleave,
    default_synth_demo_corpus,
    default_text_tokenizer,
    default_tokenize,
    default_train,
)
from experiments.demo_eval import demo_evaluation, report_evaluation
from experiments.soda_models import DEMO_6M, DEMO_RECIPE
from soda_jax import io
from soda_jax.execution import ExecutorStep, executor_main
from soda_jax.data.synth import DEMO_VOICES, Voice
from soda_jax.execution.provenance import PROVENANCE_FILE
from soda_jax.training import CheckpointPolicy

FULL_FLAG = "--full"
DEMO_VALIDATION_FRACTION = 0.2
"""Recordings held out for validation: a fifth, so the tiny corpus still has a validation set."""

text_tokenizer = default_text_tokenizer("mistral-v1")


def demo_caches(readings: int = 1, voices: Sequence[Voice] = DEMO_VOICES) -> dict[str, ExecutorStep]:
    """Component name -> its token-cache step: the interleaved demo corpus in each layout, its
    sentences read ``readings`` times (`default_synth_demo_corpus`)."""
    speech = default_synth_demo_corpus(readings, voices)
    corpus = "demo" if readings == 1 else f"demo-x{readings}"
    return {
        source: default_interleave(
            f"{corpus}-{source}",
            default_tokenize(f"{corpus}-{source}", speech / source, source=source),
            tokenizer=text_tokenizer,
            validation_fraction=DEMO_VALIDATION_FRACTION,
        )
        for source in (YODAS2, EMILIA)
    }


def demo_data(readings: int = 1, voices: Sequence[Voice] = DEMO_VOICES):
    """The demo mix (YODAS2 and Emilia layouts 50/50) over `demo_caches`."""
    return mixture_config("demo", demo_caches(readings, voices))


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
    summary = io.read_json_or_none(io.join(output_path, "summary.json"))
    if summary is None:
        return
    print(f"\n{step.name}: {summary['steps']} steps, {summary['tokens']:,} tokens, "
          f"final train loss {summary['final_train_loss']:.3f}, validation loss {summary['final_validation_loss']:.3f}")
    print(f"  model for transformers:  {io.join(output_path, 'hf')}")
    print(f"  metrics per step:        {io.join(output_path, 'metrics.jsonl')}")
    print(f"  provenance:              {io.join(output_path, PROVENANCE_FILE)}   (soda info {output_path})")


def demo_generation(run_dir: str, out_dir: str) -> None:
    """TTS of one demo sentence and ASR of the same sentence read by flite (nonsense quality expected)."""
    from soda_jax.data.synth import DEFAULT_SENTENCES, DEMO_VOICES as VOICES, synthesize
    from soda_jax.inference.loader import load_model
    from soda_jax.inference.parse import write_wav
    from soda_jax.inference.prompts import sampling_params
    from soda_jax.inference.tasks import run_task

    loaded = load_model(run_dir)
    codec = loaded.mimi_codec()
    sentence = DEFAULT_SENTENCES[1]
    transcript_tokens = 40
    # the demo model's context is 256 tokens: keep the speech short enough to leave room for the transcript
    audio_tokens_per_second = codec.frame_rate * loaded.num_codebooks
    max_seconds = (loaded.context_length - transcript_tokens - 8) / audio_tokens_per_second
    speech = io.join(out_dir, "asr-input.wav")
    write_wav(speech, synthesize(sentence, VOICES[0])[: int(max_seconds * codec.sample_rate)], codec.sample_rate)
    tts = run_task("tts", loaded, out_dir, codec=codec, inputs={"text": sentence},
                   params=sampling_params("tts", loaded.vocab, max_new_tokens=loaded.context_length, seed=0))
    asr = run_task("asr", loaded, out_dir, codec=codec, inputs={"audio": speech},
                   params=sampling_params("asr", loaded.vocab, max_new_tokens=transcript_tokens, seed=0))
    print(f"\ngenerated by {loaded.source} (a 6M model trained on 40 sentences: expect nonsense):")
    print(f"  TTS of {sentence!r}: {tts.output_path or '(no whole frame)'}  ({tts.record['frames']} frames)")
    print(f"  ASR of {speech}: {asr.record['text']!r}  -> {asr.output_path}")
    print(f"  requests, ids and sampling parameters: {io.join(out_dir, 'tts.json')}, {io.join(out_dir, 'asr.json')}")


def main(argv: list[str]) -> None:
    steps: list[ExecutorStep] = [demo_model, demo_eval]
    if FULL_FLAG in argv:
        from experiments.isoflop_mini import build_mini_sweep

        steps += build_mini_sweep()
    report = executor_main(steps, description="soda-jax demo: synthesised speech -> tokens -> trained model",
                           args=[a for a in argv if a != FULL_FLAG])
    if report is not None:
        ray.shutdown()  # flush the workers' logs before the summary
        report_training(demo_model, report.output_paths[demo_model.name])
        if "--dry_run" not in argv:
            demo_generation(report.output_paths[demo_model.name], io.join(report.prefix, "generated"))
        report_evaluation(demo_eval, report.output_paths[demo_eval.name])
        print(f"\nevery step, its provenance and metrics in a browser:  soda dashboard --prefix {report.prefix}")


if __name__ == "__main__":
    main(sys.argv[1:])

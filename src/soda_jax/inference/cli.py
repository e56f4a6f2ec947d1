"""``soda generate tts|voice-tts|asr|continue --checkpoint PATH --out DIR ...`` (see docs/inference.md).

``asr`` with ``--shot AUDIO TRANSCRIPT`` (repeated) runs SODA's N-shot ASR prompt."""

from __future__ import annotations

import argparse
import logging
import sys

from soda_jax.audio.audio_io import AudioReadError
from soda_jax.inference.loader import ModelLoadError, codec_config_from_facts, load_model
from soda_jax.inference.prompts import TASK_DEFAULTS, sampling_params
from soda_jax.inference.requests import CLI_TASKS, DEFAULT_PROMPT_SECONDS, TaskInputError, run_task

DESCRIPTION = "Generate speech or text with a soda-jax or SODA checkpoint (docs/inference.md)."


def parser() -> argparse.ArgumentParser:
    """``soda generate``'s parser on its own."""
    p = argparse.ArgumentParser(prog="soda generate", description=DESCRIPTION)
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``soda generate``'s arguments (flags in any order, before or after the task)."""
    p.add_argument("task", choices=sorted(CLI_TASKS), help="what to generate")
    p.add_argument("--checkpoint", required=True, help="training output directory, its hf/, or an HF Qwen3 directory")
    p.add_argument("--out", required=True, help="directory for {name}.wav/.txt and {name}.json")
    p.add_argument("--name", help="output file stem (default: the task)")
    p.add_argument("--text", help="text to speak (tts, voice-tts)")
    p.add_argument("--audio", help="audio file to transcribe (asr) or continue (continue)")
    p.add_argument("--ref-text", help="transcript of --ref-audio (voice-tts)")
    p.add_argument("--ref-audio", help="reference voice (voice-tts)")
    p.add_argument(
        "--shot",
        nargs=2,
        action="append",
        metavar=("AUDIO", "TRANSCRIPT"),
        help="asr: an in-context example, in order; repeat for N shots (SODA's N-shot prompt and sampling)",
    )
    p.add_argument(
        "--prompt-seconds", type=float, default=DEFAULT_PROMPT_SECONDS, help="continue: seconds of --audio kept"
    )
    p.add_argument("--temperature", type=float, help="0 is greedy (default: the task's, docs/inference.md)")
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-audio-constraint", action="store_true", help="sample audio without the frame constraint")
    p.add_argument(
        "--mimi", help="Mimi weights (path/hub id, or random-{tiny,full}-seed{N}); default: the data's codec.json"
    )
    p.add_argument("--num-codebooks", type=int, help="codebooks per frame (default: the data's)")
    p.add_argument(
        "--prefer-hf", action="store_true", help="load a training output's hf/ export instead of its checkpoint"
    )


def generate_main(argv: list[str]) -> int:
    """``soda generate ARGS`` on its own parser; returns the exit status."""
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Generate what the parsed arguments ask for; exit status 2 on bad input (named in the error)."""
    logging.basicConfig(level=logging.WARNING)
    task = CLI_TASKS[args.task]
    if args.shot and task != "asr":
        print(f"soda generate: error: --shot is for asr, not {args.task}", file=sys.stderr)
        return 2
    if args.shot:
        task = "asr_nshot"
    overrides = {
        k: v
        for k, v in dict(
            temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, max_new_tokens=args.max_new_tokens
        ).items()
        if v is not None
    }
    try:
        loaded = load_model(
            args.checkpoint, num_codebooks=args.num_codebooks, prefer="hf" if args.prefer_hf else "checkpoint"
        )
        params = sampling_params(
            task, loaded.vocab, seed=args.seed, audio_constraint=not args.no_audio_constraint, **overrides
        )
        codec = None
        if args.mimi:
            from soda_jax.audio.codec import MimiCodec

            codec = MimiCodec.from_config(codec_config_from_facts({"weights": args.mimi}, loaded.num_codebooks))
        inputs = dict(text=args.text, audio=args.audio, ref_text=args.ref_text, ref_audio=args.ref_audio)
        if args.shot:
            inputs["shots"] = [tuple(shot) for shot in args.shot]
        result = run_task(
            task,
            loaded,
            args.out,
            params=params,
            codec=codec,
            name=args.name or task,
            inputs=inputs,
            prompt_seconds=args.prompt_seconds,
        )
    except (ModelLoadError, AudioReadError, TaskInputError, ValueError) as error:
        print(f"soda generate: error: {error}", file=sys.stderr)
        return 2
    record = result.record
    if TASK_DEFAULTS[task].output == "audio":
        print(
            f"{args.task}: {record['frames']} frames ({record.get('seconds', 0):.2f} s), "
            f"{record['finish_reason']} -> {result.output_path or '(no whole frame)'}"
        )
    else:
        print(f"{args.task}: {record['text']!r}, {record['finish_reason']} -> {result.output_path}")
    print(f"request and ids: {args.out.rstrip('/')}/{args.name or task}.json")
    return 0

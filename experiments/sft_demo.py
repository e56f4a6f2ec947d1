"""Fine-tuning on CPU: the demo model (experiments/demo.py) fine-tuned for ASR on the demo corpus.

    python experiments/sft_demo.py --prefix ./demo-output [executor flags]

Runs the demo pipeline if it has not run, then ``tokenized/demo-emilia-asr-sft`` (one ASR pair per
Emilia-layout utterance, held out by recording exactly as the demo's caches are, so held-out
utterances were never trained on; the YODAS2 layout's few long recordings leave no held-out one)
and ``checkpoints/demo-6m-asr`` (`SFT_DEMO_RECIPE` from the demo model's checkpoint). Prints the
held-out ASR loss (response tokens only) of the base model and of the fine-tuned one.
"""

from __future__ import annotations

import sys

from soda_jax import fileio
from soda_jax.data.sft_sources import TokenizedTaskSource
from soda_jax.execution import executor_main
from soda_jax.execution.parallel import shutdown_workers
from soda_jax.recipes.defaults import (
    default_sft,
    default_sft_data,
    default_synth_demo_corpus,
    default_tokenize,
)
from soda_jax.recipes.demo import demo_model
from soda_jax.recipes.demo_data import DEMO_VALIDATION_FRACTION, text_tokenizer
from soda_jax.training import CheckpointPolicy
from soda_jax.training.sft_recipe import SFT_DEMO_RECIPE
from soda_jax.training.validation import VALIDATION_LOSS

demo_asr_data = default_sft_data(
    "demo-emilia-asr",
    TokenizedTaskSource(
        default_tokenize("demo-emilia", default_synth_demo_corpus() / "emilia", source="emilia"), task="asr"
    ),  # type: ignore[arg-type]
    tokenizer=text_tokenizer,
    max_tokens=SFT_DEMO_RECIPE.seq_len,
    validation_fraction=DEMO_VALIDATION_FRACTION,
)

demo_asr_model = default_sft(
    "demo-6m-asr",
    demo_model,
    demo_asr_data,
    SFT_DEMO_RECIPE,
    gradient_checkpointing=False,
    steps_per_eval=SFT_DEMO_RECIPE.num_train_steps,
    max_eval_batches=8,
    checkpoints=CheckpointPolicy(every_steps=None, every_minutes=None),
)


def main(argv: list[str]) -> None:
    report = executor_main([demo_asr_model], description="soda-jax demo: ASR fine-tune of the demo model", args=argv)
    if report is None:
        return
    shutdown_workers()
    out = report.output_paths[demo_asr_model.name]
    summary = fileio.read_json(fileio.join(out, "summary.json"))
    data_stats = fileio.read_json(fileio.join(report.output_paths[demo_asr_data.name], "stats.json"))
    before, after = summary["initial_validation"][VALIDATION_LOSS], summary["final_validation_loss"]
    print(
        f"\nASR pairs: {data_stats['train']['documents']} train, {data_stats['validation']['documents']} held out; "
        f"skipped {data_stats['skipped']}"
    )
    print(
        f"{demo_asr_model.name}: {summary['steps']} steps; held-out ASR loss (response tokens) "
        f"{before:.3f} (demo model) -> {after:.3f} (fine-tuned)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])

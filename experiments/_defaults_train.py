"""Training-step helper, for the lead to fold into experiments/defaults.py as ``default_train``.

    model = default_train("soda-600m", data=soda_final_mix, model=SODA_600M, train_config=soda_final_recipe(SODA_600M),
                          tpu="v5p-64")
"""

from __future__ import annotations

from levanter.data.text import LmDataConfig

from soda_jax.execution import ExecutorStep, Resources, this_output_path, versioned
from soda_jax.models import ModelShape
from soda_jax.training import CheckpointPolicy, ParallelismConfig, TrainConfig, TrainRecipe
from soda_jax.training.train import train

TRAIN_STEP_CPUS = 1
"""Host cores a CPU training step reserves (JAX uses the machine's cores regardless)."""


def default_train(
    name: str,
    data: LmDataConfig,
    model: ModelShape,
    train_config: TrainRecipe,
    *,
    tpu: str | None = None,
    parallelism: ParallelismConfig = ParallelismConfig(),
    checkpoints: CheckpointPolicy = CheckpointPolicy(),
    **options,
) -> ExecutorStep:
    """A ``checkpoints/{name}`` step training ``model`` on ``data`` with ``train_config``.

    Its output holds checkpoints/, hf/, metrics.jsonl and summary.json (docs/data-contracts.md §3).
    The model shape and the recipe define the version; the mesh, checkpoint policy and logging
    options do not (a run may move to another slice and resume). ``tpu`` (e.g. ``"v5p-64"``) places
    the step on that slice through Ray; without a TPU cluster it runs locally on CPU. ``options``
    are further `TrainConfig` fields (precision, steps_per_eval, wandb_project, ...).
    """
    return ExecutorStep(
        name=f"checkpoints/{name}",
        fn=train,
        config=TrainConfig(
            data=data,
            model=versioned(model),
            output_path=this_output_path(),
            recipe=versioned(train_config),
            parallelism=parallelism,
            checkpoints=checkpoints,
            **options,
        ),
        description=f"train {name}: {train_config.num_train_steps} steps x {train_config.batch_size} x {train_config.seq_len}",
        resources=Resources(cpus=TRAIN_STEP_CPUS, tpu=tpu),
    )

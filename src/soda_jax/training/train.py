"""The training step: ``train(TrainConfig)`` drives levanter's `Trainer` over token caches.

Layout under ``output_path`` (docs/data-contracts.md section 3): ``training_manifest.json`` (written
when the run starts: what it reads and how it is laid out, `soda_jax.training.manifest`),
``checkpoints/`` (levanter, tensorstore), ``hf/`` (transformers export), ``metrics.jsonl`` (one row
per step), ``summary.json`` (written last: its presence means the run finished; its ``heldout_nll``
holds the final held-out NLL per component and token kind, pooled over the speech components:
`soda_jax.training.validation`). Calling ``train`` again on the same ``output_path`` resumes from
the latest checkpoint with the same data order, so a killed or preempted run simply re-runs; a
finished run only re-validates and re-exports.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import jax
import jax.random as jrandom
import jmp
import levanter
import levanter.callbacks
from haliax import Axis
from haliax.partitioning import round_axis_for_partitioning
from levanter.callbacks import StepInfo
from levanter.checkpoint import CheckpointerConfig
from levanter.distributed import DistributedConfig
from levanter.tracker import NoopConfig
from levanter.trainer import TrainerConfig

from soda_jax import fileio
from soda_jax.contracts import (
    CHECKPOINTS_DIR,
    HF_DIR,
    INITIAL_VALIDATION_FILE,
    LOGS_DIR,
    SUMMARY_FILE,
    TENSORBOARD_DIR,
)
from soda_jax.data.mixture import MixtureSpec
from soda_jax.models.catalogue import vocab_size_of
from soda_jax.models.flops import TRAINING_FLOPS_MULTIPLIER
from soda_jax.models.shapes import qwen3_config
from soda_jax.training.branching import seed_from_source
from soda_jax.training.checkpoints import discard_uncommitted_checkpoints
from soda_jax.training.config import LayerLoop, Precision, TrainConfig
from soda_jax.training.dispatch import FastDispatchTrainer
from soda_jax.training.export import export_hf
from soda_jax.training.grad_norm import grad_norm_of, with_grad_norm
from soda_jax.training.init_from import initial_vocab_axis, load_initial_model, resolve_source
from soda_jax.training.levanter_compat import is_nonfinite_loss_error, learning_rate_of
from soda_jax.training.loss import default_token_block, default_vocab_block, next_token_loss_fn
from soda_jax.training.manifest import check_resume, inputs_manifest, layer_loop_name, write_manifest
from soda_jax.training.metrics import MetricsLog, throughput
from soda_jax.training.nonfinite import stop_on_nonfinite
from soda_jax.training.sharding_report import parameter_sharding
from soda_jax.training.validation import (
    HELDOUT_NLL,
    VALIDATION_LOSS,
    TokenKindLayout,
    ValidationLoss,
    heldout_nll,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRACKER_PREFIX = "train"
"""Namespace of our per-step metrics in W&B/TensorBoard."""
ACCELERATED_PRECISION = "p=f32,c=bfloat16"
"""jmp policy on TPU/GPU: f32 parameters and optimizer state, bf16 compute."""
CPU_PRECISION = "f32"
"""jmp policy on CPU: bf16 matmuls are slower than f32 there (benchmarks/bench_train.py)."""


def jax_distributed_initialized() -> bool:
    """Whether this process already joined a ``jax.distributed`` job (levanter must not join again)."""
    from jax._src import distributed  # no public query in jax 0.10

    return distributed.global_state.client is not None


def precision_policy(precision: Precision, backend: str | None = None) -> jmp.Policy:
    """The jmp policy for a `TrainConfig.precision` on ``backend`` (default: the current one)."""
    if precision == "auto":
        policy = CPU_PRECISION if (backend or jax.default_backend()) == "cpu" else ACCELERATED_PRECISION
    else:
        policy = {"f32": CPU_PRECISION, "bf16": ACCELERATED_PRECISION}[precision]
    return jmp.get_policy(policy)


def scan_layers(layer_loop: LayerLoop, backend: str | None = None) -> bool:
    """Whether a `TrainConfig.layer_loop` scans the layers on ``backend`` (default: the current one)."""
    if layer_loop == "auto":
        return (backend or jax.default_backend()) != "cpu"  # unrolled: faster CPU steps (docs/training.md)
    return layer_loop == "scan"


def metrics_dir(output_path: str) -> str:
    """Where this process writes metrics.jsonl: the run directory on the first host of a slice,
    ``logs/process-{i}/`` on the others (their rows repeat the first host's; kept for checking)."""
    index = jax.process_index()
    return output_path if index == 0 else fileio.join(output_path, LOGS_DIR, f"process-{index}")


def on_first_host(action: Callable[[], T], barrier: str, otherwise: T) -> T:
    """``action()`` on the first host of a multi-host slice, the others waiting for it at ``barrier``
    and returning ``otherwise`` (one host edits the run directory)."""
    result = action() if jax.process_index() == 0 else otherwise
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(barrier)
    return result


def discard_torn_checkpoints_once(checkpoint_root: str) -> list[str]:
    """`discard_uncommitted_checkpoints` on the first host."""
    return on_first_host(
        lambda: discard_uncommitted_checkpoints(checkpoint_root), "soda_jax.discard_uncommitted_checkpoints", []
    )


def branch_once(config: TrainConfig, layer_loop: str) -> int | None:
    """Seed a ``resume_from`` run with its source's final checkpoint (first host); the steps copied,
    or None (no source, or the run has a checkpoint of its own)."""
    if config.resume_from is None:
        return None
    source = config.resume_from
    return on_first_host(
        lambda: seed_from_source(source, config.output_path, config.recipe, config.model, layer_loop),
        "soda_jax.branch_once",
        None,
    )


def data_vocab_size(spec: MixtureSpec, tokenizer_size: int) -> int:
    """The vocabulary size shared by every component's cache (and its tokenizer): sizes the model."""
    sizes = {name: vocab_size_of(root) for name, root in spec.cache_roots().items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"data components disagree on the vocabulary size: {sizes}")
    size = next(iter(sizes.values()))
    if tokenizer_size != size:
        raise ValueError(
            f"tokenizer {spec.tokenizer_path} has {tokenizer_size} ids but the caches' vocabulary has {size}"
        )
    return size


def token_kind_layout(spec: MixtureSpec) -> TokenKindLayout:
    """Where text, marker and audio ids lie in the caches' shared vocabulary (`data_vocab_size` checks
    they share one): the first component's record."""
    return TokenKindLayout.from_cache(next(iter(spec.cache_roots().values())))


def trainer_config(config: TrainConfig, run_id: str, backend: str | None = None) -> TrainerConfig:
    """levanter's `TrainerConfig` for ``config`` on ``backend`` (default: the current one)."""
    out = config.output_path
    policy = config.checkpoints
    trackers: list = [NoopConfig()]
    if config.wandb_project:
        from levanter.tracker.wandb import WandbConfig

        trackers.append(WandbConfig(project=config.wandb_project, name=run_id, resume="allow"))
    if config.tensorboard:
        from levanter.tracker.tensorboard import TensorboardConfig

        trackers.append(TensorboardConfig(logdir=fileio.join(out, TENSORBOARD_DIR)))
    return TrainerConfig(
        seed=config.recipe.seed,
        mp=precision_policy(config.precision, backend),
        id=run_id,
        log_dir=Path(fileio.join(out, LOGS_DIR)) if fileio.is_local(out) else Path(LOGS_DIR),
        tracker=tuple(trackers),
        log_jaxprs=False,
        log_xla_hlo=False,
        crash_on_nan=True,
        crash_on_inf=True,
        mesh=config.parallelism.mesh_config(),
        train_batch_size=config.recipe.batch_size,
        num_train_steps=config.recipe.num_train_steps,
        steps_per_eval=config.steps_per_eval,
        max_eval_batches=config.max_eval_batches,
        checkpointer=CheckpointerConfig(
            base_path=fileio.join(out, CHECKPOINTS_DIR),
            append_run_id_to_base_path=False,
            save_interval=timedelta(minutes=policy.every_minutes) if policy.every_minutes else None,
            keep=[dict(every=policy.every_steps)] if policy.every_steps else None,
            keep_last_temporary_checkpoints=policy.keep_last_temporary,
        ),
        jax_compilation_cache_dir=config.compilation_cache_dir,
        # a multi-host step's processes joined jax.distributed before training (soda_jax.execution.tpu)
        distributed=DistributedConfig(initialize_jax_distributed=not jax_distributed_initialized()),
        require_accelerator=False,
    )


def step_parts(config: TrainConfig, backend: str | None = None):
    """``(Qwen3Config, optimizer, loss_fn)`` of the training step on ``backend`` (default: the
    current one): shared by `train` and the ahead-of-time compile check (`soda_jax.aot`)."""
    recipe = config.recipe
    model_config = qwen3_config(
        config.model,
        recipe.seq_len,
        gradient_checkpointing=config.gradient_checkpointing,
        scan_layers=scan_layers(config.layer_loop, backend),
    )
    optimizer_config = recipe.optimizer.levanter_config(recipe.batch_size, config.model.hidden_dim)
    optimizer = with_grad_norm(optimizer_config.build(recipe.num_train_steps))
    loss_fn = next_token_loss_fn(
        config.cross_entropy,
        recipe.z_loss_weight,
        vocab_block=default_vocab_block(backend),
        token_block=default_token_block(backend),
    )
    return model_config, optimizer, loss_fn


def train(config: TrainConfig) -> dict:
    """Train (or resume) the run under ``config.output_path``; returns the summary it writes."""
    started = time.time()
    run_id = fileio.join(config.output_path).rstrip("/").rsplit("/", 1)[-1] or "run"
    recipe = config.recipe
    data = config.data.lm_config()
    vocab_size = data_vocab_size(config.data, len(data.the_tokenizer))
    model_config, optimizer, loss_fn = step_parts(config)
    training_flops_per_token = TRAINING_FLOPS_MULTIPLIER * config.model.forward_flops_per_token(
        vocab_size, recipe.seq_len
    )

    tconfig = trainer_config(config, run_id)
    levanter.initialize(tconfig)
    # levanter's default hooks are replaced: the loop below checkpoints each step only after its
    # metrics row is written (a checkpoint never runs ahead of metrics.jsonl), and can wait on and
    # prune the checkpointer when the loss stops being finite.
    trainer = FastDispatchTrainer(tconfig, optimizer, loss_fn, add_default_hooks=False)
    discarded_checkpoints = discard_torn_checkpoints_once(fileio.join(config.output_path, CHECKPOINTS_DIR))
    layer_loop = layer_loop_name(model_config.scan_layers)  # the checkpoints' layout
    check_resume(config.output_path, layer_loop)
    branched_at = branch_once(config, layer_loop)
    checkpointer = tconfig.checkpointer.create(run_id)
    # a checkpointer with no step or time policy saves only the final state: not consulted (nor the
    # saveable state built for it, ~10 ms of Python) every step
    checkpoint_each_step = bool(checkpointer.step_policies) or checkpointer.save_interval is not None
    last_step = config.stop_at_step or recipe.num_train_steps
    if not 0 < last_step <= recipe.num_train_steps:
        raise ValueError(f"{config.output_path}: stop_at_step must be in 1..{recipe.num_train_steps}, got {last_step}")
    # a stable segment (stop_at_step) stops mid-schedule: no run compares its loss there, so it is
    # validated only every steps_per_eval, not at its end
    ends_schedule = last_step == recipe.num_train_steps
    trainer.add_hook(levanter.callbacks.pbar_logger(total=last_step), every=1)

    with trainer:
        data_key, model_key, training_key = jrandom.split(jrandom.PRNGKey(recipe.seed), 3)
        Pos = model_config.max_Pos.resize(recipe.seq_len)
        Vocab = round_axis_for_partitioning(Axis("vocab", vocab_size), trainer.parameter_axis_mapping)
        init_source = resolve_source(config.init_from) if config.init_from else None  # fine-tuning
        if init_source is not None:
            Vocab = initial_vocab_axis(init_source, vocab_size, Vocab)
        if jax.process_index() == 0:  # what the run reads and how it is laid out, before its first step
            manifest = inputs_manifest(
                config.data.cache_roots(),
                config.data.tokenizer_path,
                model=config.model,
                seq_len=recipe.seq_len,
                padded_vocab_size=Vocab.size,
                layer_loop=layer_loop,
            )
            write_manifest(config.output_path, manifest)
        train_dataset = data.train_set(Pos, tconfig.batch_schedule, key=data_key)
        validation = ValidationLoss(
            trainer,
            data.validation_sets(Pos),
            max_batches=config.max_eval_batches,
            layout=token_kind_layout(config.data),
            cross_entropy=config.cross_entropy,
            vocab_block=default_vocab_block(),
        )
        state = trainer.initial_state(training_key, model_init=lambda: model_config.build(Vocab, key=model_key))
        resume_step = int(state.step)
        if resume_step:
            logger.info("resuming %s from step %d", config.output_path, resume_step)
        # -- init_from (fine-tuning): a fresh run takes the source's weights; its validation loss is the "before"
        if init_source is not None and resume_step == 0:
            tokenizer = data.tokenizer if isinstance(data.tokenizer, str) else None
            state = dataclasses.replace(
                state, model=load_initial_model(init_source, model_config, Vocab, trainer, tokenizer=tokenizer)
            )
            fileio.atomic_write_json(
                fileio.join(config.output_path, INITIAL_VALIDATION_FILE), validation(state.eval_model)
            )
        # -- end init_from
        metrics = MetricsLog(metrics_dir(config.output_path), resume_step=resume_step)
        peak = _peak_flops(config)
        loader = trainer.data_loader(train_dataset).iter_from_step(resume_step)

        last: StepInfo | None = None
        next_step = resume_step  # a plain int: the state's own step array is donated to the next step
        try:
            # a stable segment (stop_at_step) stops before its schedule ends
            for info in itertools.islice(trainer.training_steps(state, loader), max(0, last_step - resume_step)):
                row = _step_row(info, recipe, training_flops_per_token, peak)
                if info.next_step % config.steps_per_eval == 0 or (ends_schedule and info.next_step == last_step):
                    row.update(validation(info.eval_model))
                metrics.write(row)
                levanter.tracker.log(
                    {f"{TRACKER_PREFIX}/{k}": v for k, v in row.items() if k != "step"}, step=info.step
                )
                if checkpoint_each_step:
                    checkpointer.on_step(tree=info.state.saveable_state, step=info.step)
                last, next_step = info, info.next_step
        except RuntimeError as error:
            if not is_nonfinite_loss_error(error):
                raise
            checkpointer.wait_until_finished()
            metrics.flush()
            raise stop_on_nonfinite(
                error, failed_step=next_step, checkpoint_root=fileio.join(config.output_path, CHECKPOINTS_DIR)
            ) from None

        if last is not None:
            checkpointer.on_step(tree=last.state.saveable_state, step=last.step, force=True)  # the final one
        final_state = last.state if last is not None else state
        if ends_schedule and (last is None or VALIDATION_LOSS not in metrics.rows[-1]):
            final_validation = validation(final_state.eval_model)
            metrics.update_last(final_validation)
        checkpointer.wait_until_finished()
        metrics.flush()

        sharding = parameter_sharding(final_state.model)
        if config.export_hf:
            export_hf(
                final_state.model, model_config, fileio.join(config.output_path, HF_DIR), tokenizer_dir=data.tokenizer
            )

    summary = _summary(config, vocab_size, Vocab.size, metrics.rows, training_flops_per_token, time.time() - started)
    summary["parameter_sharding"] = sharding
    summary["layer_loop"] = layer_loop
    summary["cross_entropy"] = config.cross_entropy
    summary["discarded_checkpoints"] = discarded_checkpoints
    summary["init_from"] = config.init_from
    summary["resume_from"] = config.resume_from
    summary["branched_at_step"] = branched_at
    summary["stop_at_step"] = config.stop_at_step
    summary["recipe"] = dataclasses.asdict(recipe)  # what a run branching from this one checks against
    summary["initial_validation"] = fileio.read_json_or_none(fileio.join(config.output_path, INITIAL_VALIDATION_FILE))
    if jax.process_index() == 0:  # one writer on a multi-host slice
        fileio.atomic_write_json(fileio.join(config.output_path, SUMMARY_FILE), summary)
    trainer.tracker.finish()
    return summary


def _peak_flops(config: TrainConfig) -> float | None:
    """Peak FLOP/s of all devices (for MFU), from the config or levanter's device table."""
    per_device = config.peak_flops_per_device
    if per_device is None:
        from fray.device_flops import device_flops_for_jax_device

        per_device = device_flops_for_jax_device(jax.devices()[0].device_kind)
    return per_device * jax.device_count() if per_device else None


def _step_row(info: StepInfo, recipe, training_flops_per_token: int, peak: float | None) -> dict:
    row = {
        "step": info.step,
        "loss": float(info.loss),
        "lr": learning_rate_of(info.state.opt_state),
        "grad_norm": grad_norm_of(info.state.opt_state),
        "tokens": info.next_step * recipe.batch_size * recipe.seq_len,
        "step_seconds": info.step_duration,
    }
    row.update(
        throughput(
            batch_size=recipe.batch_size,
            seq_len=recipe.seq_len,
            step_seconds=info.step_duration,
            training_flops_per_token=training_flops_per_token,
            peak_flops=peak,
        )
    )
    return row


def _summary(
    config: TrainConfig,
    vocab_size: int,
    padded_vocab: int,
    rows: list[dict],
    training_flops_per_token: int,
    wall: float,
) -> dict:
    recipe = config.recipe
    counts = config.model.param_counts(padded_vocab)
    last = rows[-1] if rows else {}
    steady = [r["tokens_per_second"] for r in rows[1:] if "tokens_per_second" in r]  # step 0 includes compilation
    mfus = [r["mfu"] for r in rows[1:] if "mfu" in r]
    steps = (last.get("step", -1) + 1) if last else 0
    tokens = steps * recipe.batch_size * recipe.seq_len
    forward_flops = training_flops_per_token // TRAINING_FLOPS_MULTIPLIER
    return {
        "params": counts.total,
        "params_non_embedding": counts.non_embedding,
        "flops_per_token": forward_flops,
        "training_flops_per_token": training_flops_per_token,
        "tokens": tokens,
        "train_flops": float(training_flops_per_token) * tokens,
        "final_train_loss": last.get("loss"),
        "final_validation_loss": last.get(VALIDATION_LOSS),
        "validation": {k: v for k, v in last.items() if k.startswith("validation/")},
        HELDOUT_NLL: heldout_nll(last),
        "steps": steps,
        "vocab_size": vocab_size,
        "padded_vocab_size": padded_vocab,
        "seq_len": recipe.seq_len,
        "batch_size": recipe.batch_size,
        "model": dataclasses.asdict(config.model),
        "devices": jax.device_count(),
        "median_tokens_per_second": statistics.median(steady) if steady else None,
        "median_mfu": statistics.median(mfus) if mfus else None,
        "wall_seconds": wall,
        "hf_export": fileio.join(config.output_path, HF_DIR) if config.export_hf else None,
    }

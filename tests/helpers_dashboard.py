"""A real executor prefix for the dashboard tests: a tiny training run, an eval-like step reading
its summary and writing results, per-item records and WAV files, a scaling analysis (real fits over
a synthetic sweep), a failed step and one that could not run because of it. Built once per session
(`shared_prefix`) and reused by every module."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

import numpy as np
from executor_steps import RecordConfig, record
from helpers_scaling import TRUE_LAW, write_run
from helpers_training import tiny_config, write_test_cache

from soda_jax import fileio
from soda_jax.execution import Executor, ExecutorError, ExecutorStep, this_output_path, versioned
from soda_jax.scaling import sweep
from soda_jax.scaling.analysis import ScalingAnalysisConfig, analyze_scaling

TRAIN_STEPS = 8
SCALING_BUDGETS = (1e18, 3e18, 6e18)
"""Three isoFLOP budgets of SODA's grid, losses from the scaling tests' true law."""
EVAL_ITEMS = 3
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class EvalLikeConfig:
    output_path: str
    """Where results.json, items/ and audio/ go."""
    run_path: str
    """The training run evaluated (its summary.json is read)."""
    num_items: int = 3
    """Per-item records (each with a WAV) to write."""


def eval_like(config: EvalLikeConfig) -> None:
    """What an eval step leaves behind (docs/data-contracts.md 3b), with real files: results.json,
    items/{task}.jsonl naming WAVs under audio/, and a parquet of the same items."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import soundfile

    summary = fileio.read_json(fileio.join(config.run_path, "summary.json"))
    items = []
    for i in range(config.num_items):
        t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
        wave = 0.2 * np.sin(2 * np.pi * (220 + 110 * i) * t).astype(np.float32)
        relative = f"audio/item-{i}.wav"
        os.makedirs(os.path.join(config.output_path, "audio"), exist_ok=True)
        soundfile.write(os.path.join(config.output_path, relative), wave, SAMPLE_RATE)
        items.append({"id": f"item-{i}", "prompt": f"say number {i}", "audio": relative, "correct": i % 2 == 0})
    lines = "".join(json.dumps(item) + "\n" for item in items)
    fileio.atomic_write_text(fileio.join(config.output_path, "items", "speech.jsonl"), lines)
    pq.write_table(pa.Table.from_pylist(items), os.path.join(config.output_path, "items.parquet"))
    accuracy = sum(item["correct"] for item in items) / len(items)
    fileio.atomic_write_json(
        fileio.join(config.output_path, "results.json"),
        {"metrics": {"speech/accuracy": accuracy, "heldout/nll": summary["final_validation_loss"]}},
    )


@dataclass(frozen=True)
class WaitConfig:
    output_path: str
    release_path: str
    """The step finishes once this file exists (the test decides when)."""
    timeout_s: float = 120.0


def wait_for_release(config: WaitConfig) -> None:
    deadline = time.time() + config.timeout_s
    while not os.path.exists(config.release_path):
        if time.time() > deadline:
            raise TimeoutError(f"{config.release_path} never appeared")
        time.sleep(0.1)
    fileio.atomic_write_json(fileio.join(config.output_path, "out.json"), {"released": True})


@dataclass
class Built:
    prefix: str
    paths: dict[str, str]
    """Step name -> output path."""

    def rel(self, name: str) -> str:
        return os.path.relpath(self.paths[name], self.prefix)


def build_prefix(root: str) -> Built:
    """Run the experiment under ``{root}/prefix`` (in-process executor, no Ray)."""
    cache = os.path.join(root, "cache")
    write_test_cache(cache, os.path.join(root, "tokenizer"))
    prefix = os.path.join(root, "prefix")
    log = os.path.join(root, "log")
    train_config = tiny_config(
        cache, this_output_path(), steps=TRAIN_STEPS, compilation_cache_dir=os.path.join(root, "jax")
    )
    from soda_jax.training.train import train

    training = ExecutorStep("checkpoints/tiny", train, train_config)
    evaluation = ExecutorStep(
        "eval/tiny", eval_like, EvalLikeConfig(this_output_path(), training, num_items=versioned(EVAL_ITEMS))
    )
    good = ExecutorStep("demo/good", record, RecordConfig(this_output_path(), log, value=versioned(1)))
    bad = ExecutorStep("demo/bad", record, RecordConfig(this_output_path(), log, value=versioned(2), fail=True))
    after = ExecutorStep("demo/after", record, RecordConfig(this_output_path(), log, inputs=(good, bad)))
    sweep_runs = [r for r in sweep.isoflop_grid() if r.budget in SCALING_BUDGETS]
    run_paths = tuple(
        write_run(
            os.path.join(root, "sweep"),
            r.name,
            params=r.params,
            tokens=r.tokens,
            train_flops=r.training_flops,
            loss=float(TRUE_LAW(r.params, r.tokens)),
        )[0]
        for r in sweep_runs
    )
    scaling = ExecutorStep(
        "analysis/isoflop",
        analyze_scaling,
        ScalingAnalysisConfig(run_paths, this_output_path(), num_bootstrap=50, num_parametric_bootstrap=5),
    )
    executor = Executor(prefix, use_ray=False)
    try:
        executor.run([evaluation, after, scaling], description="dashboard test experiment")
    except ExecutorError:
        pass  # demo/bad fails by design
    paths = {s.name: executor.output_path(s) for s in (training, evaluation, good, bad, after, scaling)}
    return Built(prefix, paths)


SECRET = "OTHER-PREFIX-SECRET"


def run_small_experiment(prefix: str, log: str, description: str) -> dict[str, str]:
    good = ExecutorStep("demo/good", record, RecordConfig(this_output_path(), log, value=versioned(1)))
    bad = ExecutorStep("demo/bad", record, RecordConfig(this_output_path(), log, value=versioned(2), fail=True))
    after = ExecutorStep("demo/after", record, RecordConfig(this_output_path(), log, inputs=(good, bad)))
    executor = Executor(prefix, use_ray=False)
    try:
        executor.run([after], description=description)
    except ExecutorError:
        pass  # demo/bad fails by design
    else:
        raise AssertionError("demo/bad was expected to fail")
    return {s.name: os.path.relpath(executor.output_path(s), prefix) for s in (good, bad, after)}


def raw_get(base: str, target: str) -> tuple[int, bytes]:
    """GET with the request target sent byte for byte (no client-side normalisation of '..')."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


_built: dict[str, Built] = {}


def shared_prefix(tmp_path_factory) -> Built:
    """The experiment, run once per test session (the training step compiles for ~20 s)."""
    base = str(tmp_path_factory.getbasetemp())
    if base not in _built:
        _built[base] = build_prefix(str(tmp_path_factory.mktemp("dashboard-experiment")))
    return _built[base]

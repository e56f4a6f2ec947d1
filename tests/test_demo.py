"""`make demo`'s job end to end: synthesised speech -> Mimi tokens -> interleaved caches -> trained model."""

import json
import os
import subprocess
import sys

from soda_jax import fileio
from soda_jax.execution.provenance import PROVENANCE_FILE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo(prefix, *flags) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the demo runs on the real device count
    done = subprocess.run(
        [sys.executable, "experiments/demo.py", "--prefix", str(prefix), *flags],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_demo_runs_the_whole_pipeline_then_skips_it(tmp_path):
    out = demo(tmp_path)
    assert "checkpoints/demo-6m: 120 steps" in out

    [run] = [os.path.join(tmp_path, "checkpoints", d) for d in os.listdir(tmp_path / "checkpoints")]
    summary = fileio.read_json(os.path.join(run, "summary.json"))
    metrics = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    first_loss = next(m["loss"] for m in metrics if "loss" in m)
    assert summary["final_train_loss"] < first_loss - 3, (first_loss, summary["final_train_loss"])
    assert os.path.exists(os.path.join(run, "hf", "config.json"))

    # every step of the DAG recorded its provenance and succeeded
    step_dirs = [os.path.join(tmp_path, group, d) for group in ("raw", "tokenizers", "tokenized", "checkpoints")
                 for d in os.listdir(tmp_path / group)]
    assert len(step_dirs) == 7
    for step_dir in step_dirs:
        provenance = fileio.read_json(os.path.join(step_dir, PROVENANCE_FILE))
        assert provenance["status"] == "SUCCESS", step_dir

    # a re-run finds everything done
    plan = demo(tmp_path, "--dry_run")
    decisions = [line.split()[0] for line in plan.splitlines() if line and not line.startswith(" ")]
    assert decisions and set(decisions) == {"skip"}, plan

"""`make demo-learn` learns: trained on spoken commands, the model transcribes combinations of words it
never heard and tells its own transcript from another (experiments/demo_learn.py, docs/demo.md).

Thresholds sit past chance and below what the demo reached (docs/demo.md has the figures and says
how many seeds were measured). Meant to fail on a corpus whose captions are paired with another
command's speech (``SODA_LEARNING_DEMO_FLAGS="--text_shift 367"``: 367 places later in the sorted
command list changes every word slot; a shift of 1 would mostly change the number only), on a prompt
layout that is not the training layout, and on a wrong codebook order (docs/demo.md: what was shown).
"""

import os
import subprocess
import sys

import pytest

from soda_jax import fileio

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LEARN_TIMEOUT_S = 5400
"""The learning demo takes ~42 min on 2 busy cores (docs/demo.md); a loaded machine gets room."""
MAX_HELD_OUT_WER = 0.25
"""Held-out ASR WER must be at most this (issue 34's target). Chance is 0.55: a model that writes the
template with the most frequent word in each slot gets 3.28 of 6 words wrong; the demo measured 0.15,
0.15 and 0.17 (seeds 0, 1, 2; 95 % intervals up to 0.20) with its distilled Mimi (docs/demo.md)."""
MIN_ALIGNMENT = 0.85
"""Text-speech alignment accuracy must be at least this (chance 0.5; the demo measured 0.95, 0.94 and 0.93
with seeds 0, 1 and 2 on 119 items; the lowest 95 % interval starts at 0.87)."""
EXTRA_FLAGS_ENV = "SODA_LEARNING_DEMO_FLAGS"
"""Extra flags for experiments/demo_learn.py (``--seed 1``; ``--text_shift 367`` to see the test fail)."""


def learn(prefix, *flags) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the demo runs on the real device count
    done = subprocess.run(
        [sys.executable, "experiments/demo_learn.py", "--prefix", str(prefix), *flags],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=LEARN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(2 * LEARN_TIMEOUT_S)
def test_learning_demo_transcribes_held_out_commands_and_aligns_text_with_speech(tmp_path):
    out = learn(tmp_path, *os.environ.get(EXTRA_FLAGS_ENV, "").split())
    [evaluation] = [os.path.join(tmp_path, "evaluation", d) for d in os.listdir(tmp_path / "evaluation")]
    results = fileio.read_json(os.path.join(evaluation, "results.json"))
    metrics, tasks = results["metrics"], results["tasks"]
    assert tasks["asr"]["items"] >= 100 and tasks["tts_alignment"]["items"] >= 100, tasks
    assert metrics["asr/wer"] <= MAX_HELD_OUT_WER, (metrics, out[-2000:])
    assert metrics["tts_alignment/accuracy"] >= MIN_ALIGNMENT, (metrics, out[-2000:])
    # the demo printed the table and the curve, and wrote the plot
    assert "tts_alignment" in out and "analysis/demo-learn" in out, out[-2000:]
    [curve] = [os.path.join(tmp_path, "analysis", d) for d in os.listdir(tmp_path / "analysis")]
    assert os.path.exists(os.path.join(curve, "curve.png"))
    points = fileio.read_json(os.path.join(curve, "curve.json"))["points"]
    assert points[-1]["asr/wer"] < points[0]["asr/wer"], points  # it learned along the way

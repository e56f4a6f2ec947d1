"""Light modules load no heavy framework when imported (docs/performance.md, "Import costs").

Each check runs in a fresh interpreter (this one has long since imported everything): it runs a
snippet (imports a module, maybe uses it) and reports which heavy top-level packages are then in
``sys.modules``. The checks are structural, not timed: a framework that is imported is the cost.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

JAX_STACK = ("jax", "flax", "levanter", "haliax", "equinox", "optax")
"""JAX and the frameworks built on it (each import of levanter pulls JAX and the rest)."""
TORCH_STACK = ("torch", "transformers")
"""torch and Hugging Face transformers (the torch codec's Mimi)."""
FRAMEWORKS = JAX_STACK + TORCH_STACK
"""The heavy top-level packages."""
JAX_MIMI = "soda_jax.audio.mimi_jax"
"""The jax backend's Mimi (flax): what a torch codec has no use for."""
TORCH_CODEC_ABSENT = (JAX_MIMI, "flax", "levanter", "haliax", "equinox", "optax")
"""What a torch codec must not load. Not jax itself: transformers imports ``jax.numpy`` with its
Mimi whenever flax is installed (``transformers.image_transforms``)."""
WATCHED = (*FRAMEWORKS, JAX_MIMI)
"""Every module the probe reports on."""
PROBE_TIMEOUT_S = 300
"""A probe that imports torch and transformers takes seconds; minutes mean something hangs."""


def loaded_after(code: str) -> set[str]:
    """The `WATCHED` modules in ``sys.modules`` of a fresh interpreter once it has run ``code``."""
    report = f"import json, sys\nprint(json.dumps([name for name in {WATCHED!r} if name in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
    )
    assert done.returncode == 0, f"probe failed:\n{code}\n{done.stderr[-4000:]}"
    return set(json.loads(done.stdout.splitlines()[-1]))


GRID = """
from soda_jax.scaling import sweep
runs = sweep.isoflop_grid()
assert len(runs) == 59, len(runs)
assert sweep.sweep_recipe(runs[0]).num_train_steps == runs[0].steps
assert sweep.format_grid(runs).count("\\n") == len(runs)
"""

TORCH_CODEC = """
import numpy as np
from soda_jax.audio.codec import MimiCodec
codec = MimiCodec.random(seed=0, backend="torch")
(codes,) = codec.encode([np.zeros(2 * codec.samples_per_frame, dtype=np.float32)])
assert codes.shape == (codec.num_codebooks, 2), codes.shape
(wave,) = codec.decode([codes])
assert wave.shape == (2 * codec.samples_per_frame,), wave.shape
"""

LIGHT = {
    "sweep-import": ("import soda_jax.scaling.sweep", FRAMEWORKS),
    "sweep-isoflop-grid": (GRID, FRAMEWORKS),
    "shapes": (
        "from soda_jax.models.shapes import ModelShape\n"
        "shape = ModelShape(hidden_dim=512, intermediate_dim=2048, num_layers=6, num_heads=4, num_kv_heads=4,"
        " head_dim=128)\nshape.param_counts(2048)",
        FRAMEWORKS,
    ),
    "codec-import": ("from soda_jax.audio.codec import CodecConfig\nCodecConfig(seed=1).weights", WATCHED),
    "codec-torch-backend": (TORCH_CODEC, TORCH_CODEC_ABSENT),
    "caches": ("from soda_jax.data import caches\ncaches.split_of('recording-1', 0.1, 'salt')", FRAMEWORKS),
    "cli": ("import soda_jax.cli", FRAMEWORKS),
    "training-recipe": ("from soda_jax.training import TrainRecipe\nTrainRecipe().tokens", FRAMEWORKS),
}
"""Snippet -> the frameworks it must not load."""


@pytest.mark.parametrize("case", sorted(LIGHT))
def test_light_module_loads_no_heavy_framework(case):
    code, absent = LIGHT[case]
    assert not loaded_after(code) & set(absent)


def test_torch_codec_loads_torch_when_it_runs():
    """The probe sees what a snippet imports: the torch backend's Mimi is transformers' (on torch)."""
    assert set(TORCH_STACK) <= loaded_after(TORCH_CODEC)


def test_training_names_imported_on_first_use_still_resolve():
    """`soda_jax.training` re-exports `TrainConfig` and co. (loading levanter only when asked for)."""
    code = (
        "import soda_jax.training as training\n"
        "from soda_jax.training import CheckpointPolicy, NonFiniteLossError, ParallelismConfig, TrainConfig\n"
        "assert TrainConfig.__module__ == 'soda_jax.training.config' and training.TrainConfig is TrainConfig\n"
        "assert {'TrainConfig', 'ParallelismConfig'} <= set(dir(training))"
    )
    assert {"jax", "levanter"} <= loaded_after(code)

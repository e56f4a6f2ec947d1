"""Test-session environment: 8 fake CPU devices, offline hubs, no trackers.

These variables must be set before anything imports jax or transformers, which is why they live
at the top of conftest (pytest imports it before any test module).
"""

import os

import pytest
from system_deps import MISSING

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``CI=true`` a test skipped for a missing system dependency (`system_deps.needs`) fails."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    if reason.startswith(MISSING):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: {reason}; CI must install it (Makefile: system-deps / setup)"


HEAVY_FILES = (
    "test_eval_model.py",
    "test_inference_engine.py",
    "test_branching.py",
    "test_training.py",
    "test_compile.py",
    "test_tts_alignment.py",
    "test_mimi_jax.py",
    "test_sft_training.py",
    "test_dashboard.py",
    "test_generate_cli.py",
    "test_capability_plots.py",
    "test_play.py",
)
"""The files that took longest in one process (45-75 s each, measured 2026-12-07), heaviest first."""


def pytest_collection_modifyitems(config, items):
    """Run `HEAVY_FILES` first, in that order, and the rest as collected. `make test`'s workers
    (pytest-xdist, ``--dist loadfile``) take files in collection order: a heavy file left to the end keeps
    one worker busy while the other idles. Only the order of files changes; tests within a file keep theirs."""
    rank = {name: i for i, name in enumerate(HEAVY_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY_FILES)))

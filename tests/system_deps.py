"""Tests that need a system package (Debian's espeak-ng, flite, chromium) or a wheel `make setup`
installs on its own (pytest-audioeval).

On a developer's machine without one, such a test is skipped with a reason starting `MISSING`.
Under ``CI=true`` that skip is a failure (tests/conftest.py): CI installs everything, so a green run
never tests less than it says.
"""

from __future__ import annotations

import importlib
import shutil
from types import ModuleType

import pytest

MISSING = "missing system dependency"
"""The start of every skip reason this module gives: what conftest turns into a failure under CI."""


def missing_tools(*tools: str) -> list[str]:
    """The executables of ``tools`` not on PATH."""
    return [tool for tool in tools if shutil.which(tool) is None]


def needs(*tools: str) -> pytest.MarkDecorator:
    """Skip (a failure under CI) unless every executable in ``tools`` is on PATH."""
    missing = missing_tools(*tools)
    return pytest.mark.skipif(bool(missing), reason=f"{MISSING}: {', '.join(missing)} (`make system-deps` installs it)")


def import_or_skip(module: str) -> ModuleType:
    """``module`` imported, or skip the test (a failure under CI)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.skip(f"{MISSING}: python module {module} ({e}; `make setup` installs it)")

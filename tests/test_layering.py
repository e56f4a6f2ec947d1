"""Packages depend one way (docs/architecture.md): read every import, and import each package alone.

Lowest first; a package may import only from layers below its own (never a peer, never above).
A new package must be given a layer here.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "soda_jax"
EXPERIMENTS = ROOT / "experiments"

LAYERS: list[set[str]] = [
    {"contracts", "fileio"},
    {"execution", "audio"},
    {"data"},
    {"models"},
    {"training"},
    {"inference"},  # generation runs on the training mesh
    {"aot"},  # compiles the training step and the inference decode step
    {"eval"},
    {"scaling"},
    {"dashboard"},
    {"cli"},
    {"recipes"},  # step builders, mixes, sweeps and studies: what experiment files compose
]
LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}
OUTSIDE_SYSTEMS = {"ray": {"execution"}}
"""Third-party systems only one package may import (docs/architecture.md: one module per outside system)."""


def package_of(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0].removesuffix(".py")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file, also those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "soda_jax":
                found += [(node.lineno, f"soda_jax.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def source_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.parent != SRC or p.name != "__init__.py")


def test_every_package_has_a_layer():
    packages = {package_of(p) for p in source_files()}
    assert packages - set(LAYER_OF) == set(), "give each new package a layer in tests/test_layering.py"


def test_no_package_imports_a_peer_or_one_above_it():
    violations = []
    for path in source_files():
        package = package_of(path)
        for line, module in imported_modules(path):
            top, _, rest = module.partition(".")
            if top in OUTSIDE_SYSTEMS and package not in OUTSIDE_SYSTEMS[top]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}: only {OUTSIDE_SYSTEMS[top]} may")
            if top == "experiments":
                violations.append(
                    f"{path.relative_to(ROOT)}:{line} imports {module}: experiments sit above the package"
                )
            if top != "soda_jax" or not rest:
                continue
            target = rest.split(".")[0]
            if target != package and LAYER_OF.get(target, -1) >= LAYER_OF[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} ({package}) imports {module} ({target})")
    assert not violations, "\n".join(violations)


def test_experiment_files_import_the_package_and_not_each_other():
    """Experiment files sit on top of the package: they import `soda_jax` (recipes), never an outside
    system directly and never one another; there is no `experiments` package (tests import only `soda_jax`)."""
    bad = []
    for path in sorted(EXPERIMENTS.glob("*.py")):
        for line, module in imported_modules(path):
            if module.split(".")[0] in OUTSIDE_SYSTEMS or module.split(".")[0] == "experiments":
                bad.append(f"experiments/{path.name}:{line} imports {module}")
    for path in sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py")):
        bad += [
            f"{path.relative_to(ROOT)}:{line} imports {module}"
            for line, module in imported_modules(path)
            if module.split(".")[0] == "experiments"
        ]
    assert not (EXPERIMENTS / "__init__.py").exists(), "experiments/ is a folder of files, not a package"
    assert not bad, "\n".join(bad)


def import_alone(package: str) -> subprocess.Popen:
    """A fresh interpreter importing every module of ``package``; prints the soda_jax packages it loaded."""
    directory = SRC / package
    modules = [f"soda_jax.{package}"]
    if directory.is_dir():
        modules += [f"soda_jax.{package}.{p.stem}" for p in sorted(directory.glob("*.py")) if p.stem != "__init__"]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({m.split('.')[1] for m in sys.modules if m.startswith('soda_jax.')})))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.slow  # 64 s (a fresh interpreter per package); the static import check stays in the default suite
def test_each_package_imports_alone_and_pulls_in_nothing_above_it():
    """Each package in a fresh interpreter (all at once): it imports, and loads no package above it."""
    packages = [p for p in sorted(LAYER_OF) if (SRC / p).is_dir() or (SRC / f"{p}.py").exists()]
    processes = {package: import_alone(package) for package in packages}
    problems = []
    for package, process in processes.items():
        out, err = process.communicate(timeout=900)
        if process.returncode != 0:
            problems.append(f"soda_jax.{package} does not import alone:\n{err[-1500:]}")
            continue
        loaded = json.loads(out.strip().splitlines()[-1])
        above = [p for p in loaded if p != package and LAYER_OF.get(p, len(LAYERS)) >= LAYER_OF[package]]
        if above:
            problems.append(f"importing soda_jax.{package} loads {above}")
    assert not problems, "\n".join(problems)

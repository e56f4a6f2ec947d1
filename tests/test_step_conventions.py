"""Every step the recipes build has one shape (docs/architecture.md "Steps"): its function takes one
argument, its frozen ``*Config``, defined in the function's package (mostly its module). Read from every
``ExecutorStep(fn=..., config=...)`` in src/."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "soda_jax"


def step_calls() -> list[tuple[str, int, object, object]]:
    """``(module, line, fn, config class)`` of each ``ExecutorStep(fn=NAME, config=CLASS(...))``, the
    names resolved through the module's imports (also those inside functions)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module_name = ".".join(("soda_jax", *path.relative_to(SRC).with_suffix("").parts))
        tree = ast.parse(path.read_text(), str(path))
        origin = {
            alias.asname or alias.name: node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }

        def resolve(name: str, module_name: str = module_name, origin: dict = origin) -> object:
            return getattr(importlib.import_module(origin.get(name, module_name)), name)

        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ExecutorStep"):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            fn, config = keywords.get("fn"), keywords.get("config")
            if isinstance(fn, ast.Name) and isinstance(config, ast.Call) and isinstance(config.func, ast.Name):
                found.append((module_name, node.lineno, resolve(fn.id), resolve(config.func.id)))
    return found


def test_the_recipes_build_steps():
    modules = {module for module, *_ in step_calls()}
    assert "soda_jax.recipes.defaults" in modules and len(step_calls()) >= 15


def test_each_step_function_takes_its_own_frozen_config():
    bad = []
    for module_name, line, fn, config in step_calls():
        name, config_name = getattr(fn, "__name__", repr(fn)), getattr(config, "__name__", repr(config))
        where = f"{module_name}:{line} ({name})"
        parameters = list(inspect.signature(fn).parameters.values())  # type: ignore[arg-type]
        if len(parameters) != 1 or parameters[0].annotation not in (config_name, config):
            bad.append(f"{where}: takes {[str(p) for p in parameters]}, not one {config_name}")
        if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):  # type: ignore[attr-defined]
            bad.append(f"{where}: {config_name} is not a frozen dataclass")
        if (
            not config_name.endswith("Config")
            or config.__module__.rpartition(".")[0] != fn.__module__.rpartition(".")[0]
        ):
            bad.append(f"{where}: {config_name} ({config.__module__}) is not a *Config in {fn.__module__}'s package")
    assert not bad, "\n".join(bad)

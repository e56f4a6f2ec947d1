"""Every step the recipes build has one shape (docs/architecture.md "Steps"): its function takes one
argument, its frozen ``*Config``, defined in the function's own module. Read from every
``ExecutorStep(fn=..., config=...)`` in src/."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "soda_jax"


def step_calls() -> list[tuple[str, int, str, str]]:
    """``(module, line, fn name, config class name)`` of each ``ExecutorStep(fn=NAME, config=CLASS(...))``."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(("soda_jax", *path.relative_to(SRC).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ExecutorStep"):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            fn, config = keywords.get("fn"), keywords.get("config")
            if isinstance(fn, ast.Name) and isinstance(config, ast.Call) and isinstance(config.func, ast.Name):
                found.append((module, node.lineno, fn.id, config.func.id))
    return found


def test_the_recipes_build_steps():
    modules = {module for module, *_ in step_calls()}
    assert "soda_jax.recipes.defaults" in modules and len(step_calls()) >= 15


def test_each_step_function_takes_its_own_frozen_config():
    bad = []
    for module_name, line, fn_name, config_name in step_calls():
        module = importlib.import_module(module_name)
        fn, config = getattr(module, fn_name), getattr(module, config_name)
        where = f"{module_name}:{line} ({fn_name})"
        parameters = list(inspect.signature(fn).parameters.values())
        if len(parameters) != 1 or parameters[0].annotation not in (config_name, config):
            bad.append(f"{where}: takes {[str(p) for p in parameters]}, not one {config_name}")
        if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):  # type: ignore[attr-defined]
            bad.append(f"{where}: {config_name} is not a frozen dataclass")
        if not config_name.endswith("Config") or config.__module__ != fn.__module__:
            bad.append(
                f"{where}: {config_name} ({config.__module__}) is not a *Config beside {fn.__module__}.{fn_name}"
            )
    assert not bad, "\n".join(bad)

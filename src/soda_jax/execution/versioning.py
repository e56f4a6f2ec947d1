"""Versions and output paths of steps, and concrete configs.

A step's version is a small JSON document: its name, every `versioned` value in its config (keyed
by the field path), and every input: a step's output named by the producing step's own
``name-hash``, a raw input by its location. Its hash therefore covers the versions of all upstream
steps and where the raw data came from, and nothing else: unversioned values and the function's
code never move an output path.

A raw input is a plain string in a config field named ``input_path`` (`FIXED_INPUT_FIELD`), the
field every reading step names its input by: a local path, ``gs://``, ``s3://`` or
``hf://datasets/{repo}@{revision}``. Its location is part of the version (a pilot on a subset and
the full run land in two directories); the executor also checks it can be read before a run and
records what it found there (`soda_jax.execution.provenance`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from soda_jax import fileio
from soda_jax.execution.step import ExecutorStep, InputName, OutputName, PrefixPath, VersionedValue

HASH_LENGTH = 8
"""Hex digits of the version hash in an output path."""
FIXED_INPUT_FIELD = "input_path"
"""The config field naming where a step reads: a plain string there is a fixed (raw) input."""
LOCAL_FILE_PREFIX = "file://"
"""A local path written as a URL: versioned as the path."""


def walk_config(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(field_path, leaf)`` for every leaf of a config of dataclasses, lists and dicts.

    Placeholders (`InputName`, `OutputName`, `PrefixPath`, `VersionedValue`) and `ExecutorStep`s are leaves.
    """
    if isinstance(obj, (InputName, OutputName, PrefixPath, VersionedValue, ExecutorStep)):
        yield path, obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            yield from walk_config(getattr(obj, field.name), f"{path}.{field.name}" if path else field.name)
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from walk_config(item, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from walk_config(item, f"{path}[{key!r}]")
    else:
        yield path, obj


def as_input(leaf: Any) -> InputName | None:
    """A bare step in a config means its whole output directory."""
    if isinstance(leaf, ExecutorStep):
        return InputName(leaf, None)
    return leaf if isinstance(leaf, InputName) else None


def config_inputs(config: Any) -> Iterator[InputName]:
    """Every input a config refers to, also those inside `versioned` values."""
    for _, leaf in walk_config(config):
        if isinstance(leaf, VersionedValue):
            yield from config_inputs(leaf.value)
        inp = as_input(leaf)
        if inp is not None:
            yield inp


def field_name(field_path: str) -> str:
    """The config field a leaf sits in: ``heldout.corpus_path`` -> ``corpus_path``, ``paths[2]`` -> ``paths``."""
    return re.sub(r"(\[[^\]]*\])+$", "", field_path.rsplit(".", 1)[-1])


def input_location(path: str) -> str:
    """How a fixed input's location is versioned: a URL as written (no trailing '/'), a local path
    made absolute (a relative one is relative to the working directory of the run's planner)."""
    path = path.removeprefix(LOCAL_FILE_PREFIX)
    if "://" in path:
        return path.rstrip("/")
    return os.path.abspath(path)


def fixed_inputs(config: Any) -> dict[str, str]:
    """Field path -> location (as written) of every fixed input of a config: a non-empty plain string
    in a `FIXED_INPUT_FIELD` field, outside `versioned` values (a versioned path is versioned as it is)."""
    return {
        field_path: leaf
        for field_path, leaf in walk_config(config)
        if isinstance(leaf, str) and leaf and field_name(field_path) == FIXED_INPUT_FIELD
    }


def dependencies(step: ExecutorStep, *, blocking_only: bool = False) -> list[ExecutorStep]:
    """The steps whose outputs ``step``'s config refers to, in first-seen order."""
    seen: dict[int, ExecutorStep] = {}
    for inp in config_inputs(step.config):
        if inp.step is not None and (inp.blocking or not blocking_only):
            seen.setdefault(id(inp.step), inp.step)
    return list(seen.values())


def jsonable(value: Any, where: str, input_version: Callable[[InputName], str] | None = None) -> Any:
    """A deterministic JSON form of a versioned value (dataclasses, containers, scalars).

    An input inside it (a step's output path in a data config, say) is versioned by its producer's
    identity, through ``input_version``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    inp = as_input(value)
    if inp is not None and input_version is not None:
        return input_version(inp)
    if isinstance(value, VersionedValue):
        return jsonable(value.value, where, input_version)
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and inp is None:
        return {
            "__type__": type(value).__qualname__,
            **{f.name: jsonable(getattr(value, f.name), where, input_version) for f in dataclasses.fields(value)},
        }
    if isinstance(value, (list, tuple)):
        return [jsonable(v, where, input_version) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v, where, input_version) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    raise TypeError(f"versioned value at {where!r} has type {type(value).__name__}, which has no stable version")


def hash_version(version: dict[str, Any]) -> str:
    blob = json.dumps(version, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:HASH_LENGTH]


@dataclass(frozen=True)
class StepIdentity:
    """A step's computed version and where its output lives."""

    version: dict[str, Any]
    """What defines the step: name, versioned values, and inputs by their producers' identity."""
    hash: str
    """Hash of ``version``."""
    output_path: str
    """``{prefix}/{name}-{hash}``, or the step's override."""


def compute_identities(steps: list[ExecutorStep], prefix: str) -> dict[int, StepIdentity]:
    """Identity of every step in ``steps`` (topologically sorted), keyed by ``id(step)``."""
    identities: dict[int, StepIdentity] = {}
    for step in steps:

        def input_version(inp: InputName) -> str:
            if inp.step is None:
                return f"prefix:{inp.subpath}"
            return f"input:{inp.step.name}-{identities[id(inp.step)].hash}/{inp.subpath or ''}"

        config_version: dict[str, Any] = {}
        for field_path, leaf in walk_config(step.config):
            inp = as_input(leaf)
            if isinstance(leaf, VersionedValue):
                config_version[field_path] = jsonable(leaf.value, f"{step.name}:{field_path}", input_version)
            elif inp is not None:
                config_version[field_path] = input_version(inp)
        for field_path, location in fixed_inputs(step.config).items():
            config_version[field_path] = f"path:{input_location(location)}"
        version = {"name": step.name, "config": config_version}
        digest = hash_version(version)
        if step.override_output_path is not None:
            output = step.override_output_path
            if "://" not in output and not output.startswith("/"):
                output = fileio.join(prefix, output)
        else:
            output = fileio.join(prefix, f"{step.name}-{digest}")
        identities[id(step)] = StepIdentity(version=version, hash=digest, output_path=output)
    return identities


def instantiate(config: Any, output_path: str, output_of: Callable[[ExecutorStep], str], prefix: str) -> Any:
    """The config with every placeholder replaced by its concrete value or path."""

    def resolve(obj: Any) -> Any:
        inp = as_input(obj)
        if inp is not None:
            base = prefix if inp.step is None else output_of(inp.step)
            return fileio.join(base, inp.subpath) if inp.subpath else base
        if isinstance(obj, PrefixPath):
            return fileio.join(prefix, obj.subpath)
        if isinstance(obj, OutputName):
            return fileio.join(output_path, obj.subpath) if obj.subpath else output_path
        if isinstance(obj, VersionedValue):
            return resolve(obj.value)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            changes = {f.name: resolve(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
            return dataclasses.replace(obj, **changes)
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
            return type(obj)(*(resolve(v) for v in obj))
        if isinstance(obj, (list, tuple)):
            return type(obj)(resolve(v) for v in obj)
        if isinstance(obj, dict):
            return {k: resolve(v) for k, v in obj.items()}
        return obj

    return resolve(config)


def config_as_json(config: Any) -> Any:
    """A concrete config as JSON-able data for `.executor_info` (best effort, never fails)."""
    try:
        return jsonable(config, "config")
    except TypeError:
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            return {f.name: config_as_json(getattr(config, f.name)) for f in dataclasses.fields(config)}
        if isinstance(config, (list, tuple)):
            return [config_as_json(v) for v in config]
        if isinstance(config, dict):
            return {str(k): config_as_json(v) for k, v in config.items()}
        return repr(config)

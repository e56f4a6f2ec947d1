"""The output layout's names are defined once (soda_jax.contracts) and documented; derived sizes
follow the vocabulary."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from soda_jax import contracts
from soda_jax.audio.text_tokenizers import MISTRAL_V1_TEXT_SIZE, mistral_sentencepiece
from soda_jax.audio.vocab import LLAMA3_TEXT_SIZE, SODA_VOCAB_SIZE, AudioTextVocab, audio_text_vocab_size

DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "data-contracts.md")


def test_every_contract_name_is_documented():
    text = open(DOCS).read()
    names = {k: v for k, v in vars(contracts).items() if k.isupper() and isinstance(v, str)}
    assert names, "contracts defines no names"
    undocumented = {k: v for k, v in names.items() if v not in text}
    assert not undocumented, f"names in soda_jax/contracts.py missing from docs/data-contracts.md: {undocumented}"


def test_vocabulary_sizes_derive_from_the_text_tokenizer():
    assert audio_text_vocab_size(MISTRAL_V1_TEXT_SIZE) == AudioTextVocab(mistral_sentencepiece()).size == 48_388
    assert SODA_VOCAB_SIZE == audio_text_vocab_size(LLAMA3_TEXT_SIZE) == 144_644  # SODA's released tokenizer


# -- every contract name is written once: in contracts.py ----------------------------------------
SRC = Path(__file__).resolve().parent.parent / "src" / "soda_jax"
PATH_CALLS = ("join", "exists", "Path")
"""Calls whose string arguments are file or directory names (fileio.join, os.path.join, pathlib.Path ...)."""
NAME_SUFFIXES = ("_DIR", "_FILE", "_SPLIT")
"""A module constant with a name ending so is an output name, whatever its value."""


def contract_names(source: str) -> dict[str, str]:
    """value -> name of each string constant a contracts module defines."""
    names = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = [
                t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])
            ]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for target, value in zip(targets, values):
                if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    names[value.value] = target.id
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    bodies = [
        n for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    return {id(n.body[0].value) for n in bodies if n.body and isinstance(n.body[0], ast.Expr)}


def _called_name(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def contract_literals(source: str, names: dict[str, str]) -> list[tuple[int, str, str]]:
    """(line, literal, contract name) of each place ``source`` spells a contract name itself.

    A name with a dot (``summary.json``, ``.executor_info``) is flagged anywhere but in a docstring,
    also as a segment of a longer path (``vocab/vocab.json``). A plain word (``checkpoints``,
    ``vocab``) means other things too (an axis, a dict key), so it is flagged only where it is a
    path: an argument of a path call (`PATH_CALLS`), or the value of a module constant used as one
    or named like an output name (`NAME_SUFFIXES`)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    dotted = {v: k for v, k in names.items() if "." in v}
    found = []
    path_args = {
        id(a) for n in ast.walk(tree) if isinstance(n, ast.Call) and _called_name(n) in PATH_CALLS for a in n.args
    }
    path_names = {
        a.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and _called_name(n) in PATH_CALLS
        for a in n.args
        if isinstance(a, ast.Name)
    }
    module_constants = {
        id(n.value): t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
            continue
        value = node.value
        if value in dotted:
            found.append((node.lineno, value, dotted[value]))
        elif "/" in value and (hits := [s for s in value.split("/") if s in dotted]):
            found.append((node.lineno, value, dotted[hits[0]]))
        elif value in names:
            constant = module_constants.get(id(node))
            as_path = id(node) in path_args or (
                constant is not None and (constant in path_names or constant.endswith(NAME_SUFFIXES))
            )
            if as_path:
                found.append((node.lineno, value, names[value]))
    return found


def test_contract_names_are_spelled_only_in_contracts():
    names = contract_names((SRC / "contracts.py").read_text())
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name != "contracts.py" or path.parent != SRC:
            rel = path.relative_to(SRC)
            found += [
                f"{rel}:{line}: {value!r} is contracts.{name}"
                for line, value, name in contract_literals(path.read_text(), names)
            ]
    assert not found, "import these names from soda_jax.contracts:\n" + "\n".join(found)


def test_the_contract_check_finds_a_redefined_name():
    names = contract_names((SRC / "contracts.py").read_text())
    source = (
        '"""summary.json in a docstring is fine."""\n'
        'RUN_SUMMARY = "summary.json"\n'
        'CHECKPOINTS = "checkpoints"\n'
        'VOCAB_AXIS = "vocab"\n'
        "def f(root):\n"
        "    Axis(VOCAB_AXIS, 3)\n"
        '    return join(root, CHECKPOINTS), join(root, "vocab"), "vocab/vocab.json", {"vocab": 1}\n'
    )
    assert sorted((line, value) for line, value, _ in contract_literals(source, names)) == [
        (2, "summary.json"),
        (3, "checkpoints"),
        (7, "vocab"),
        (7, "vocab/vocab.json"),
    ]

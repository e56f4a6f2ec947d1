"""Every ``soda ...`` command line the documentation shows parses, and the command line itself behaves:
flags in any order, a ``--help`` per subcommand listing its flags, ``soda launch`` passed through.

The commands are read from README.md, docs/*.md and infra/README.md as they are when the test runs:
lines of code blocks (fenced or indented) that start with ``soda`` (or ``$ soda``), and inline code
spans that do. Parsing is `soda_jax.cli.build_parser`'s, as ``soda`` does it; nothing is compiled,
trained or served. How a documented line is read:

- ``# ...`` ends the command (a comment), ``\\`` continues it on the next line;
- ``<what>`` is one placeholder argument; ``UPPERCASE`` words (``PATH``, ``RUN``) are values as written;
- ``[...]`` marks an optional part: it is kept (parsed), its brackets dropped;
- ``a|b|c`` in one word lists alternatives: each is parsed;
- a bare ``...`` elides arguments, and an inline span without flags (`` `soda compile` ``,
  `` `soda generate tts` ``) names a command in prose: for both, the subcommand must exist and each
  ``--flag`` shown must be one of its flags. Every line of a code block is a whole command.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import io
import itertools
import os
import re
import shlex
import subprocess
import sys

import pytest

from soda_jax.cli import COMMANDS, PASS_THROUGH, build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ("README.md", "docs/*.md", "infra/README.md")
"""Where the documented command lines are (globs under the repository root)."""
PLACEHOLDER = "PLACEHOLDER"
"""What a ``<...>`` placeholder is parsed as."""
ELIDED = "<elided>"
"""What a bare ``...`` (arguments left out) becomes while a line is read."""

FENCE = re.compile(r"^\s*(```|~~~)")
COMMAND_LINE = re.compile(r"^\s*(?:\$\s+)?(soda\s+\S.*)$")
INLINE = re.compile(r"`(soda\s+[^`]+)`")


@dataclasses.dataclass(frozen=True)
class Documented:
    """One command line as a document shows it."""

    where: str
    """``file:line``."""
    text: str
    """From ``soda`` to the end of the command (continuations joined, comment included)."""
    inline: bool = False
    """An inline code span (prose), not a line of a code block."""


def code_lines(lines: list[str]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(line number, text) of code-block lines and of prose lines; an indented block counts only
    after a blank line, as markdown reads it."""
    code, prose, fenced, previous_blank = [], [], False, True
    for number, line in enumerate(lines, 1):
        if FENCE.match(line):
            fenced = not fenced
            previous_blank = False
            continue
        indented = line.startswith("    ") and previous_blank
        (code if fenced or indented else prose).append((number, line))
        if not (indented and line.strip()):
            previous_blank = not line.strip()
    return code, prose


def documented_commands(path: str) -> list[Documented]:
    """Every ``soda ...`` command line in the markdown file ``path``."""
    lines = open(path, encoding="utf-8").read().splitlines()
    name = os.path.relpath(path, ROOT)
    code, prose = code_lines(lines)
    found = []
    pending = ""
    for number, line in code:
        line = pending + line.strip() if pending else line
        match = COMMAND_LINE.match(line)
        if match and match.group(1).rstrip().endswith("\\"):
            pending = match.group(1).rstrip()[:-1].rstrip() + " "
            continue
        pending = ""
        if match:
            found.append(Documented(f"{name}:{number}", match.group(1)))
    # Inline spans may wrap across lines of a paragraph: search the prose as one text per paragraph.
    for _, paragraph in itertools.groupby(prose, key=lambda item: bool(item[1].strip())):
        block = list(paragraph)
        text = "\n".join(line for _, line in block)
        for match in INLINE.finditer(text):
            number = block[0][0] + text[: match.start()].count("\n")
            found.append(
                Documented(f"{name}:{number}", " ".join(match.group(1).replace("\\|", "|").split()), inline=True)
            )
    return found


def all_documented() -> list[Documented]:
    paths = sorted({p for pattern in DOCUMENTS for p in glob.glob(os.path.join(ROOT, pattern))})
    return [command for path in paths for command in documented_commands(path)]


def readings(text: str, inline: bool = False) -> tuple[list[list[str]], bool]:
    """The argv lists (after ``soda``) a documented line stands for, and whether it is a fragment
    (elided, or an ``inline`` span without flags: only its subcommand and flags are checked)."""
    text = re.sub(r"<[^<>]*>", PLACEHOLDER, text)
    text = re.sub(r"(?<![^\s\[])\.\.\.(?![^\s\]])", ELIDED, text)  # a bare "...", not a quoted value "..."
    words = shlex.split(text, comments=True)[1:]  # without "soda"
    words = [w.removeprefix("[").removesuffix("]") for w in words]
    words = [w for w in words if w]
    fragment = ELIDED in words or len(words) == 1 or (inline and not any(w.startswith("-") for w in words))
    words = [w for w in words if w != ELIDED]
    options = [w.split("|") if "|" in w and not w.startswith("-") else [w] for w in words]
    return [list(argv) for argv in itertools.product(*options)], fragment


def subparser(name: str) -> argparse.ArgumentParser:
    """``soda NAME``'s own parser (argparse keeps it in the subparsers action's choices)."""
    actions = build_parser((name,))._actions
    return next(a for a in actions if isinstance(a, argparse._SubParsersAction)).choices[name]


def argument_error(argv: list[str], fragment: bool) -> str | None:
    """None if ``soda ARGV`` parses (a fragment: if its subcommand and flags exist), else why not."""
    if not argv or argv[0] not in COMMANDS:
        return f"no subcommand {argv[:1]} (known: {sorted(COMMANDS)})"
    if argv[0] in PASS_THROUGH:
        return launch_argument_error(argv[1:], fragment)
    if fragment:
        flags = subparser(argv[0])._option_string_actions
        unknown = [w.split("=")[0] for w in argv[1:] if w.startswith("-") and w.split("=")[0] not in flags]
        return f"unknown flags {unknown}" if unknown else None
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser((argv[0],)).parse_args(argv)
    except SystemExit as exit_:
        return None if exit_.code == 0 else stderr.getvalue().strip()
    return None


def launch_argument_error(argv: list[str], fragment: bool) -> str | None:
    """``soda launch``'s own parser (`soda_jax.execution.launch.parser`), parse only: its flags are
    what comes before ``--`` (after it, the experiment's), and it needs ``--cluster`` or ``--address``,
    as `launch_main` reads them."""
    from soda_jax.execution import launch

    ours = argv[: argv.index("--")] if "--" in argv else argv
    parser = launch.parser()
    if fragment:
        flags = parser._option_string_actions
        unknown = [w for w in ours if w.startswith("-") and w.split("=")[0] not in flags]
        return f"unknown flags {unknown}" if unknown else None
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(ours)
    except SystemExit as exit_:
        return None if exit_.code == 0 else stderr.getvalue().strip()
    return None if args.cluster or args.address else "give --cluster CONFIG or --address URL"


# ------------------------------------------------------------------------------------ the docs
def test_every_documented_command_line_parses():
    documented = all_documented()
    problems, parsed = [], 0
    for command in documented:
        try:
            argvs, fragment = readings(command.text, command.inline)
        except ValueError as error:  # shlex: an unclosed quote
            problems.append(f"{command.where}: {command.text!r}: {error}")
            continue
        for argv in argvs:
            error = argument_error(argv, fragment)
            parsed += not fragment and error is None
            if error:
                problems.append(f"{command.where}: soda {shlex.join(argv)}\n    {error}")
    assert not problems, "documented command lines that do not parse:\n" + "\n".join(problems)
    shown = {readings(c.text)[0][0][0] for c in documented}
    assert {"info", "dashboard", "plan", "compile", "generate"} <= shown, shown
    assert parsed >= 10, f"only {parsed} whole command lines found in {DOCUMENTS}"


def test_the_reader_finds_commands_where_the_docs_put_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Run `soda plan --budget 1e20 --fits <analysis>/scaling_fits.json` on a finished\n"
        "analysis, or `soda compile soda-4b --tpu v5p-8 --decode --batch 64\n--seq 4096` (it wraps).\n\n"
        "```bash\nsoda info /tmp/x   # status\n$ soda generate tts|asr --checkpoint RUN \\\n"
        "    --out DIR [--seed 3]\npython -m other --soda 1\n```\n\n"
        "    soda dashboard --prefix gs://B/soda\n\n"
        "![soda dashboard: a picture](img.png) and `soda compile` and `soda-jax`.\n"
    )
    commands = documented_commands(str(page))
    texts = [c.text for c in commands]
    assert [c.inline for c in commands] == [False, False, False, True, True, True]
    assert texts == [
        "soda info /tmp/x   # status",
        "soda generate tts|asr --checkpoint RUN --out DIR [--seed 3]",
        "soda dashboard --prefix gs://B/soda",
        "soda plan --budget 1e20 --fits <analysis>/scaling_fits.json",
        "soda compile soda-4b --tpu v5p-8 --decode --batch 64 --seq 4096",
        "soda compile",
    ]
    assert readings(texts[1]) == (
        [["generate", g, "--checkpoint", "RUN", "--out", "DIR", "--seed", "3"] for g in ("tts", "asr")],
        False,
    )
    assert readings(texts[3]) == ([["plan", "--budget", "1e20", "--fits", "PLACEHOLDER/scaling_fits.json"]], False)
    assert readings("soda compile ... --decode") == ([["compile", "--decode"]], True)
    assert readings('soda generate tts --checkpoint R --out D --text "..."') == (
        [["generate", "tts", "--checkpoint", "R", "--out", "D", "--text", "..."]],
        False,
    )  # a value, not elided
    assert readings("soda launch x.py --cluster C [--env NAME ...]")[1]
    assert readings("soda generate tts", inline=True) == ([["generate", "tts"]], True)  # prose naming a command
    assert readings("soda info PATH") == ([["info", "PATH"]], False)  # a code block's line is a whole command


def test_a_launch_line_is_read_by_launchs_own_parser():
    """Its flags before ``--``; the experiment's after it are not soda launch's to know."""
    argvs, fragment = readings(
        "soda launch experiments/soda_600m.py --cluster infra/cluster-v5p.yaml -- --prefix gs://B/soda --dry_run"
    )
    assert argument_error(argvs[0], fragment) is None


@pytest.mark.parametrize(
    "line,error",
    [
        ("soda plan --budget 1e20 --fits x.json --bugdet 3", "unrecognized arguments: --bugdet"),
        ("soda plan --bud 1e20 --fits x.json", "required: --budget"),  # no abbreviations: a new flag would break them
        ("soda compile soda-135m --tpu v5p-33", "v5p-33"),
        ("soda compile soda-9b --tpu v5p-32", "invalid choice: 'soda-9b'"),
        ("soda compile soda-4b --tpu v5p-8 --parallelism modle=2", "--parallelism: expected name=value"),
        ("soda generate speak --checkpoint RUN --out DIR", "invalid choice: 'speak'"),
        ("soda compile ... --decoded", "unknown flags ['--decoded']"),
        ("soda serve --prefix x", "no subcommand ['serve']"),
        ("soda launch experiments/x.py --dry-run -- --prefix gs://B", "give --cluster CONFIG or --address URL"),
        ("soda launch experiments/x.py --clutser c.yaml", "unrecognized arguments: --clutser"),
    ],
)
def test_a_wrong_command_line_is_caught(line, error):
    argvs, fragment = readings(line)
    assert error in (argument_error(argvs[0], fragment) or "")


# ------------------------------------------------------------------------------- the command line
def parsed(argv: list[str]):
    return build_parser((argv[0],)).parse_args(argv)


def test_flags_come_in_any_order():
    assert vars(parsed(["compile", "--tpu", "v5p-64", "soda-600m"])) == vars(
        parsed(["compile", "soda-600m", "--tpu", "v5p-64"])
    )
    plan = parsed(["plan", "--budget", "1e20", "--fits", "x.json"])
    assert (plan.budget, plan.fits) == (1e20, "x.json")
    assert vars(parsed(["plan", "--fits", "x.json", "--budget", "1e20"])) == vars(plan)
    generate = parsed(["generate", "--checkpoint", "RUN", "--out", "DIR", "tts", "--text", "hi"])
    assert (generate.task, generate.checkpoint, generate.text) == ("tts", "RUN", "hi")


@pytest.mark.parametrize(
    "command,flags",
    [
        ("compile", ["--tpu", "--slices", "--batch", "--seq", "--decode", "--parallelism", "--json"]),
        ("plan", ["--budget", "--fits", "--vocab-size", "--seq-len", "--json"]),
        ("generate", ["--checkpoint", "--out", "--text", "--audio", "--ref-audio", "--temperature", "--mimi"]),
        ("dashboard", ["--prefix", "--host", "--port"]),
        ("info", ["path"]),
        ("launch", ["--cluster", "--env", "--dry-run", "--address"]),
    ],
)
def test_each_subcommand_has_its_own_help_listing_its_flags(command, flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: soda {command}")
    assert all(flag in text for flag in flags), text


def test_soda_help_lists_every_subcommand_without_importing_them():
    """``soda --help`` and ``soda info`` stay quick: no subcommand's heavy module is imported."""
    script = (
        "import sys, contextlib, io\nfrom soda_jax.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try: main(['--help'])\n    except SystemExit: pass\n"
        "print(out.getvalue()); print(sorted(m for m in ('jax', 'torch', 'levanter') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert all(f"    {name}" in result.stdout for name in COMMANDS), result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("order", ["experiment first", "flags first"])
def test_launch_gets_everything_after_it_and_the_experiment_gets_what_follows_the_dashes(order, capsys):
    """``soda launch`` passes its arguments on as they are: its flags in any order, and ``--`` with
    what follows (the experiment's own flags, ``--dry_run`` and ``--help`` included) reach the job."""
    flags = ["--python", "python", "--address", "http://127.0.0.1:1", "--dry-run"]
    ours = (
        ["experiments/hello_executor.py", *flags]
        if order == "experiment first"
        else [*flags, "experiments/hello_executor.py"]
    )
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = main(["launch", *ours, "--", "--prefix", "gs://BUCKET/soda", "--dry_run", "--help"])
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "soda launch --dry-run: nothing submitted" in out
    assert "entrypoint:   python experiments/hello_executor.py --prefix gs://BUCKET/soda --dry_run --help" in out

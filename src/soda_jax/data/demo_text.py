"""The demo text corpus: real English prose that ships with Python, a CPU stand-in for Nemotron-CC.

SODA mixes Nemotron-CC web text into its speech data; nothing can be downloaded here, and the CPU
text-share study (experiments/study_text_share_mini.py) needs a text-only corpus. This one is the
demo's sentences (``DEFAULT_SENTENCES``, one document each: the text the demo speech reads) and the
prose paragraphs of Python's documentation topics (``pydoc_data.topics``, what ``help("if")``
shows: about a thousand paragraphs, 0.26 MB in CPython 3.11), each paragraph a document, in
topic order. A paragraph is prose when its first line is not indented (indented blocks are code and
grammar), it is not a heading (a line underlined with ``*``, ``=``, ``-``) and it has at least
``min_words`` words; the others are skipped and counted by reason. Written as the `tokenize_text`
input layout::

    {output_path}/text/{shard:05d}.jsonl    {"id", "source", "text"} per line
    {output_path}/stats.json                documents and characters by source, skips by reason,
                                            the Python version, a SHA-256 of every shard

The topics belong to the running Python; ``stats.json`` records its version and the shards' hashes.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import platform
import re

from soda_jax import fileio
from soda_jax.contracts import STATS_FILE
from soda_jax.data.synth import DEFAULT_SENTENCES

logger = logging.getLogger(__name__)

TEXT_DIR = "text"
"""Where the jsonl shards go."""
SENTENCES_SOURCE, PYDOC_SOURCE = "demo-sentences", "pydoc-topics"
"""The two sources, as each record's ``source`` names them."""
HEADING_UNDERLINE = set("*=-~^")
"""Characters of a line that underlines a heading (reStructuredText)."""
SKIP_CODE, SKIP_HEADING, SKIP_SHORT = "indented_block", "heading", "too_few_words"
"""Why a paragraph is not prose."""


@dataclasses.dataclass(frozen=True)
class DemoTextConfig:
    """Configuration of the demo text corpus."""

    output_path: str
    """Directory receiving ``text/`` and ``stats.json``."""
    sentences: tuple[str, ...] = DEFAULT_SENTENCES
    """Documents of their own before the topics (the demo speech's sentences)."""
    min_words: int = 8
    """Shorter paragraphs are headings, list stubs or table rows: skipped."""
    documents_per_shard: int = 256
    """Records per jsonl shard (each shard is a unit of `tokenize_text`'s parallelism)."""


def prose_paragraphs(text: str, min_words: int, skipped: collections.Counter) -> list[str]:
    """The prose paragraphs of a topic, each joined to one line; the rest counted in ``skipped``."""
    kept = []
    for paragraph in re.split(r"\n\s*\n", text.strip("\n")):
        lines = paragraph.split("\n")
        if lines[0][:1].isspace():
            skipped[SKIP_CODE] += 1
            continue
        if any(line.strip() and set(line.strip()) <= HEADING_UNDERLINE for line in lines[1:]):
            skipped[SKIP_HEADING] += 1
            continue
        joined = " ".join(" ".join(line.split()) for line in lines).strip()
        if len(joined.split()) < min_words:
            skipped[SKIP_SHORT] += 1
            continue
        kept.append(joined)
    return kept


def demo_text_documents(config: DemoTextConfig) -> tuple[list[dict[str, str]], dict[str, int]]:
    """The corpus's records in order, and the skipped paragraphs by reason."""
    from pydoc_data.topics import topics  # the stdlib's help() texts

    records = [
        {"id": f"sentence-{i:04d}", "source": SENTENCES_SOURCE, "text": s} for i, s in enumerate(config.sentences)
    ]
    skipped: collections.Counter[str] = collections.Counter()
    for topic in sorted(topics):
        for j, paragraph in enumerate(prose_paragraphs(topics[topic], config.min_words, skipped)):
            records.append({"id": f"{topic}-{j:03d}", "source": PYDOC_SOURCE, "text": paragraph})
    return records, dict(skipped)


def write_demo_text_corpus(config: DemoTextConfig) -> dict:
    """Write the corpus's shards and ``stats.json``; returns the stats."""
    records, skipped = demo_text_documents(config)
    if not records:
        raise ValueError(f"{config.output_path}: the demo text corpus has no document")
    hashes = {}
    for start in range(0, len(records), config.documents_per_shard):
        name = f"{TEXT_DIR}/{start // config.documents_per_shard:05d}.jsonl"
        body = "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in records[start : start + config.documents_per_shard]
        )
        fileio.atomic_write_text(fileio.join(config.output_path, name), body)
        hashes[name] = hashlib.sha256(body.encode("utf-8")).hexdigest()
    by_source = collections.Counter(r["source"] for r in records)
    characters: collections.Counter[str] = collections.Counter()
    for r in records:
        characters[r["source"]] += len(r["text"])
    stats = {
        "documents": dict(by_source),
        "characters": dict(characters),
        "skipped_paragraphs": skipped,
        "python": platform.python_version(),
        "files": hashes,
    }
    fileio.atomic_write_json(fileio.join(config.output_path, STATS_FILE), stats)
    logger.info(
        "demo text corpus: %s documents, %s characters, skipped %s (%s)",
        dict(by_source),
        dict(characters),
        skipped,
        config.output_path,
    )
    return stats


# -- the learning demo's commands (experiments/demo_learn.py) -------------------------------------------
COMMAND_VERBS = ("set", "turn", "move", "dim")
COMMAND_COLOURS = ("red", "green", "blue", "yellow", "white", "black")
COMMAND_THINGS = ("lamp", "door", "fan", "screen", "light")
COMMAND_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
COMMAND_TEMPLATE = "{verb} the {colour} {thing} to {number}"
"""Every command: six words from a closed vocabulary of 28 (4 x 6 x 5 x 10 = 1,200 combinations)."""
HELD_OUT_SALT = "soda-demo-commands"
"""Salt of the hash that holds combinations out of training (`command_split`)."""


def command_sentences() -> tuple[str, ...]:
    """Every command of the closed vocabulary, in a fixed order (verb, colour, thing, number)."""
    return tuple(
        COMMAND_TEMPLATE.format(verb=v, colour=c, thing=t, number=n)
        for v in COMMAND_VERBS
        for c in COMMAND_COLOURS
        for t in COMMAND_THINGS
        for n in COMMAND_NUMBERS
    )


def command_split(held_out_fraction: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training, held-out) commands: a salted hash of the sentence holds ``held_out_fraction`` of the
    combinations out, so a held-out command is a combination of words the training corpus never reads
    together (every word itself is read in training: checked)."""
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    train: list[str] = []
    held_out: list[str] = []
    for sentence in command_sentences():
        digest = hashlib.sha256(f"{HELD_OUT_SALT}:{sentence}".encode()).digest()
        (held_out if int.from_bytes(digest[:8], "big") / 2**64 < held_out_fraction else train).append(sentence)
    unseen = {w for s in held_out for w in s.split()} - {w for s in train for w in s.split()}
    if unseen:
        raise ValueError(f"held_out_fraction {held_out_fraction}: words {sorted(unseen)} are never read in training")
    return tuple(train), tuple(held_out)

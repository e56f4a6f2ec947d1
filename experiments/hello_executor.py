"""The executor's example: three small steps chained, one versioned parameter.

    python experiments/hello_executor.py --prefix /tmp/soda-hello [--dry_run]

Change ``GREETING_REPEATS`` and the `words` and `summary` steps move to new output paths; change
the unversioned ``log_every`` and nothing re-runs.
"""

import json
import logging
import os
from dataclasses import dataclass

from soda_jax.execution import ExecutorStep, executor_main, this_output_path, versioned

logger = logging.getLogger(__name__)

GREETING_REPEATS = 3


@dataclass(frozen=True)
class WriteTextConfig:
    output_path: str
    """Directory to write greeting.txt into."""
    repeats: int
    """How many times to greet (versioned)."""


@dataclass(frozen=True)
class CountWordsConfig:
    input_path: str
    """A step's directory holding greeting.txt."""
    output_path: str
    """Directory for counts.json."""
    log_every: int = 1
    """Progress logging interval (unversioned: changing it re-runs nothing)."""


@dataclass(frozen=True)
class SummaryConfig:
    counts_path: str
    """counts.json of the counting step."""
    output_path: str
    """Directory for summary.txt."""


def write_text(config: WriteTextConfig) -> None:
    os.makedirs(config.output_path, exist_ok=True)
    with open(os.path.join(config.output_path, "greeting.txt"), "w") as f:
        f.write(" ".join(["hello soda"] * config.repeats) + "\n")


def count_words(config: CountWordsConfig) -> None:
    with open(os.path.join(config.input_path, "greeting.txt")) as f:
        words = f.read().split()
    counts = {w: words.count(w) for w in sorted(set(words))}
    os.makedirs(config.output_path, exist_ok=True)
    with open(os.path.join(config.output_path, "counts.json"), "w") as f:
        json.dump(counts, f)


def summarize(config: SummaryConfig) -> None:
    with open(config.counts_path) as f:
        counts = json.load(f)
    os.makedirs(config.output_path, exist_ok=True)
    with open(os.path.join(config.output_path, "summary.txt"), "w") as f:
        f.write(f"{sum(counts.values())} words, {len(counts)} distinct\n")


greeting = ExecutorStep(
    name="hello/greeting",
    fn=write_text,
    config=WriteTextConfig(output_path=this_output_path(), repeats=versioned(GREETING_REPEATS)),
    description="write a greeting",
)
words = ExecutorStep(
    name="hello/words",
    fn=count_words,
    config=CountWordsConfig(input_path=greeting, output_path=this_output_path()),
    description="count its words",
)
summary = ExecutorStep(
    name="hello/summary",
    fn=summarize,
    config=SummaryConfig(counts_path=words / "counts.json", output_path=this_output_path()),
    description="summarize the counts",
)

if __name__ == "__main__":
    executor_main([summary], description="three chained steps with a versioned parameter")

"""Executor wiring for the data steps (for the lead to fold into experiments/defaults.py).

    yodas2_tokens = default_tokenize_audio(...)              # audio engineer's step (section 1)
    yodas2 = default_interleave("yodas2", yodas2_tokens, tokenizer=LLAMA3)
    nemotron = default_tokenize_text("nemotron_cc", "gs://.../nemotron-cc/hq_actual/", tokenizer=LLAMA3)
    data = mixture_config("soda_final", {"yodas2": yodas2, ..., "nemotron_cc": nemotron})
"""

from __future__ import annotations

from soda_jax.data.interleave_step import InterleaveConfig, interleave
from soda_jax.data.tokenize_text import TokenizeTextConfig, tokenize_text
from soda_jax.execution import ExecutorStep, InputName, Resources, this_output_path, versioned

SODA_PATTERNS = ("text_first", "audio_first")
"""SODA pretrains on both interleaved types of every recording."""


def default_interleave(
    name: str,
    tokenized_audio: ExecutorStep | InputName | str,
    *,
    tokenizer: str,
    patterns: tuple[str, ...] = SODA_PATTERNS,
    validation_fraction: float = 0.01,
    max_document_tokens: int | None = None,
    speaker_marker: bool = False,
    cpus: float = 1,
) -> ExecutorStep[InterleaveConfig]:
    """``tokenized/{name}-interleaved``: a tokenize_audio output -> train/validation token caches."""
    return ExecutorStep(
        name=f"tokenized/{name}-interleaved",
        fn=interleave,
        config=InterleaveConfig(
            input_path=tokenized_audio,  # type: ignore[arg-type]  (resolved to a path by the executor)
            output_path=this_output_path(),
            tokenizer=versioned(tokenizer),
            patterns=versioned(tuple(patterns)),
            validation_fraction=versioned(validation_fraction),
            max_document_tokens=versioned(max_document_tokens),
            speaker_marker=versioned(speaker_marker),
        ),
        description=f"interleave {name} ({', '.join(patterns)})",
        resources=Resources(cpus=cpus),
    )


def default_tokenize_text(
    name: str, input_path: ExecutorStep | InputName | str, *, tokenizer: str, validation_fraction: float = 0.001, cpus: float = 1
) -> ExecutorStep[TokenizeTextConfig]:
    """``tokenized/{name}-text``: jsonl/parquet text -> token caches in the same vocabulary."""
    return ExecutorStep(
        name=f"tokenized/{name}-text",
        fn=tokenize_text,
        config=TokenizeTextConfig(
            input_path=input_path,  # type: ignore[arg-type]
            output_path=this_output_path(),
            tokenizer=versioned(tokenizer),
            validation_fraction=versioned(validation_fraction),
        ),
        description=f"tokenize text corpus {name}",
        resources=Resources(cpus=cpus),
    )

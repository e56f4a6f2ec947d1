"""Word error rate two ways, both labelled, because papers mix them:

* **corpus WER**: total word errors / total reference words over the set (jiwer over all pairs at
  once): LibriSpeech convention, long utterances weigh more.
* **mean per-utterance WER**: the average of each utterance's WER: Seed-TTS eval's convention
  (reported x 100), short utterances weigh as much as long ones.

Pairs whose normalised reference is empty cannot have a WER and are counted, not scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import jiwer


@dataclass(frozen=True)
class WerResult:
    corpus_wer: float
    """Total errors / total reference words (0.05 = 5 %)."""
    mean_utterance_wer: float
    """Mean over utterances of each one's WER."""
    errors: int
    """Substitutions + deletions + insertions over the set."""
    reference_words: int
    utterances: int
    """Pairs scored (non-empty normalised reference)."""
    empty_references: int
    """Pairs skipped because the normalised reference was empty."""

    def to_dict(self) -> dict:
        return asdict(self)


def utterance_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) of one already-normalised pair (reference non-empty)."""
    out = jiwer.process_words(reference, hypothesis)
    return out.substitutions + out.deletions + out.insertions, out.substitutions + out.deletions + out.hits


def word_error_rate(
    references: Sequence[str], hypotheses: Sequence[str], normalize: Callable[[str], str] = lambda t: t
) -> WerResult:
    """Corpus and mean per-utterance WER of ``hypotheses`` against ``references`` after ``normalize``."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    errors = words = empty = 0
    per_utterance = []
    for reference, hypothesis in zip(references, hypotheses):
        reference, hypothesis = normalize(reference), normalize(hypothesis)
        if not reference.strip():
            empty += 1
            continue
        e, n = utterance_errors(reference, hypothesis)
        errors, words = errors + e, words + n
        per_utterance.append(e / n)
    nan = float("nan")
    return WerResult(
        corpus_wer=errors / words if words else nan,
        mean_utterance_wer=sum(per_utterance) / len(per_utterance) if per_utterance else nan,
        errors=errors,
        reference_words=words,
        utterances=len(per_utterance),
        empty_references=empty,
    )

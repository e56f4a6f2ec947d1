"""A data step's budget for bad input: skipping some records is normal, skipping most is a failure.

Readers skip bad records and count them by reason. That must not let a broken corpus (a wrong
path, a format change, a codec that cannot read the audio) end as a SUCCESS with empty or
near-empty caches: after counting, a step calls `enforce_skip_budget`, which fails it when it
produced nothing or when the skipped share exceeds ``max_skip_fraction``, with the counts by reason
in the error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

DEFAULT_MAX_SKIP_FRACTION = 0.5
"""Default of every data step's ``max_skip_fraction``: fail when more than half the records are bad."""


class SkipBudgetExceeded(ValueError):
    """A step produced nothing, or skipped more of its input than it may."""


def enforce_skip_budget(
    what: str,
    kept: int,
    skipped: Mapping[str, int],
    max_skip_fraction: float,
    not_bad: Collection[str] = (),
) -> None:
    """Raise `SkipBudgetExceeded` if ``kept`` is 0 or the bad share of ``kept + skipped`` is too high.

    ``what`` names the step and its output (it starts the message); ``not_bad`` are reasons that
    are deliberate filtering (another language), counted but not charged against the budget.
    """
    bad = {reason: n for reason, n in sorted(skipped.items()) if reason not in not_bad and n}
    by_reason = ", ".join(f"{reason}: {n}" for reason, n in bad.items()) or "none"
    filtered = {reason: n for reason, n in sorted(skipped.items()) if reason in not_bad and n}
    if filtered:
        by_reason += f" (filtered, not counted as bad: {', '.join(f'{r}: {n}' for r, n in filtered.items())})"
    if kept == 0:
        raise SkipBudgetExceeded(f"{what}: produced nothing (0 records kept); skipped by reason: {by_reason}")
    fraction = sum(bad.values()) / (kept + sum(bad.values()))
    if fraction > max_skip_fraction:
        raise SkipBudgetExceeded(
            f"{what}: skipped {fraction:.1%} of its records, more than max_skip_fraction={max_skip_fraction}"
            f" ({kept} kept); skipped by reason: {by_reason}"
        )

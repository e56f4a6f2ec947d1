"""The executor dashboard (``soda dashboard``): experiments, step DAGs, curves, eval results, audio."""

DEFAULT_PORT = 8365
"""Not 8265: that is Ray's dashboard, which ``soda launch`` forwards."""

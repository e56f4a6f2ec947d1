"""Ahead-of-time compilation of the training step for TPU slices, on a CPU host (docs/tpu.md)."""

from soda_jax.aot.check import DoesNotFitError, check_fits, compile_report
from soda_jax.execution.tpu_slices import TpuSlice, tpu_slice

__all__ = ["DoesNotFitError", "TpuSlice", "check_fits", "compile_report", "tpu_slice"]

"""What a compiled training step needs per chip, and what it computes per token.

Memory comes from XLA's ``memory_analysis()`` of the compiled TPU program (per chip): arguments
(parameters, optimizer state, batch), outputs, the bytes outputs share with donated arguments
(the new state reuses the old one's buffers), temporaries (activations, gradients, collectives'
buffers) and the program itself. The peak is ``arguments + outputs - aliased + temporaries + code``;
it fits when it stays under the chip's HBM less `HBM_MARGIN`.

FLOPs come from ``cost_analysis()``, which counts a while-loop body once (the scanned layers, the
fused loss's loop over batch blocks, the SPMD partitioner's collective-matmul loops) and a Pallas
kernel (splash attention) as 0. The count (`soda_jax.aot.check.counted_flops_per_token`) compiles
the same step for one chip with 1 and 2 layers per loop iteration, the plain attention kernel and
the loss over materialised logits; their difference is one layer (forward, remat's recomputation
and backward): ``FLOPs = rest + layers x layer``. The analytic count is `soda_jax.models.flops`
(3 x forward, attention as a full s x s map), plus one more forward of the layers when remat
recomputes them (docs/tpu.md explains what remains).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import haliax as hax
import jax

from soda_jax.execution.tpu_slices import GIB, TpuSlice

HBM_MARGIN = 0.10
"""Fraction of each chip's HBM left free for what the compiler's analysis does not see (the
runtime's own buffers, fragmentation, the data loader's prefetched batch)."""


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    """Bytes per chip of one compiled step."""

    parameters: int
    """Model parameters held by one chip (after FSDP/tensor sharding)."""
    optimizer_state: int
    """Optimizer state held by one chip."""
    arguments: int
    """All inputs: parameters, optimizer state, step, key, batch shard."""
    outputs: int
    """All outputs (the new state, loss)."""
    aliased: int
    """Output bytes written into donated argument buffers (not allocated twice)."""
    temporaries: int
    """Activations, gradients, collective buffers: XLA's temp allocation."""
    code: int
    """The compiled program."""
    hbm: int
    """The chip's HBM."""
    margin: float = HBM_MARGIN
    """Fraction of HBM kept free."""
    compiler_refused: bool = False
    """XLA refused the program for lack of HBM: temporaries are what its message reports, outputs and
    code unknown (0), so the peak is a lower bound."""

    @property
    def peak(self) -> int:
        """Bytes the step needs on one chip: inputs + new outputs + temporaries + code."""
        return self.arguments + self.outputs - self.aliased + self.temporaries + self.code

    @property
    def budget(self) -> int:
        """HBM the step may use: the chip's HBM less the margin."""
        return int(self.hbm * (1 - self.margin))

    @property
    def fits(self) -> bool:
        return not self.compiler_refused and self.peak <= self.budget

    def as_dict(self) -> dict[str, Any]:
        gib = {
            f"{f.name}_gib": round(getattr(self, f.name) / GIB, 3)
            for f in dataclasses.fields(self)
            if f.name not in ("margin", "compiler_refused")
        }
        return {
            **gib,
            "peak_gib": round(self.peak / GIB, 3),
            "budget_gib": round(self.budget / GIB, 3),
            "margin": self.margin,
            "fits": self.fits,
            "compiler_refused": self.compiler_refused,
        }


def bytes_per_chip(tree: Any) -> int:
    """Bytes one chip holds of ``tree``'s abstract leaves (each `jax.ShapeDtypeStruct` with a sharding)."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, hax.NamedArray)):
        array = leaf.array if isinstance(leaf, hax.NamedArray) else leaf
        if not isinstance(array, jax.ShapeDtypeStruct):
            continue
        shape = array.sharding.shard_shape(array.shape) if array.sharding is not None else array.shape
        total += math.prod(shape) * array.dtype.itemsize
    return total


_REFUSED = re.compile(r"HLO temporaries \(([\d.]+)([KMGT]?)\)")
"""The temporaries figure in libtpu's out-of-HBM message, e.g. ``HLO temporaries (172.54G)`` (binary units)."""


def refused_memory_report(
    message: str, state_shape, arguments: Any, tpu: TpuSlice, margin: float = HBM_MARGIN
) -> MemoryReport:
    """The `MemoryReport` of a step XLA refused to compile for lack of HBM, from its ``message``:
    temporaries as reported, arguments (``arguments``: the abstract step inputs) from their shardings."""
    match = _REFUSED.search(message)
    if match is None:
        raise ValueError(f"no temporaries figure in the compiler's message: {message[:300]}")
    temporaries = int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " "))
    return MemoryReport(
        parameters=bytes_per_chip(state_shape.model),
        optimizer_state=bytes_per_chip(state_shape.opt_state),
        arguments=bytes_per_chip(arguments),
        outputs=0,
        aliased=0,
        temporaries=temporaries,
        code=0,
        hbm=tpu.chip.hbm_bytes,
        margin=margin,
        compiler_refused=True,
    )


def memory_report(compiled, state_shape, tpu: TpuSlice, margin: float = HBM_MARGIN) -> MemoryReport:
    """The per-chip `MemoryReport` of a compiled step whose first argument is ``state_shape``."""
    stats = compiled.memory_analysis()
    return MemoryReport(
        parameters=bytes_per_chip(state_shape.model),
        optimizer_state=bytes_per_chip(state_shape.opt_state),
        arguments=stats.argument_size_in_bytes,
        outputs=stats.output_size_in_bytes,
        aliased=stats.alias_size_in_bytes,
        temporaries=stats.temp_size_in_bytes,
        code=stats.generated_code_size_in_bytes,
        hbm=tpu.chip.hbm_bytes,
        margin=margin,
    )


def compiled_flops(compiled) -> float:
    """FLOPs of one chip's program as XLA counts them (a loop body once)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", 0.0))


@dataclasses.dataclass(frozen=True)
class FlopsReport:
    """Training FLOPs per token: the compiled program's (loop-corrected) against the analytic count."""

    compiled_as_is: float
    """cost_analysis of the step as compiled (scanned layers counted once), per token, all chips."""
    compiled: float
    """Counted through the loops: ``compiled_rest + layers x compiled_per_layer``, per token, all chips."""
    compiled_per_layer: float
    """One layer's forward, recomputation and backward, per token."""
    compiled_rest: float
    """Everything else: embedding, LM head and loss (forward and backward), optimizer update, per token."""
    analytic: float
    """`soda_jax.scaling.flops`: 3 x forward FLOPs per token (no recomputation)."""
    analytic_with_recompute: float
    """Analytic plus the forward pass of the layers again when gradient checkpointing recomputes them."""

    @property
    def ratio(self) -> float:
        """Compiled over analytic (3 x forward)."""
        return self.compiled / self.analytic

    @property
    def ratio_with_recompute(self) -> float:
        """Compiled over analytic with remat's recomputation: what the program should do."""
        return self.compiled / self.analytic_with_recompute

    def as_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "compiled_over_analytic": round(self.ratio, 3),
            "compiled_over_analytic_with_recompute": round(self.ratio_with_recompute, 3),
        }


def per_token(flops_per_chip: float, num_chips: int, tokens_per_step: int) -> float:
    return flops_per_chip * num_chips / tokens_per_step


def roofline_seconds(
    flops_per_token: float, tokens_per_step: int, bytes_accessed_per_chip: float, tpu: TpuSlice, num_slices: int = 1
) -> float:
    """A LOWER BOUND on step time: the slower of compute at peak and HBM traffic at full bandwidth."""
    chips = tpu.num_chips * num_slices
    compute = flops_per_token * tokens_per_step / (chips * tpu.chip.peak_bf16_flops)
    memory = bytes_accessed_per_chip / tpu.chip.hbm_bytes_per_second
    return max(compute, memory)

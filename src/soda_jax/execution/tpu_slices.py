"""TPU slice types by name (``"v5p-32"``): chips, physical topology, hosts, and per-chip specs.

The name follows Google Cloud's accelerator types: for v4 and v5p the number counts TensorCores
(two per chip), for v5e/v6e it counts chips. Per-chip figures are Google's published specs
(cloud.google.com/tpu/docs/v4, /v5p, /v5e, /v6e); they size the compile report's HBM check and its
roofline bound, never a measurement.
"""

from __future__ import annotations

import dataclasses
import re

GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class ChipSpec:
    """One TPU generation's chip, as Google publishes it."""

    version: str
    """Ray's and JAX's name for the generation: ``v4``, ``v5p``, ``v5e``, ``v6e``."""
    hbm_bytes: int
    """High-bandwidth memory per chip."""
    peak_bf16_flops: float
    """Peak dense bf16 FLOP/s per chip."""
    hbm_bytes_per_second: float
    """HBM bandwidth per chip."""
    cores_per_chip: int
    """TensorCores per chip: the accelerator-type number divided by this is the chip count."""
    chips_per_host: int
    """Chips attached to one host VM of a multi-host slice (one JAX process per host)."""
    jax_name: str
    """The generation as `jax.experimental.topologies` spells it (``v5p:2x2x4``)."""
    single_host_chips: int
    """The largest slice served by one host VM: v5e/v6e single-host types go up to 8 chips
    (``v6e-8`` is one 8-chip VM, as Ray's TPU API counts it); v4/v5p hosts hold 4."""


CHIPS: dict[str, ChipSpec] = {
    "v4": ChipSpec("v4", 32 * GIB, 275e12, 1228e9, 2, 4, "v4", 4),
    "v5p": ChipSpec("v5p", 95 * 10**9, 459e12, 2765e9, 2, 4, "v5p", 4),
    "v5e": ChipSpec("v5e", 16 * GIB, 197e12, 819e9, 1, 4, "v5e", 8),
    "v6e": ChipSpec("v6e", 32 * GIB, 918e12, 1640e9, 1, 4, "v6e", 8),
}

_CUBE_TOPOLOGIES = {
    4: "2x2x1",
    8: "2x2x2",
    16: "2x2x4",
    32: "2x4x4",
    64: "4x4x4",
    128: "4x4x8",
    256: "4x8x8",
    512: "8x8x8",
    1024: "8x8x16",
    2048: "8x16x16",
    4096: "16x16x16",
}
"""v4/v5p chip count -> 3-D torus shape (Google's default slice shapes)."""
_PLANE_TOPOLOGIES = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
"""v5e/v6e chip count -> 2-D torus shape."""


@dataclasses.dataclass(frozen=True)
class TpuSlice:
    """A slice type such as ``v5p-32``: its chip, chip count, topology and hosts."""

    name: str
    """The accelerator type, e.g. ``"v5p-32"``."""
    chip: ChipSpec
    """The chip generation."""
    num_chips: int
    """Chips in one slice."""
    topology: str
    """Physical torus shape, e.g. ``"2x2x4"`` (what Ray's TPU API and JAX's topologies take)."""

    @property
    def num_hosts(self) -> int:
        """Host VMs of one slice: one JAX process (one Ray task) runs on each."""
        return self.num_chips // self.chips_per_host

    @property
    def chips_per_host(self) -> int:
        if self.num_chips <= self.chip.single_host_chips:
            return self.num_chips
        return self.chip.chips_per_host

    @property
    def jax_topology_name(self) -> str:
        """``"v5p:2x2x4"``: the name `jax.experimental.topologies.get_topology_desc` takes."""
        return f"{self.chip.jax_name}:{self.topology}"

    @property
    def head_resource(self) -> str:
        """The Ray resource the first host of such a slice advertises (``TPU-v5p-32-head``)."""
        return f"TPU-{self.name}-head"


def tpu_slice(name: str) -> TpuSlice:
    """The `TpuSlice` named ``name`` (``v5p-32``, ``v6e-64``, ``v4-8``); a clear error otherwise."""
    match = re.fullmatch(r"(v4|v5p|v5e|v5litepod|v6e)-(\d+)", name.strip().lower())
    if not match:
        raise ValueError(f"unknown TPU type {name!r}: expected e.g. v5p-32, v4-64, v5e-16, v6e-64")
    version = "v5e" if match.group(1) == "v5litepod" else match.group(1)
    chip = CHIPS[version]
    count = int(match.group(2))
    if count % chip.cores_per_chip:
        raise ValueError(
            f"{name}: {version} types count {chip.cores_per_chip} cores per chip; {count} is not a multiple"
        )
    chips = count // chip.cores_per_chip
    shapes = _CUBE_TOPOLOGIES if chip.cores_per_chip == 2 else _PLANE_TOPOLOGIES
    if chips not in shapes:
        raise ValueError(f"{name}: no standard {version} topology with {chips} chips (known: {sorted(shapes)})")
    return TpuSlice(name=f"{version}-{count}", chip=chip, num_chips=chips, topology=shapes[chips])

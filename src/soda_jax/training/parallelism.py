"""Device mesh and the mapping of haliax axis names onto it.

Three mesh axes, named as levanter names them:

* ``replica``: pure data parallelism (parameters replicated) within a slice; across TPU slices
  (multislice, over DCN) levanter adds ``replica_dcn``, sized by the number of slices;
* ``data``: data parallelism *and* FSDP: the batch is split over it, and so are parameters and
  optimizer state along their ``embed`` axis (ZeRO-3), gathered layer by layer for compute;
* ``model``: tensor parallelism: the MLP and attention-head axes are split over it; the
  vocabulary axis of the embedding and LM head is split over it for *storage* only.

Why not compute with a vocab-split LM head: with ``vocab -> model`` in the compute mapping this
levanter/haliax build returns a wrong next-token loss on a 4 x 2 mesh (training/levanter_compat.py
lists it; tests/test_training.py guards the equality with the unsharded loss), so the head is
gathered for the loss instead.

The same `ParallelismConfig` runs on 1 CPU (all sizes 1), 8 fake CPU devices (4 x 2) and a pod
slice (``data=-1`` absorbs whatever devices are left).
"""

from __future__ import annotations

import dataclasses

from levanter.utils.mesh import MeshConfig

REPLICA, DATA, MODEL = "replica", "data", "model"
REPLICA_DCN = "replica_dcn"
"""levanter's cross-slice axis: one entry per TPU slice (1 on a single slice or host)."""
BATCH_AXIS = "batch"
EMBED_AXIS = "embed"
ABSORB_REMAINING = -1
"""A mesh-axis size that takes every device the other axes leave."""
VOCAB_AXIS = "vocab"
TENSOR_PARALLEL_AXES = ("mlp", "heads", "kv_head")
"""haliax axes split over ``model`` for compute and storage: MLP width, query and key/value heads."""


@dataclasses.dataclass(frozen=True)
class ParallelismConfig:
    """Mesh shape and axis mapping for one run."""

    replica: int = 1
    """Pure data-parallel replicas (parameters copied, not sharded)."""
    data: int = ABSORB_REMAINING
    """Data-parallel / FSDP shards; -1 takes the devices left after ``replica`` and ``model``."""
    model: int = 1
    """Tensor-parallel shards; must divide the MLP width, the number of KV heads and heads."""
    fsdp: bool = True
    """Shard parameters and optimizer state over ``data`` along ``embed`` (ZeRO-3)."""
    tensor_parallel_axes: tuple[str, ...] = TENSOR_PARALLEL_AXES
    """haliax axes split over ``model``."""
    shard_vocab_parameters: bool = True
    """Store embedding and LM-head rows split over ``model`` (gathered for compute: see above)."""

    def mesh_config(self) -> MeshConfig:
        """levanter's `MeshConfig`: one mapping for compute (batch over slices x replica x data) and one for
        parameters (``embed`` over data when ``fsdp``, ``vocab`` over model); both split the
        tensor-parallel axes."""
        tensor = {axis: MODEL for axis in self.tensor_parallel_axes}
        params = {EMBED_AXIS: DATA} if self.fsdp else {}
        if self.shard_vocab_parameters:
            params[VOCAB_AXIS] = MODEL
        return MeshConfig(
            axes={REPLICA: self.replica, DATA: self.data, MODEL: self.model},
            batch_axis_name=BATCH_AXIS,
            shared_mapping=tensor,
            compute_mapping={BATCH_AXIS: (REPLICA_DCN, REPLICA, DATA)},
            param_mapping=params,
        )

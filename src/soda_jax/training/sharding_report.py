"""How a model's parameters are laid out on the mesh: ``{parameter: {haliax axis: mesh axis}}``."""

from __future__ import annotations

import haliax as hax
import jax


def parameter_sharding(model) -> dict[str, dict[str, str | list[str] | None]]:
    """For each named parameter, the mesh axis (or axes) each of its haliax axes is split over, e.g.
    ``{"transformer.layers.stacked.mlp.up_proj.weight": {"layer": None, "mlp": "model", "embed": "data"}}``
    (None: replicated along that axis)."""
    leaves = jax.tree_util.tree_flatten_with_path(model, is_leaf=lambda x: isinstance(x, hax.NamedArray))[0]
    out = {}
    for path, leaf in leaves:
        if not isinstance(leaf, hax.NamedArray) or not isinstance(leaf.array, jax.Array):
            continue
        spec = tuple(leaf.array.sharding.spec) + (None,) * len(leaf.axes)  # specs may omit trailing Nones
        out[".".join(_key_name(k) for k in path)] = {
            name: list(mesh_axis) if isinstance(mesh_axis, tuple) else mesh_axis
            for name, mesh_axis in zip(leaf.axis_names, spec)
        }
    return out


def _key_name(key) -> str:
    for attr in ("name", "key", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)

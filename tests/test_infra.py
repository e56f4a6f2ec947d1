"""infra/cluster-*.yaml: what `ray up` accepts offline, node types for every slice an experiment asks for,
the pinned install on every host, and the machines each kind of step lands on."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml
from ray._private.accelerators import tpu as ray_tpu
from ray.autoscaler._private.gcp.node_provider import GCPNodeProvider
from ray.autoscaler._private.util import prepare_config, validate_config

from soda_jax.execution.launch import cluster_python
from soda_jax.execution.tpu_slices import tpu_slice

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFRA = os.path.join(ROOT, "infra")
SLICE_LITERAL = re.compile(r"\b(v4|v5p|v5e|v6e)-(\d+)\b")
"""A TPU slice type written out in an experiment file (``tpu="v5p-64"``)."""


def load_generator():
    spec = importlib.util.spec_from_file_location("make_clusters", os.path.join(INFRA, "make_clusters.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make_clusters = load_generator()
CONFIGS = {g.version: make_clusters.config_path(g) for g in make_clusters.GENERATIONS}


def load(version: str) -> dict:
    with open(CONFIGS[version]) as f:
        return yaml.safe_load(f)


def tpu_node_types(config: dict) -> dict[str, dict]:
    """Slice type -> node type, for the node types that are TPU slices."""
    return {
        t["node_config"]["acceleratorType"]: t
        for t in config["available_node_types"].values()
        if "acceleratorType" in t["node_config"]
    }


def test_configs_are_the_generators_output():
    """One description (infra/make_clusters.py) for the three generations: no YAML drifts from it."""
    slices = make_clusters.experiment_slices()
    for generation in make_clusters.GENERATIONS:
        assert make_clusters.without_project(load(generation.version)) == make_clusters.cluster_config(
            generation, slices
        ), f"{CONFIGS[generation.version]} differs from infra/make_clusters.py's output: run it"


def test_every_slice_an_experiment_asks_for_has_a_node_type():
    """The final runs' and the sweep's slices, and any slice type an experiment file spells out."""
    from soda_jax.recipes.isoflop_sweep import SWEEP_SLICES
    from soda_jax.recipes.soda_models import SODA_TPU_SLICES

    wanted = {*SODA_TPU_SLICES.values(), *SWEEP_SLICES}
    for name in sorted(os.listdir(os.path.join(ROOT, "experiments"))):
        if name.endswith(".py"):
            with open(os.path.join(ROOT, "experiments", name)) as f:
                wanted |= {m.group(0) for m in SLICE_LITERAL.finditer(f.read())}
    assert {"v5p-8", "v5p-256"} <= wanted
    offered = {slice_type for version in CONFIGS for slice_type in tpu_node_types(load(version))}
    assert not wanted - offered, f"slices no cluster config offers: {sorted(wanted - offered)}"


@pytest.mark.parametrize("version", sorted(CONFIGS))
def test_ray_up_offline_checks_accept_the_config(version):
    """What `ray up` does before it calls GCP (ray/autoscaler/_private/commands.py `_bootstrap_config`):
    merge Ray's GCP defaults, fill in each TPU type's ``TPU-{type}-head`` resource (validating the
    accelerator type), then check the result against Ray's schema."""
    config = load(version)
    prepared = prepare_config(copy.deepcopy(config))
    prepared = GCPNodeProvider.fillout_available_node_types_resources(prepared)
    validate_config(prepared)
    for slice_type, node_type in tpu_node_types(prepared).items():
        # what a slice request (SlicePlacementGroup's head reservation) asks the autoscaler for
        assert node_type["resources"][f"TPU-{slice_type}-head"] == 1
    # Ray's defaults add nothing to what runs on the hosts (they would pip-install outside the venv):
    # the head and the workers run the common setup (`ray up` merges it into theirs) and nothing else
    for key in ("setup_commands", "head_setup_commands", "worker_setup_commands"):
        assert prepared[key] == config["setup_commands"], key
    assert prepared["initialization_commands"] == []


@pytest.mark.parametrize("version", sorted(CONFIGS))
def test_head_cpu_pool_and_slices_advertise_what_their_steps_need(version):
    """CPU-only requests (data steps, their shard tasks) can land only on the CPU pool: the head and the
    TPU hosts advertise no CPUs; a TPU host advertises its chips as Ray counts them."""
    config = load(version)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0} and head["min_workers"] == head["max_workers"] == 0
    pool = types["cpu_pool"]
    assert pool["resources"]["CPU"] > 0 and "TPU" not in pool["resources"] and pool["min_workers"] >= 1
    assert "schedulingConfig" not in pool["node_config"]  # on demand: a shard task is not retried
    slices = tpu_node_types(config)
    assert slices
    for slice_type, node_type in slices.items():
        chips = ray_tpu.get_num_tpu_visible_chips_per_host(slice_type)
        assert node_type["resources"] == {"CPU": 0, "TPU": chips}, slice_type
        assert tpu_slice(slice_type).chips_per_host == chips, slice_type  # what the step's bundles ask for
        assert node_type["node_config"]["schedulingConfig"]["preemptible"] is True
    assert config["max_workers"] == sum(t["max_workers"] for t in types.values())


@pytest.mark.parametrize("version", sorted(CONFIGS))
def test_every_host_builds_the_pinned_venv_first_on_path(version):
    config = load(version)
    checkout = next(dst for dst, src in config["file_mounts"].items() if src == ".")
    venv_bin = f"{checkout}/.venv/bin"
    apt, make, path = config["setup_commands"]
    assert {"python3.11", "python3.11-venv", "make", "sox", "ffmpeg", "graphviz"} <= set(apt.split())
    assert make == f"make -C {checkout} venv EXTRAS={make_clusters.CLUSTER_EXTRAS}"
    # what that `make venv` runs in a fresh checkout: the pinned install
    commands = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "-B",
            "venv",
            "VENV=.venv",
            "TORCH_INDEX_URL=",
            f"EXTRAS={make_clusters.CLUSTER_EXTRAS}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f'-c constraints.txt -e ".[{make_clusters.CLUSTER_EXTRAS}]"' in commands
    assert f"sed -i '1i export PATH={venv_bin}:$PATH' ~/.bashrc" in path  # first line: before .bashrc's early return
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert f"{venv_bin}/ray " in command
    assert config["rsync_filter"] == [".gitignore"]  # the workstation's .venv stays home
    assert cluster_python(CONFIGS[version]) == f"{venv_bin}/python"  # what `soda launch` runs there

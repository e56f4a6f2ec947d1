"""Write infra/cluster-{v4,v5p,v6e}.yaml (Ray clusters on GCP TPU VMs, for `ray up`) from one description.

    python infra/make_clusters.py            # rewrite the three YAMLs
    python infra/make_clusters.py --check    # exit 1 if one differs from what this writes

Every cluster has the same three kinds of machine:

- a CPU **head** that advertises no CPUs: it holds Ray's GCS, dashboard and autoscaler and each
  submitted experiment's driver (`soda launch`), never a step;
- a **CPU pool** (on-demand VMs, at least one up) that every step asking only for CPUs lands on
  (data steps and their shard tasks);
- one node type per **TPU slice** size the experiments ask for (``Resources.tpu``; the sizes come
  from `soda_jax.recipes.soda_models.SODA_TPU_SLICES`, `soda_jax.recipes.isoflop_sweep.SWEEP_SLICES` and every
  v5p type an experiment file names; v4 and v6e get the same chip counts).
  A worker of such a type is a whole preemptible slice; each host advertises its chips and no
  CPUs, so only a step's per-host processes (`soda_jax.execution.tpu`) run there. Ray's GCP
  provider adds ``TPU-{type}-head`` to the first host, which is what a slice request waits for.

Every host runs the same setup: Debian's python3.11, sox, ffmpeg and graphviz, then the Makefile's
``make venv`` (the pinned install, ``-c constraints.txt``) in the synced checkout, whose venv goes
first on ``PATH``; Ray itself starts from that venv. The generated files differ from this output
only in ``provider.project_id``, which you fill in.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from soda_jax import fileio

INFRA = os.path.dirname(os.path.abspath(__file__))
EXPERIMENTS = os.path.join(os.path.dirname(INFRA), "experiments")
SLICE_LITERAL = re.compile(r"\bv5p-\d+\b")
"""A v5p slice type written out in an experiment file (the generation SODA's experiments use)."""
REMOTE_CHECKOUT = "/home/ray/soda-jax"
"""Where `ray up` syncs this checkout on every host (``file_mounts``); `soda launch` reads it back."""
REMOTE_VENV = f"{REMOTE_CHECKOUT}/.venv"
"""The Makefile's ``VENV`` inside the synced checkout."""
CLUSTER_EXTRAS = "tpu,cluster"
"""pyproject extras every host installs: JAX's TPU runtime, and the Google API client Ray's GCP
autoscaler (on the head) imports."""
DEBIAN_PACKAGES = ("python3.11", "python3.11-venv", "make", "sox", "libsox-fmt-mp3", "ffmpeg", "graphviz")
"""The interpreter and its venv module, make, and the tools the project calls (audio, the DAG)."""
PATH_LINE = f"export PATH={REMOTE_VENV}/bin:$PATH"
"""Put first in ~/.bashrc (before its non-interactive early return): every shell Ray or you open finds the venv."""
PROJECT_PLACEHOLDER = "YOUR_GCP_PROJECT"
UBUNTU_IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"
BOOT_DISK_GB = 200
HEAD_MACHINE = "n2-standard-8"
CPU_POOL_MACHINE = "n2-standard-16"
CPU_POOL_CPUS = 16
"""vCPUs of `CPU_POOL_MACHINE`: what each pool node advertises to Ray."""
CPU_POOL_MIN, CPU_POOL_MAX = 1, 32
"""At least one pool node stays up (the executor sizes CPU requests by the CPUs it sees)."""
SLICES_PER_TYPE = 4
"""Most slices of one size up at once (isoFLOP sweep runs of one size share a type)."""
IDLE_TIMEOUT_MINUTES = 15


@dataclasses.dataclass(frozen=True)
class Generation:
    """A TPU generation's cluster: where its slices are offered and the TPU VM image they run."""

    version: str
    """``v4``, ``v5p``, ``v6e`` (`soda_jax.execution.tpu_slices.CHIPS`)."""
    region: str
    zone: str
    """A zone that offers the generation's pod slices."""
    runtime_version: str
    """The TPU VM software version (Google's base image for the generation)."""


GENERATIONS = (
    Generation("v4", "us-central2", "us-central2-b", "tpu-ubuntu2204-base"),
    Generation("v5p", "us-east5", "us-east5-a", "v2-alpha-tpuv5"),
    Generation("v6e", "us-east5", "us-east5-b", "v2-alpha-tpuv6e"),
)


def experiment_slices() -> list[str]:
    """Every slice type the experiments' TPU steps ask for: the final runs', the sweep's choices, and
    any slice type an experiment file spells out (``tpu="v5p-16"``)."""
    from soda_jax.recipes.isoflop_sweep import SWEEP_SLICES
    from soda_jax.recipes.soda_models import SODA_TPU_SLICES

    named = {*SODA_TPU_SLICES.values(), *SWEEP_SLICES}
    for path in sorted(glob.glob(os.path.join(EXPERIMENTS, "*.py"))):
        with open(path) as f:
            named |= {m.group(0) for m in SLICE_LITERAL.finditer(f.read())}
    return sorted(named, key=lambda name: int(name.rsplit("-", 1)[1]))


def slice_types(generation: Generation, slices: Sequence[str]) -> list[str]:
    """The slice types of ``generation`` with the chip counts of ``slices`` (v4/v5p names count cores)."""
    from soda_jax.execution.tpu_slices import CHIPS, tpu_slice

    chips = sorted({tpu_slice(name).num_chips for name in slices})
    cores = CHIPS[generation.version].cores_per_chip
    return [tpu_slice(f"{generation.version}-{n * cores}").name for n in chips]


def chips_per_host(slice_type: str) -> int:
    """TPU chips one host of ``slice_type`` has, as Ray's TPU support counts them."""
    from ray._private.accelerators import tpu

    return int(tpu.get_num_tpu_visible_chips_per_host(slice_type))


def cpu_vm(machine_type: str) -> dict[str, Any]:
    """A Compute Engine VM's ``node_config``: Ubuntu 22.04, a boot disk, the default service account."""
    return {
        "machineType": machine_type,
        "disks": [
            {
                "boot": True,
                "autoDelete": True,
                "type": "PERSISTENT",
                "initializeParams": {"diskSizeGb": BOOT_DISK_GB, "sourceImage": UBUNTU_IMAGE},
            }
        ],
        "serviceAccounts": [{"email": "default", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
    }


def node_type_name(slice_type: str) -> str:
    return "tpu_" + slice_type.replace("-", "_")


def cluster_config(generation: Generation, slices: Sequence[str]) -> dict[str, Any]:
    """The `ray up` config of ``generation``'s cluster, with node types for ``slices``' chip counts."""
    node_types: dict[str, Any] = {
        "head": {
            "resources": {"CPU": 0},
            "min_workers": 0,
            "max_workers": 0,
            "node_config": cpu_vm(HEAD_MACHINE),
        },
        "cpu_pool": {
            "resources": {"CPU": CPU_POOL_CPUS},
            "min_workers": CPU_POOL_MIN,
            "max_workers": CPU_POOL_MAX,
            "node_config": cpu_vm(CPU_POOL_MACHINE),
        },
    }
    for slice_type in slice_types(generation, slices):
        node_types[node_type_name(slice_type)] = {
            "resources": {"CPU": 0, "TPU": chips_per_host(slice_type)},
            "min_workers": 0,
            "max_workers": SLICES_PER_TYPE,
            "node_config": {
                "acceleratorType": slice_type,
                "runtimeVersion": generation.runtime_version,
                "schedulingConfig": {"preemptible": True},
            },
        }
    ray = f"{REMOTE_VENV}/bin/ray"
    return {
        "cluster_name": f"soda-{generation.version}",
        "max_workers": sum(t["max_workers"] for t in node_types.values()),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
        "provider": {
            "type": "gcp",
            "region": generation.region,
            "availability_zone": generation.zone,
            "project_id": PROJECT_PLACEHOLDER,
        },
        "auth": {"ssh_user": "ray"},
        "available_node_types": node_types,
        "head_node_type": "head",
        "file_mounts": {REMOTE_CHECKOUT: "."},
        "rsync_filter": [".gitignore"],
        "setup_commands": [
            "sudo apt-get update -y && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y "
            + " ".join(DEBIAN_PACKAGES),
            f"make -C {REMOTE_CHECKOUT} venv EXTRAS={CLUSTER_EXTRAS}",
            f"touch ~/.bashrc && (grep -qxF '{PATH_LINE}' ~/.bashrc || sed -i '1i {PATH_LINE}' ~/.bashrc)",
        ],
        # Empty, not absent: absent, `ray up` fills in Ray's GCP defaults, a bare `pip install
        # google-api-python-client==1.7.8` on the head (outside the venv; Ubuntu has no `pip`).
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [
            f"{ray} stop",
            # the dashboard (and its job API) on the head's loopback: reached through `ray dashboard`'s SSH tunnel
            f"ulimit -n 65536; {ray} start --head --port=6379 --object-manager-port=8076"
            " --autoscaling-config=~/ray_bootstrap_config.yaml --dashboard-host=127.0.0.1",
        ],
        "worker_start_ray_commands": [
            f"{ray} stop",
            f"ulimit -n 65536; {ray} start --address=$RAY_HEAD_IP:6379 --object-manager-port=8076",
        ],
    }


def config_path(generation: Generation) -> str:
    return os.path.join(INFRA, f"cluster-{generation.version}.yaml")


def render(generation: Generation, config: dict[str, Any]) -> str:
    header = (
        f"# Ray on GCP: a CPU head, a CPU pool for data steps, and {generation.version} TPU slices for training.\n"
        f"#   ray up infra/cluster-{generation.version}.yaml        "
        "(infra/README.md; fill in provider.project_id first)\n"
        "# Generated by infra/make_clusters.py, which says what each part is for: edit that and rerun it.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, width=200)


def without_project(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the one field a user fills in set back to the placeholder."""
    return {**config, "provider": {**config["provider"], "project_id": PROJECT_PLACEHOLDER}}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare the YAMLs with what would be written")
    args = parser.parse_args(argv)
    slices = experiment_slices()
    stale = []
    for generation in GENERATIONS:
        config = cluster_config(generation, slices)
        path = config_path(generation)
        if args.check:
            with open(path) as f:
                if without_project(yaml.safe_load(f)) != config:
                    stale.append(path)
        else:
            fileio.atomic_write_text(path, render(generation, config))
            print(f"wrote {path}")
    for path in stale:
        print(
            f"{path} differs from infra/make_clusters.py's output: run `python infra/make_clusters.py`", file=sys.stderr
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

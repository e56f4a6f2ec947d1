"""The install works off this machine: every pin is a public release, and pip resolves the project's
extras against public PyPI alone (``pip --isolated``: no configured extra index, find-links or
constraint file, as on a fresh workstation, in CI or on a cluster host)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSTRAINTS = os.path.join(ROOT, "constraints.txt")
PYPI_FILES = "https://files.pythonhosted.org/"
"""Where every wheel and sdist of public PyPI is served from."""
CUDA_TORCH_DEPENDENCIES = re.compile(r"nvidia-.*|cuda-.*|triton")
"""What PyPI's (CUDA) torch wheel adds over the CPU environment constraints.txt pins."""
RESOLVE_TIMEOUT_S = 600


def constraint_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    with open(CONSTRAINTS) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt:{number}: {line!r} is not an exact pin (name==version)"
            key = canonicalize_name(name)
            assert key not in pins, f"constraints.txt:{number}: {name} is pinned twice"
            pins[key] = Version(version)
    return pins


def project_requirements() -> dict[str, list[Requirement]]:
    """pyproject's requirements by group: ``""`` for the dependencies, else the extra's name."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {group: [Requirement(r) for r in requirements] for group, requirements in groups.items()}


def test_constraints_pin_public_releases_only():
    """A local version label (``2.13.0+cpu``) exists on no public index: pip finds no such release."""
    pins = constraint_pins()
    local = {name: str(v) for name, v in pins.items() if v.local is not None}
    assert not local, f"constraints.txt pins local version labels: {local}"
    assert pins["torch"] == Version("2.13.0")


def test_pyproject_pins_exact_public_versions_that_constraints_agree_with():
    pins = constraint_pins()
    for group, requirements in project_requirements().items():
        for req in requirements:
            if canonicalize_name(req.name) == "soda-jax":  # an extra of our own
                continue
            specs = list(req.specifier)
            where = f"pyproject {group or 'dependencies'}: {req}"
            assert len(specs) == 1 and specs[0].operator == "==", f"{where}: not an exact pin"
            version = Version(specs[0].version)
            assert version.local is None, f"{where}: a local version label is on no public index"
            assert pins.get(canonicalize_name(req.name)) == version, (
                f"{where}: constraints.txt pins {pins.get(canonicalize_name(req.name))}"
            )


def test_accelerator_extras_pin_the_projects_jax():
    groups = project_requirements()
    jax = next(r for r in groups[""] if r.name == "jax")
    for extra, jax_extra in (("tpu", "tpu"), ("gpu", "cuda12")):
        (req,) = groups[extra]
        assert req.name == "jax" and req.extras == {jax_extra} and req.specifier == jax.specifier


def make_dry_run(*variables: str) -> str:
    """The commands ``make venv`` would run for a fresh venv, with these make variables."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "venv", "VENV=/nonexistent/venv", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TORCH_INDEX_URL": ""},
    )
    return result.stdout


def test_makefile_torch_index_is_an_option_not_a_pin():
    default = make_dry_run()
    assert '-c constraints.txt -e ".[test,tpu-aot]"' in default and "--extra-index-url" not in default
    cpu = make_dry_run("TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu", "EXTRAS=tpu,cluster")
    assert '--extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt -e ".[tpu,cluster]"' in cpu
    assert "pytest-audioeval" not in cpu  # the test clips come with the test extra only


def isolated_resolve(tmp_path, extras: str) -> list[dict]:
    """``pip --isolated install --dry-run`` of the project with ``extras`` and constraints.txt; the
    packages pip would install (its JSON report)."""
    report = tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "pip",
        "--isolated",
        "install",
        "--dry-run",
        "--quiet",
        "--ignore-installed",
        "--report",
        str(report),
        "-c",
        CONSTRAINTS,
        f"{ROOT}[{extras}]",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=RESOLVE_TIMEOUT_S)
    assert result.returncode == 0, f"pip could not resolve .[{extras}] from public PyPI:\n{result.stderr[-3000:]}"
    return json.loads(report.read_text())["install"]


@pytest.mark.slow  # 70-80 s for each set of extras on 2 busy cores (network-bound)
@pytest.mark.parametrize("extras", ["test,tpu-aot", "tpu,cluster", "gpu"])
def test_extras_resolve_from_public_pypi_alone(tmp_path, extras):
    """What `make setup` installs, what the cluster's hosts install (infra/), and a GPU host's set."""
    pins = constraint_pins()
    installs = isolated_resolve(tmp_path, extras)
    resolved = {canonicalize_name(item["metadata"]["name"]): item for item in installs}
    for name, item in resolved.items():
        if name == "soda-jax":
            continue
        url = item["download_info"]["url"]
        assert url.startswith(PYPI_FILES), f"{name} would come from {url}, not public PyPI"
        if name in pins:
            assert Version(item["metadata"]["version"]) == pins[name]
    assert resolved["torch"]["metadata"]["version"] == "2.13.0"
    assert resolved["jax"]["metadata"]["version"] == str(pins["jax"])
    if extras == "test,tpu-aot":  # the CPU environment: constraints.txt pins all of it but PyPI torch's CUDA deps
        unpinned = sorted(
            n for n in resolved if n not in pins and n != "soda-jax" and not CUDA_TORCH_DEPENDENCIES.fullmatch(n)
        )
        assert not unpinned, f"resolved but not pinned in constraints.txt: {unpinned}"
    if extras == "gpu":
        assert "jax-cuda12-plugin" in resolved
    if extras == "tpu,cluster":
        assert resolved["libtpu"]["metadata"]["version"] == str(pins["libtpu"])

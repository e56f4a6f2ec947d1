"""A test skipped for a missing system dependency is a skip on a laptop and a failure under CI=true."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
PROBE = """
from system_deps import import_or_skip, needs

@needs("soda-jax-no-such-tool")
def test_needs_a_tool():
    pass

def test_needs_a_module():
    import_or_skip("soda_jax_no_such_module")
"""


def run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {
        "PYTHONPATH": str(TESTS),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider", "-m", "", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_missing_dependency_skips_outside_ci(tmp_path):
    result = run_probe(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout


def test_missing_dependency_fails_under_ci(tmp_path):
    result = run_probe(tmp_path, ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    # a skipif mark is decided in setup, so that one reports as an error: both end the run red
    assert "1 failed, 1 error" in result.stdout and "skipped" not in result.stdout
    assert "soda-jax-no-such-tool" in result.stdout and "soda_jax_no_such_module" in result.stdout

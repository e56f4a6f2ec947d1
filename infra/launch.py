"""Submit an experiment script to a Ray cluster started from infra/cluster-*.yaml.

    python infra/launch.py --cluster infra/cluster-v5p.yaml experiments/soda_600m.py --prefix gs://BUCKET/soda

Runs ``ray job submit`` against the cluster's head (through ``ray attach``-style port forwarding
done by ``ray dashboard``), shipping this checkout as the job's working directory. The experiment
itself runs on the head; each training step runs one process on every host of a TPU slice of
the type it asks for (``tpu="v5p-64"`` in `experiments/defaults.default_train`; infra/README.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

DASHBOARD_PORT = 8265
EXCLUDES = [".venv", "benchmarks/results", "*.egg-info", ".git"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", required=True, help="cluster YAML used with `ray up`")
    parser.add_argument("script", help="experiment script, e.g. experiments/soda_600m.py")
    args, script_args = parser.parse_known_args(argv)

    forward = subprocess.Popen(["ray", "dashboard", args.cluster, "--port", str(DASHBOARD_PORT)])
    try:
        command = [
            "ray", "job", "submit",
            "--address", f"http://127.0.0.1:{DASHBOARD_PORT}",
            "--working-dir", ".",
            "--runtime-env-json", '{"excludes": %s}' % str(EXCLUDES).replace("'", '"'),
            "--", "python", args.script, *script_args,
        ]  # fmt: skip
        return subprocess.call(command)
    finally:
        forward.terminate()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`make demo`: the main CPU job on the bundled default data.

    python experiments/demo.py --prefix ./demo-output [--full] [executor flags...]
"""

import sys

from experiments.hello_executor import summary
from soda_jax.execution import executor_main


def main(argv: list[str]) -> None:
    args = [a for a in argv if a != "--full"]
    executor_main([summary], description="soda-jax demo", args=args)


if __name__ == "__main__":
    main(sys.argv[1:])

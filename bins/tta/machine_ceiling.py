"""Print this machine's fp32 matmul ceiling: speed figures (the demo's time, bench/) are comparable only beside it.

  python bins/tta/machine_ceiling.py    # e.g. "fp32 matmul ceiling: 187 GFLOP/s (2 threads)"
"""

from __future__ import annotations

import argparse

from utils.machine import describe


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    print(describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

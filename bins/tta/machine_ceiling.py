"""Print this machine's fp32 matmul ceiling: speed figures (the demo's time, bench/) are comparable only beside it.

  python bins/tta/machine_ceiling.py    # e.g. "fp32 matmul ceiling: 187 GFLOP/s (2 threads)"
"""

from __future__ import annotations

from utils.cli import entry_point_parser


def main(argv: list[str] | None = None) -> int:
    entry_point_parser(__doc__).parse_args(argv)
    from utils.machine import describe  # torch: after parsing, so --help answers at once

    print(describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

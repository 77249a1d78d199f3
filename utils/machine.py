"""The machine's fp32 matrix-multiply ceiling: speed figures are only comparable beside it.

`bins/tta/machine_ceiling.py` and the demo print it next to wall times, the benchmark table has it as a row,
because machines of one class differ (two 2-core machines of ours measured 187 and 374 GFLOP/s).
"""

from __future__ import annotations

import time

import torch


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best-of-`repeats` GFLOP/s of one fp32 [size, size] @ [size, size] product on the default threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up: thread pool, allocator
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def describe() -> str:
    return f"fp32 matmul ceiling: {matmul_gflops():.0f} GFLOP/s ({torch.get_num_threads()} threads)"

"""The benchmark's own arithmetic: what its "achieved GFLOP/s" rows divide by step time."""

import sys

import torch
import torch.nn.functional as F

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))  # bench/ is scripts, not a package
from run_all import flop_counter  # noqa: E402


def test_flop_counter_counts_cpu_attention_forward_and_backward():
    b, h, s, d = 2, 4, 64, 16
    q, k, v = (torch.randn(b, h, s, d, requires_grad=True) for _ in range(3))
    with flop_counter() as counter:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    product = 2 * b * h * s * s * d  # one [s, d] x [d, s] product (or [s, s] x [s, d]) per batch and head
    # forward: Q K^T and P V; backward (flash attention recomputes P): Q K^T, dV, dP, dQ, dK
    assert counter.get_total_flops() == 2 * product + 5 * product

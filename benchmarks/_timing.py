"""Timing helpers shared by the train-step benchmarks (imported as ``_timing``).

``python benchmarks/X.py`` puts ``benchmarks/`` first on ``sys.path``, so the
scripts import this module directly.
"""

from __future__ import annotations

import statistics
import sys
import time

import jax

from jaxdyn.runtime import tune_host_allocator


def setup_process() -> str:
    """Apply jaxdyn's allocator tuning unless ``--default-malloc`` is on the command line."""
    if "--default-malloc" in sys.argv[1:]:
        return "glibc default"
    return f"tuned={tune_host_allocator()}"  # as jaxdyn's CLI does; see jaxdyn.runtime


def median_ms(call, rounds: int = 7, n: int = 5) -> float:
    """Median over ``rounds`` of the mean time (ms) of ``n`` calls; one warm-up call first.

    jax results are waited for (``block_until_ready``) at the end of each round;
    anything else (PyTorch tensors, None) is synchronous already.
    """

    def wait(r):
        for leaf in jax.tree_util.tree_leaves(r):
            if isinstance(leaf, jax.Array):
                leaf.block_until_ready()

    wait(call())
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            r = call()
        wait(r)
        out.append((time.perf_counter() - t) / n * 1e3)
    return statistics.median(out)

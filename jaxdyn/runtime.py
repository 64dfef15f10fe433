"""Process-level settings for the command line, experiments and benchmarks.

Nothing in the library calls this module: a program opts in once, at its start
(``jaxdyn``'s CLI and experiment scripts do, unless given ``--default-malloc``).

Why: XLA:CPU allocates an executable's temporary buffers afresh on every call.
At the thesis shape one train step needs several 28 MB logits-sized buffers, and
glibc serves allocations that large (or any allocation made by a worker thread
whose arena cannot hold it) with a fresh ``mmap``; the kernel then zero-fills
every page on first touch and ``munmap`` returns it on free: about 17,500 page
faults per step (``python benchmarks/profile_step.py --default-malloc``). Keeping large blocks in one heap that is never trimmed removes
them; a thesis-shaped train step then takes 80.9 instead of 107.7 ms on two cores
(``python benchmarks/train_step.py`` with and without ``--default-malloc``;
``benchmarks/RESULTS.md``). PyTorch gains a few ms from the same setting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt(3) parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_host_allocator(
    *, mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1, arena_max: int = 1
) -> bool:
    """Keep large host buffers in glibc's heap instead of fresh ``mmap`` calls.

    Sets glibc's ``M_MMAP_THRESHOLD`` (allocations below it come from the heap),
    ``M_TRIM_THRESHOLD`` (free memory at the top of the heap kept rather than
    returned to the system) and ``M_ARENA_MAX`` (one arena, so allocations made by
    XLA's worker threads use the same growable heap). The cost: the process keeps
    up to ``trim_threshold`` bytes of freed memory instead of returning it.

    Args:
      mmap_threshold: bytes; allocations at least this large still use ``mmap``.
      trim_threshold: bytes of free heap top kept before trimming.
      arena_max: number of malloc arenas.

    Returns:
      True when all three settings were applied; False on a platform without
      glibc's ``mallopt`` (macOS, musl, Windows), where nothing is changed.
    """
    for name, value in (
        ("mmap_threshold", mmap_threshold),
        ("trim_threshold", trim_threshold),
        ("arena_max", arena_max),
    ):
        if not 0 < value < 1 << 31:
            raise ValueError(f"{name} must be in [1, 2**31 - 1], got {value}")
    if not sys.platform.startswith("linux"):
        return False
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        mallopt = ctypes.CDLL(path).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = True
    for param, value in (
        (_M_MMAP_THRESHOLD, mmap_threshold),
        (_M_TRIM_THRESHOLD, trim_threshold),
        (_M_ARENA_MAX, arena_max),
    ):
        ok = bool(mallopt(param, value)) and ok
    return ok

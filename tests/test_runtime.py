import platform
import subprocess
import sys

import pytest

from jaxdyn.runtime import tune_host_allocator

# Allocate 64 MB in a worker thread, as XLA's executor does with its temporaries,
# and ask glibc how many bytes it holds in mmap-ed blocks (freed, and so page
# faulted afresh, on every call) while the block is live.
_PROBE = """
import ctypes, sys, threading
if sys.argv[1] == "tuned":
    from jaxdyn.runtime import tune_host_allocator
    assert tune_host_allocator()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
out = []
def work():
    p = libc.malloc(64 << 20)
    out.append(libc.mallinfo2().hblkhd)
    libc.free(p)
t = threading.Thread(target=work); t.start(); t.join()
print(out[0])
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc mallopt/mallinfo2",
)
def test_tuned_allocator_keeps_large_buffers_out_of_fresh_mmaps():
    def mmapped_bytes(mode):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip())

    assert mmapped_bytes("default") >= 64 << 20
    assert mmapped_bytes("tuned") < 64 << 20


def test_rejects_out_of_range_settings():
    with pytest.raises(ValueError, match="arena_max"):
        tune_host_allocator(arena_max=0)
    with pytest.raises(ValueError, match="mmap_threshold"):
        tune_host_allocator(mmap_threshold=1 << 31)

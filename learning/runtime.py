"""Process-wide settings that make CPU training fast.

* torch intra-op threads: 1 by default. These networks are small; with more threads each op pays
  synchronisation, and on a machine shared with simulators the threads oversubscribe the cores.
* glibc malloc: by default every allocation above a (dynamic, at most 32 MB) threshold is a fresh
  mmap, so large activations (e.g. 10 tasks x 2560 samples x 256 units) are page-faulted in again
  at every op. Serving them from the heap and keeping freed memory lets them be reused; this made
  the MT10-size update ~1.4x faster (bench/update_speed.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_configured = False


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory; False if unavailable."""
    global _configured
    if _configured:
        return True
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError):
        return False
    _configured = ok
    return ok


def configure_runtime(threads: int | None) -> None:
    """Apply the settings above (threads=None leaves torch's choice)."""
    if threads is not None:
        torch.set_num_threads(threads)
    keep_freed_memory()

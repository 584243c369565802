"""Process-wide settings that make CPU training fast.

* torch intra-op threads: 1 by default. These networks are small; with more threads each op pays
  synchronisation, and on a machine shared with simulators the threads oversubscribe the cores.
  With more (`--torch_threads N`), training gives one up while the background evaluation worker
  is computing (`TrainingThreads`).
* glibc malloc: by default every allocation above a (dynamic, at most 32 MB) threshold is a fresh
  mmap, so large activations (e.g. 10 tasks x 2560 samples x 256 units) are page-faulted in again
  at every op. Serving them from the heap and keeping freed memory lets them be reused; this made
  the MT10-size update ~1.4x faster (bench/update_speed.py).
* denormal floats flushed to zero: Adam's first moment of a weight whose gradient stays zero (a
  dead ReLU unit) decays by 0.9 a step into the denormal range (below 1.2e-38); after 14 Jaco
  epochs 12-21% of the first moments of the hidden and output layers were denormal. CPUs that
  handle denormal operands in microcode (Intel's, per Agner Fog's microarchitecture manual) pay
  on the order of a hundred cycles an instruction for them; this machine's AMD Zen 4 does not
  (measured: no difference). Flushing changes only values below 1.2e-38.
  The mode is per thread: it is set before torch starts its intra-op threads, which inherit it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

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
    """Apply the settings above (threads=None leaves torch's choice). Call it before the
    process's first parallel torch op, so the intra-op threads start in flush-to-zero mode."""
    torch.set_flush_denormal(True)
    if threads is not None:
        torch.set_num_threads(threads)
    keep_freed_memory()


class TrainingThreads:
    """Keeps the training process at `threads` intra-op threads, one fewer while `busy()` (the
    background evaluation worker computing on a core of its own): spinning threads that share a
    core with another process slow every op down by several times.

    Switching is safe for reproducibility: torch's CPU kernels split work by output blocks, not
    by partial sums, so results do not depend on the thread count (checked by tests/test_sac.py
    and tests/test_cli.py)."""

    def __init__(self, threads: int, busy: Callable[[], bool]) -> None:
        self.threads = threads
        self.busy = busy
        self._current = torch.get_num_threads()

    def __call__(self) -> None:
        want = max(1, self.threads - 1) if self.busy() else self.threads
        if want != self._current:
            torch.set_num_threads(want)
            self._current = want

"""The C allocator's settings for a process that trains: keep freed memory for reuse.

glibc's ``malloc`` returns large freed blocks to the kernel: blocks above the mmap threshold are
unmapped when freed, and the top of the heap is trimmed once more than the trim threshold is free.
A training step frees its activations and gradients at the end and allocates the same sizes again
at the start of the next step, so every step pays for fresh pages: on the CPU, at 128 px and
batch 16, 27,000-35,000 minor page faults and 70-90 ms of kernel time a step, 15-20 % of its wall
time (``docs/performance.md`` section 7). :func:`retain_freed_memory` fixes both thresholds, the way PyTorch's
CPU performance guide obtains the same effect with jemalloc or tcmalloc, so that freed blocks stay in
the process and the next step reuses them. The numbers are unchanged; only the allocator's
bookkeeping differs. The peak memory stays the same (measured: 788 MiB for the default ``adapt``,
789 before), but the process no longer shrinks between steps.

Core layer: imports only the standard library (no torch), so the CLI can call it before any
command runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: ``mallopt`` parameter numbers (glibc's ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap and are reused, larger ones are mapped on their own.
#: 32 MiB is glibc's largest allowed threshold on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``).
MMAP_THRESHOLD = 32 * 2**20
#: Never trim the heap's free top (the largest value ``mallopt`` takes).
TRIM_THRESHOLD = 2**31 - 1


def retain_freed_memory() -> bool:
    """Set glibc's mmap threshold to :data:`MMAP_THRESHOLD` and its trim threshold to
    :data:`TRIM_THRESHOLD` for this process.

    Both must be set together: setting either one turns off glibc's own adjustment of the mmap
    threshold, which otherwise rises with the sizes freed; with the trim threshold alone, every
    block above 128 KiB would be mapped and unmapped on each use (measured: about four times the
    default's page faults and kernel time in a supervised step, ``docs/performance.md`` section 7).

    Returns True where the settings were applied; False where the C library is not glibc (macOS,
    musl, Windows), which keeps its own allocator's behaviour, and where the user has tuned
    glibc's allocator already (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or a
    ``glibc.malloc`` tunable in ``GLIBC_TUNABLES``), whose settings are left as they are.
    """
    if not sys.platform.startswith("linux") or _user_tuned():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has mallopt as a stub)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _user_tuned() -> bool:
    """True when the environment already sets glibc's malloc thresholds."""
    return ("MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ
            or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""))


__all__ = ["retain_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

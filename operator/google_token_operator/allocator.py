"""Large freed blocks go back to the system (glibc's allocator tuned at start).

glibc serves a block of 128 KiB or more by mmap and unmaps it when freed, but raises that
threshold to the size of each such block freed (up to 32 MiB): after the first 1 MiB Secret
is read, later ones land in the heap, where a page of them stays resident for good (measured:
+23 MB for 300 Secrets of 1 MiB listed 10 a page). A fixed threshold keeps every Secret a
tenant labels a passing cost, whatever the number.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold; False where the C library is not glibc (nothing to do)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))

"""glibc's allocator, set for a server that moves megabytes at a time.

By default glibc gives every buffer over 128 KiB-32 MiB its own mmap and, on the main
arena (the event loop's thread), hands freed memory back to the kernel as soon as more
than a little sits at the top of the heap. A WADO-RS series is read, decrypted, framed and
sent one megabyte buffer after another, so every buffer was fresh pages from the kernel,
page-faulted and zeroed: measured here, a series went out at ~170 MB/s instead of
~600 MB/s. Keeping up to TRIM_THRESHOLD of freed memory in the heap makes the buffers
reuse warm pages; the cost is that much more resident memory per process at most."""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # buffers up to this size come from the heap
TRIM_THRESHOLD = 64 << 20  # freed memory kept for reuse before it goes back to the kernel
TOP_PAD = 16 << 20


def tune() -> bool:
    """Apply the settings to this process (glibc only); False where they do not apply."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))

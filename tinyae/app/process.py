"""Process-wide settings, made by the programs that run tinyae (the ``tinyae`` command, the benchmarks), never
by importing it: a library that changed them would change every program that imports it.

* ``malloc`` keeps freed memory for reuse (``keep_freed_memory``; ``TINYAE_KEEP_FREED_MEMORY=0`` opts out);
* NumPy's OpenBLAS runs its parallel work on OpenMP's threads, which the compiled loops share
  (``tinyae.kernels.threads.share_with_blas``): one pool on the cores instead of two that spin against each
  other;
* the BLAS and OpenMP thread pools get ``threads`` threads (``threadpoolctl``), by default one per physical
  core the process may run on (``physical_cores``).

matplotlib's backend is not one of them: the figures draw on their own Agg canvases (``figures``).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from threadpoolctl import threadpool_limits

from ..backend import env_flag
from ..kernels.threads import share_with_blas

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
CPU_TOPOLOGY = Path("/sys/devices/system/cpu")


def configure_process(threads: int | None = None) -> int:
    """Make the settings of a program that trains: malloc keeps freed memory, OpenBLAS and the compiled loops
    share OpenMP's threads, and the BLAS and OpenMP pools get ``threads`` threads (default:
    ``physical_cores()``; set after the sharing, which loads the OpenMP runtime). Returns the number of
    threads."""
    keep_freed_memory()
    threads = threads or physical_cores()
    share_with_blas()
    threadpool_limits(limits=threads)
    return threads


def physical_cores(topology: Path = CPU_TOPOLOGY) -> int:
    """The physical cores among the CPUs this process may run on: CPUs that share a core (SMT siblings, as
    listed in ``cpuN/topology/core_cpus_list``, or ``thread_siblings_list`` on older kernels) count once.
    Where the topology cannot be read (not Linux), ``os.cpu_count()``."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        folder = topology / f"cpu{cpu}" / "topology"
        for name in ("core_cpus_list", "thread_siblings_list"):
            try:
                cores.add((folder / name).read_text().strip())
                break
            except OSError:
                continue
        else:
            return len(allowed)  # no topology: count every CPU allowed
    return max(len(cores), 1)


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks for reuse rather than hand them back to the OS at once.

    A training step allocates and frees the same large temporaries every time (im2col matrices of ~13 MB
    for the conv VAE). By default glibc returns the top of its heap to the OS whenever more than about
    twice the largest freed block is free, so the next step takes every page again as a fresh page fault:
    ~10,000 a step for the conv VAE, a third of its time on a 2-core VM. Here blocks under 32 MiB come
    from the heap, and up to 128 MiB of free heap is kept. ``TINYAE_KEEP_FREED_MEMORY=0`` (or false, no,
    off) leaves malloc as it is. Returns whether the settings were applied (False on other C libraries, or
    when switched off).
    """
    if not env_flag("TINYAE_KEEP_FREED_MEMORY", True):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
    except (ValueError, OSError, AttributeError):  # not glibc, or no confstr on this platform
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 128 << 20))

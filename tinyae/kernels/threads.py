"""The compiled loops' threads: OpenMP's, shared with NumPy's BLAS, so that one pool of threads serves both.

Two pools on the same cores slow each other down: after a matrix product OpenBLAS's threads spin for ~0.1 s
waiting for the next one, GNU OpenMP's for ~8 ms after a parallel region, and a thread that needs a core on
which another one spins waits for the scheduler. Measured on a 2-core EPYC VM (the MLP VAE's training step,
2 threads): with the loops on OpenMP's threads beside OpenBLAS's own, a step took 11× longer (50.7 ms against
4.4). OpenBLAS (0.3.27 on) can run its parallel work on threads of the caller's
(``openblas_set_threads_callback_function``): ``share_with_blas`` gives it OpenMP's, and from then on the
compiled loops share out their large calls among the same threads (``cloop.PARALLEL_MIN_SIZE``).

That is a process-wide setting: a program that trains calls ``share_with_blas`` once, before it limits the
thread pools (``tinyae.app.process.configure_process`` is the place): it loads the OpenMP runtime, and
threadpoolctl limits only the libraries loaded when it is called. Importing tinyae never calls it. Until then,
and wherever it can't be made (a compiler without OpenMP, another BLAS, an OpenBLAS without the callback), the
loops run on the calling thread, as do those of a child forked afterwards (GNU OpenMP's threads don't survive
a fork: a parallel region there would hang), whose OpenBLAS goes back to its own threads. The loops' results
are the same bits on any number of threads. (The thread limit is OpenMP's setting of the thread that set it:
train in the thread that called ``threadpool_limits``.)
"""

from __future__ import annotations

import ctypes
import os

from threadpoolctl import threadpool_info

from . import compiler

parallel = False  # whether the compiled loops share out large calls among OpenMP's threads (share_with_blas)

CALLBACK = r"""#include <omp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*tinyae_job)(int thread, void *data, int buffer);
struct tinyae_job_run { tinyae_job job; int thread; void *data; int buffer; };
long long tinyae_blas_calls;  /* the parallel BLAS calls this callback ran */

static void *tinyae_run(void *argument) {
    struct tinyae_job_run *run = argument;
    run->job(run->thread, run->data, run->buffer);
    return NULL;
}

/* OpenBLAS's threads callback: run its `count` jobs (job j's data at jobs + j * size) all at once, each on a
   thread of its own: they wait for each other. */
void tinyae_blas_jobs(int sync, tinyae_job job, int count, size_t size, void *jobs, int buffer) {
    (void)sync;  /* (always 1: OpenBLAS waits for the jobs' end) */
    __atomic_add_fetch(&tinyae_blas_calls, 1, __ATOMIC_RELAXED);
    if (count <= 0)
        return;
    if (!omp_in_parallel() && !omp_get_dynamic() && count <= omp_get_thread_limit()) {
#pragma omp parallel num_threads(count)  /* (then OpenMP gives it `count` threads, or aborts) */
        job(omp_get_thread_num(), (char *)jobs + (size_t)omp_get_thread_num() * size, buffer);
        return;
    }
    pthread_t threads[count];  /* where OpenMP might give fewer threads: threads of its own */
    struct tinyae_job_run runs[count];
    for (int j = 0; j < count; j++) {
        runs[j] = (struct tinyae_job_run){job, j, (char *)jobs + (size_t)j * size, buffer};
        if (j > 0 && pthread_create(&threads[j], NULL, tinyae_run, &runs[j]) != 0) {
            fputs("tinyae: no thread for a job of OpenBLAS (pthread_create failed)\n", stderr);
            abort();
        }
    }
    tinyae_run(&runs[0]);
    for (int j = 1; j < count; j++)
        pthread_join(threads[j], NULL);
}
"""
SETTER = "openblas_set_threads_callback_function"
AFFIXES = [("", ""), ("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "_64")]  # (OpenBLAS builds' names)
_shared: list = []  # the setters of the OpenBLAS libraries now running their jobs on OpenMP's threads
_fork_handled = False


def share_with_blas() -> bool:
    """Run the parallel work of every OpenBLAS loaded (NumPy's) on OpenMP's threads, and the compiled loops'
    large calls too; returns whether it did. Nothing changes where the compiler lacks OpenMP (or
    TINYAE_CPU_KERNELS=numpy) or no OpenBLAS here takes the callback."""
    global parallel, _fork_handled
    if _shared:
        return True
    if not compiler.toolchain().parallel:
        return False
    setters = [setter for pool in threadpool_info() if pool.get("internal_api") == "openblas"
               for setter in [_setter(pool["filepath"])] if setter is not None]
    if not setters:
        return False
    library = compiler.library(CALLBACK, [])
    if not isinstance(library, ctypes.CDLL):  # (None: no compiler, after a warning)
        if library is not None:
            compiler.warn(f"tinyae's OpenBLAS callback does not compile, so the CPU kernels run on one "
                          f"thread; this is a bug in tinyae, please report it:\n{library[:1000]}")
        return False
    for setter in setters:
        setter(ctypes.cast(library.tinyae_blas_jobs, ctypes.c_void_p))
    _shared.extend(setters)
    if not _fork_handled:
        os.register_at_fork(after_in_child=stop_sharing)
        _fork_handled = True
    parallel = True
    return True


def stop_sharing() -> None:
    """OpenBLAS back on its own threads, the compiled loops on the calling thread (as before share_with_blas);
    what a forked child does first."""
    global parallel
    parallel = False
    for setter in _shared:
        setter(None)
    _shared.clear()


def _setter(path: str):
    """The callback setter of the OpenBLAS library at ``path`` (ctypes), or None if it has none."""
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix, suffix in AFFIXES:
        setter = getattr(library, f"{prefix}{SETTER}{suffix}", None)
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_void_p], None
            return setter
    return None

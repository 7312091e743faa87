"""The compiled loops on several threads (``tinyae.kernels.threads``): once NumPy's OpenBLAS runs its jobs on
OpenMP's threads, large calls are shared out among them in whole blocks; every kernel gives the same bits on
1, 2 or 3 threads (3: oversubscribed here), in any layout and dtype, and so does Adam over several steps;
each thread's floating-point exceptions are reported, and each computes in the caller's rounding mode; a
thread limit set after sharing reaches the loops; a child forked after parallel work runs on. Without OpenMP
(a compiler refusing -fopenmp) all runs on one thread, silently, with the same bits, from cache entries of
its own."""

import contextlib
import ctypes
import os
import platform
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from threadpoolctl import threadpool_limits

import tinyae as ta
from tests.conftest import BACKEND
from tests.kernels.test_compiler import executable, forget, logging_cc, runs
from tests.kernels.test_differential import KERNELS, NAMES, assert_same_bits, calls, run_compiled
from tinyae import optim
from tinyae.kernels import cloop, compiler, threads

pytestmark = pytest.mark.skipif(BACKEND != "numpy", reason="the compiled loops: tested in the numpy run")

BLOCK, MIN_SIZE = cloop.BLOCK, cloop.PARALLEL_MIN_SIZE
THREADS = (1, 2, 3)
rng = np.random.default_rng(11)


class ThreadOfEachElement(cloop.CompiledLoop):
    """A loop whose every element records the OpenMP thread that computed it (0 without OpenMP)."""
    math_calls = frozenset()  # (tinyae_thread() is a macro of the loops' header, no library call)
    vectorizes = True

    def __init__(self):
        super().__init__("thread_of_each_element", [("T", "x")], [("T", "y")], "y = x + tinyae_thread()")


def who() -> cloop.CompiledLoop:
    """A new such loop: it builds its library anew (a loop keeps the function it loaded)."""
    return ThreadOfEachElement()


def fresh_loop(name: str) -> cloop.CompiledLoop:
    """Kernel ``name``'s loop, built anew."""
    kernel = KERNELS[name]
    return cloop.CompiledLoop(name, kernel.inputs, kernel.outputs, kernel.operation, kernel.preamble)


WHO = who()


@pytest.fixture(scope="module")
def openmp():
    if not compiler.toolchain().parallel:
        pytest.skip("the C compiler here has no OpenMP: the loops run on one thread")


@contextlib.contextmanager
def sharing_out():
    """The loops share out large calls (as after threads.share_with_blas), OpenBLAS left alone."""
    before, threads.parallel = threads.parallel, True
    try:
        yield
    finally:
        threads.parallel = before


@pytest.fixture
def parallel(openmp):
    with sharing_out():
        yield


@pytest.fixture
def shared(openmp):
    """OpenBLAS's jobs and the loops on OpenMP's threads, for the test only."""
    if not threads.share_with_blas():
        pytest.skip("no OpenBLAS with a threads callback here")
    yield
    threads.stop_sharing()


def on_threads(count: int):
    """OpenMP's threads limited to ``count`` (threadpoolctl, as ``tinyae train --threads`` limits them)."""
    return threadpool_limits(limits=count, user_api="openmp")


def expected_threads(sizes: list[int], count: int) -> np.ndarray:
    """The thread of each element (tensors back to back): block b of a tensor (its elements from b·BLOCK)
    belongs to the thread whose share of all the elements, [total·k/K, total·(k+1)/K), holds its first."""
    total = sum(sizes)
    count = count if total >= MIN_SIZE else 1
    owner, offset = np.zeros(total), 0
    for size in sizes:
        for start in range(0, size, BLOCK):
            first = offset + start
            thread = max(k for k in range(count) if total * k // count <= first)
            owner[first: offset + min(start + BLOCK, size)] = thread
        offset += size
    return owner


# Who computes what ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count", THREADS)
@pytest.mark.parametrize("size", [MIN_SIZE - 1, MIN_SIZE, 100_003])
def test_large_calls_are_shared_out_in_whole_blocks(parallel, count, size):
    with on_threads(count):
        got = WHO(np.zeros(size))
    np.testing.assert_array_equal(got, expected_threads([size], count))
    assert len(set(got)) == (count if size >= MIN_SIZE else 1)


@pytest.mark.parametrize("count", THREADS)
@pytest.mark.parametrize("sizes", [[40_000, 7, 2_049, 0, 30_001], [3_000] * 11 + [1], [5, 1_000_000]])
def test_foreach_shares_out_the_blocks_of_all_tensors_together(parallel, count, sizes):
    xs = [np.zeros(size, np.float32) for size in sizes]
    out = np.full(sum(sizes), -1, np.float32)
    with on_threads(count):
        assert WHO.foreach(xs, out) is None
    np.testing.assert_array_equal(out, expected_threads(sizes, count))


def test_the_loops_run_on_the_calling_thread_until_shared(openmp):
    assert not threads.parallel
    with on_threads(2):
        assert not WHO(np.zeros(4 * MIN_SIZE)).any()


def test_a_thread_limit_set_after_sharing_reaches_the_loops(shared):
    for count in THREADS:
        with on_threads(count):
            assert set(WHO(np.zeros(4 * MIN_SIZE))) == set(range(count))


# The same bits on any number of threads --------------------------------------------------------------------

LARGE_SHAPES = [(MIN_SIZE,), (181, 187), (3, 97, 113), (40_009,)]  # 32768, 33847, 32883, 40009 elements


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_every_kernel_gives_the_same_bits_on_1_2_and_3_threads(openmp, name, data):
    """Any layout the differential tests draw, both dtypes, special values: the compiled loop on 2 and 3
    threads computes the bits it computes on one (or refuses the arguments alike)."""
    call = data.draw(calls(name, shapes=LARGE_SHAPES))
    results = {}
    with np.errstate(all="ignore"), sharing_out():
        for count in THREADS:
            with on_threads(count):
                compiled = run_compiled(call)
                fresh = compiled if call.kernel.in_place else run_compiled(call, outputs=False)
                results[count] = compiled, fresh
    for count in THREADS[1:]:
        for got, want in zip(results[count], results[1]):
            assert (got is NotImplemented) == (want is NotImplemented)
            if want is not NotImplemented:
                for index, (a, b) in enumerate(zip(got, want)):
                    assert_same_bits(a, b, f"{count} threads against 1, output {index}")


def adam_run(count: int, dtype) -> list[np.ndarray]:
    """Parameters and moments after five Adam steps (the fused multi-tensor update) on ``count`` threads."""
    local = np.random.default_rng(5)
    shapes = [(223, 101), (97,), (3, 1_001), (1,), (20, 400)]  # 33,624 parameters
    params = [ta.tensor(local.standard_normal(shape).astype(dtype), requires_grad=True) for shape in shapes]
    optimizer = optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    with on_threads(count):
        for _ in range(5):
            for param in params:
                param.grad = local.standard_normal(param.shape).astype(dtype)
            optimizer.step()
    state = [optimizer.state[p][key] for p in params for key in ("exp_avg", "exp_avg_sq")]
    return [np.array(p.data) for p in params] + [np.array(s) for s in state]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_gives_the_same_bits_on_any_number_of_threads(parallel, dtype):
    with on_threads(3):
        assert set(WHO(np.zeros(33_624))) == {0, 1, 2}  # (a call of that size is shared out)
    one = adam_run(1, dtype)
    for count in THREADS[1:]:
        for index, (got, want) in enumerate(zip(adam_run(count, dtype), one)):
            assert_same_bits(got, want, f"{count} threads, array {index}")


# Floating-point state --------------------------------------------------------------------------------------

def test_each_threads_floating_point_exceptions_are_reported(parallel):
    scalars = (0.1, 0.999, 0.001, 1e-3, 0.05, 1e-8, 0.0, 1.0)
    adam = KERNELS["adam_update"].cpu_loop
    with on_threads(3), warnings.catch_warnings():
        warnings.simplefilter("error")
        for tensor, index in ((0, 0), (2, -1)):  # in the first thread's share, in the third's
            grads = [rng.standard_normal(20_000).astype(np.float32) for _ in range(3)]
            state = [[np.zeros_like(g) for g in grads] for _ in range(3)]
            grads[tensor][index] = 3e38  # g² overflows there alone
            with pytest.raises(RuntimeWarning, match="overflow encountered in adam_update"):
                adam.foreach(grads, *scalars, *state)
            grads[tensor][index] = 1.0  # a clean call after it: no flag left over in any thread
            state = [[np.zeros_like(g) for g in grads] for _ in range(3)]
            assert adam.foreach(grads, *scalars, *state) is None
        out = np.full(60_000, 1e30, np.float32)  # x·x overflows at the end alone
        x = np.ones(60_000, np.float32)
        out[:-1] = 0.5
        with np.errstate(over="warn"):  # (fresh outputs: a call that raised is left to the twin)
            assert KERNELS["sigmoid_backward"].cpu_loop(x, out) is NotImplemented
        with np.errstate(over="ignore"):
            assert KERNELS["sigmoid_backward"].cpu_loop(x, out) is not NotImplemented


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not os.confstr("CS_GNU_LIBC_VERSION"),
                    reason="FE_UPWARD's value is x86-64 glibc's")
def test_every_thread_computes_in_the_callers_rounding_mode(parallel):
    fesetround, upward, nearest = ctypes.CDLL(None).fesetround, 0x800, 0
    grad, out = (rng.standard_normal(3 * MIN_SIZE).astype(np.float32) for _ in range(2))
    loop = KERNELS["sigmoid_backward"].cpu_loop
    with on_threads(3):
        loop(grad, out)  # (OpenMP's threads exist before the rounding mode changes)
        results = {}
        for count in (1, 3):
            fesetround(upward)
            try:
                with on_threads(count):
                    results[count] = loop(grad, out)
            finally:
                fesetround(nearest)
        nearest_result = loop(grad, out)
    assert not np.array_equal(results[1], nearest_result)  # the mode matters for these values
    assert_same_bits(results[3], results[1], "3 threads against 1, rounding upward")


# Without OpenMP --------------------------------------------------------------------------------------------

REFUSES_OPENMP = ('for argument in "$@"; do [ "$argument" = -fopenmp ] && '
                  '{ echo "cc: error: unrecognized command-line option -fopenmp" >&2; exit 1; }; done\n'
                  'exec cc "$@"\n')


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYAE_CPU_KERNELS", raising=False)
    forget()
    yield monkeypatch
    forget()


def some_results() -> list[np.ndarray]:
    """A kernel calling exp and log1p, and Adam's foreach, on arrays to share out (loops built anew)."""
    local = np.random.default_rng(2)
    x, target = local.standard_normal(70_001).astype(np.float32), local.random(70_001).astype(np.float32)
    grads = [local.standard_normal(size).astype(np.float64) for size in (40_000, 3, 9_999)]
    flats = [local.standard_normal(50_002) for _ in range(2)] + [np.abs(local.standard_normal(50_002))]
    scalars = (0.1, 0.999, 0.001, 1e-2, 0.05, 1e-8, 0.0, 1.0)
    assert fresh_loop("adam_update").foreach(grads, *scalars, *flats) is None
    return [*fresh_loop("bce_with_logits")(x, target), *flats]


def test_without_openmp_all_runs_on_one_thread_silently_with_the_same_bits(fresh, tmp_path):
    fresh.setattr(threads, "parallel", True)
    with on_threads(2):
        shared_out = some_results()
    fresh.setenv("CC", executable(tmp_path / "cc", REFUSES_OPENMP))
    fresh.setenv("TINYAE_CACHE_DIR", str(tmp_path / "other-cache"))
    forget()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compiler.toolchain().parallel == [] and compiler.toolchain().problem is None
        with on_threads(2):
            one_thread = some_results()
            assert not who()(np.zeros(4 * MIN_SIZE)).any()
        assert not threads.share_with_blas() and not threads._shared
    for index, (got, want) in enumerate(zip(one_thread, shared_out)):
        assert_same_bits(got, want, f"without OpenMP against 2 threads, array {index}")


def test_the_cache_keeps_the_build_without_openmp_apart(fresh, tmp_path, openmp):
    """Two processes of one compiler, with OpenMP and without (its flag refused here by an extra option it
    doesn't know), sharing a cache folder: the second builds its own library, without OpenMP."""
    cc, log = logging_cc(tmp_path)
    fresh.setenv("CC", cc)
    assert who()(np.zeros(5)) is not NotImplemented
    with_openmp = {entry.name for entry in (tmp_path / "cache" / "kernels").glob("*.so")}
    forget()
    fresh.setattr(compiler, "OPENMP", ["-fopenmp", "--no-such-option"])
    builds = len(runs(log))
    assert who()(np.zeros(5)) is not NotImplemented and compiler.toolchain().parallel == []
    assert sum("-shared" in run for run in runs(log)[builds:]) >= 2  # the loop, built again (and the probe)
    library = compiler.library(WHO.source((np.dtype(np.float64),) * 2, (True, True), False), [])
    assert not hasattr(library, "omp_get_max_threads")  # (an OpenMP build links the runtime's)
    assert with_openmp <= {entry.name for entry in (tmp_path / "cache" / "kernels").glob("*.so")}


# Sharing with OpenBLAS -------------------------------------------------------------------------------------

def blas_calls() -> int:
    library = compiler.library(threads.CALLBACK, [])
    return ctypes.c_longlong.in_dll(library, "tinyae_blas_calls").value


def test_openblas_runs_its_jobs_on_openmps_threads_once_shared(openmp):
    a = rng.standard_normal((600, 700)).astype(np.float32)
    with threadpool_limits(limits=2):
        alone = a @ a.T
        if not threads.share_with_blas():
            pytest.skip("no OpenBLAS with a threads callback here")
        try:
            assert threads.parallel and threads.share_with_blas()  # (a second call changes nothing)
            before = blas_calls()
            assert_same_bits(a @ a.T, alone, "OpenBLAS on OpenMP's threads against its own")
            assert blas_calls() > before
        finally:
            threads.stop_sharing()
        before = blas_calls()
        assert_same_bits(a @ a.T, alone, "OpenBLAS on its own threads again")
    assert blas_calls() == before and not threads.parallel


CHILD = """
import os, signal, sys
signal.alarm(30)  # (a hang fails the test)
import numpy as np
from threadpoolctl import threadpool_limits
from tinyae.kernels import all_kernels, compiler, threads
import ctypes
threadpool_limits(2)
a = np.random.default_rng(0).standard_normal((600, 700)).astype(np.float32)
alone = a @ a.T  # on OpenBLAS's own threads
if not threads.share_with_blas():
    print("not shared"); sys.exit(0)
threadpool_limits(2)
x = np.linspace(-3, 3, 200_001, dtype=np.float32)
relu = all_kernels()["relu_forward"].cpu_loop
product, positive = a @ a.T, relu(x)
assert np.array_equal(product, alone), "OpenBLAS on OpenMP's threads computed other bits"
calls = ctypes.c_longlong.in_dll(compiler.library(threads.CALLBACK, []), "tinyae_blas_calls")
assert calls.value > 0, "OpenBLAS did not call back"
{child}
"""
FORK = """
pid = os.fork()
if pid == 0:  # a parallel region here would hang: GNU OpenMP's threads are the parent's
    signal.alarm(20)
    ok = np.array_equal(a @ a.T, product) and np.array_equal(relu(x), positive) and not threads.parallel
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


def run_child(code: str, **environment) -> str:
    result = subprocess.run([sys.executable, "-c", CHILD.format(child=code)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, **environment})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_child_forked_after_parallel_work_runs_on(openmp):
    output = run_child(FORK)
    if output == "not shared":
        pytest.skip("no OpenBLAS with a threads callback here")
    assert output == "child 0"


def test_where_openmp_may_give_fewer_threads_each_job_gets_a_thread_of_its_own(openmp):
    """OMP_THREAD_LIMIT (or OMP_DYNAMIC=true) lets OpenMP give a region fewer threads than asked; OpenBLAS's
    jobs wait for each other, so they run on threads of their own instead (else the product would hang)."""
    output = run_child("print('done')", OMP_THREAD_LIMIT="1")
    if output == "not shared":
        pytest.skip("no OpenBLAS with a threads callback here")
    assert output == "done"  # (and the child checked the product's bits)

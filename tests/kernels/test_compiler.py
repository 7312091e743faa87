"""The compiler behind the CPU kernels: libraries cached on disk (a second process compiles nothing; a
tampered library is rebuilt, never loaded; the folder is private), a hanging compiler stopped with its whole
process group, any failure (bad $CC, no compiler, a library that won't load, an unusable cache) one warning
and the twins, TINYAE_CPU_KERNELS, and the bodies a Kernel accepts."""

import ctypes
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyae import kernels
from tinyae.kernels import cloop, compiler

rng = np.random.default_rng(3)
x = rng.standard_normal(2048).astype(np.float32)


def forget():
    compiler.toolchain.cache_clear()
    cloop.vector_math_available.cache_clear()


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """What a new process knows about the compiler (nothing), a cache folder of the test's own; monkeypatch
    to set $CC and the like."""
    monkeypatch.setenv("TINYAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYAE_CPU_KERNELS", raising=False)
    forget()
    yield monkeypatch
    forget()


def executable(path: Path, text: str) -> str:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return str(path)


def logging_cc(tmp_path: Path) -> tuple[str, Path]:
    """A $CC that logs its arguments, a line per run, then runs cc."""
    log = tmp_path / "cc.log"
    return executable(tmp_path / "logging-cc", f'echo "$*" >> "{log}"\nexec cc "$@"\n'), log


def runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def doubling(name="double", body="y = 2 * x"):
    return cloop.CompiledLoop(name, [("T", "x")], [("T", "y")], body)


# The cache ------------------------------------------------------------------------------------------------

CHILD = """
import numpy as np
from tinyae import kernels
found = kernels.all_kernels()
x = np.linspace(-3, 3, 4099, dtype=np.float32)
y = found["relu_forward"].cpu_loop(x)
loss, slope = found["bce_with_logits"].cpu_loop(x, np.full_like(x, 0.25))
want_loss, want_slope = found["bce_with_logits"].twin(x, np.full_like(x, 0.25))
assert np.array_equal(y, np.maximum(x, 0))
np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
np.testing.assert_allclose(slope, want_slope, rtol=1e-6, atol=1e-7)
"""


def test_a_second_process_loads_the_kernels_without_compiling(tmp_path):
    cc, log = logging_cc(tmp_path)
    environment = {**os.environ, "CC": cc, "TINYAE_CACHE_DIR": str(tmp_path / "cache")}
    environment.pop("TINYAE_CPU_KERNELS", None)
    for _ in range(2):
        first = runs(log)
        subprocess.run([sys.executable, "-W", "error", "-c", CHILD], env=environment, check=True, timeout=60)
    compiled = [run for run in first if "-shared" in run]
    assert len(compiled) >= 3  # the probe, relu_forward, bce_with_logits (and the vector-math probe)
    assert runs(log)[len(first):] == ["--version"]  # the second process: its compiler's identity, no build


def test_entries_are_a_library_and_its_digest_in_a_private_folder(fresh, tmp_path):
    np.testing.assert_array_equal(doubling()(x), 2 * x)
    folder = tmp_path / "cache" / "kernels"
    assert folder.stat().st_mode & 0o777 == 0o700
    libraries = sorted(folder.glob("*.so"))
    assert len(libraries) == 2 + bool(compiler.toolchain().parallel)  # the probes (and OpenMP's), the loop
    for library in libraries:
        digest = library.with_suffix(".sha256").read_text()
        assert hashlib.sha256(library.read_bytes()).hexdigest() == digest
    assert not list(folder.glob(".tmp-*"))


def test_a_tampered_or_truncated_library_is_rebuilt_never_loaded(fresh, tmp_path):
    cc, log = logging_cc(tmp_path)
    fresh.setenv("CC", cc)
    folders = {}
    for body in ("y = 3 * x", "y = 2 * x"):  # the same name, two bodies, each cached beside the probe alone
        forget()
        fresh.setenv("TINYAE_CACHE_DIR", str(tmp_path / body))
        assert doubling(body=body)(x) is not NotImplemented
        folders[body] = tmp_path / body / "kernels"
    tripled, doubled = ({library.name: library for library in folders[body].glob("*.so")} for body in folders)
    (name,) = set(doubled) - set(tripled)  # the doubling loop's entry
    for tamper in ("swap", "truncate"):  # each in a folder of its own: this process never loaded its paths
        forget()
        folder = tmp_path / tamper / "kernels"
        fresh.setenv("TINYAE_CACHE_DIR", str(folder.parent))
        folder.mkdir(mode=0o700, parents=True)
        for entry in folders["y = 2 * x"].iterdir():
            (folder / entry.name).write_bytes(entry.read_bytes())
        (other,) = set(tripled) - set(doubled)
        target = folder / name
        genuine = doubled[name].read_bytes()
        target.write_bytes(tripled[other].read_bytes() if tamper == "swap" else genuine[:len(genuine) // 2])
        builds = len(runs(log))
        np.testing.assert_array_equal(doubling()(x), 2 * x)
        assert sum("-shared" in run for run in runs(log)[builds:]) == 1  # rebuilt (the probe was cached)
        assert hashlib.sha256(target.read_bytes()).hexdigest() == target.with_suffix(".sha256").read_text()


@pytest.mark.parametrize("setting", ["TINYAE_CACHE_DIR", "XDG_CACHE_HOME", "HOME"])
def test_the_cache_folder(fresh, tmp_path, setting):
    for name in ("TINYAE_CACHE_DIR", "XDG_CACHE_HOME"):
        fresh.delenv(name, raising=False)
    fresh.setenv(setting, str(tmp_path / "root"))
    folder = compiler._cache_folder()
    expected = {"TINYAE_CACHE_DIR": "root/kernels", "XDG_CACHE_HOME": "root/tinyae/kernels",
                "HOME": "root/.cache/tinyae/kernels"}[setting]
    assert folder == tmp_path / expected and folder.stat().st_mode & 0o777 == 0o700


def test_a_folder_others_may_write_to_or_own_is_not_used(fresh, tmp_path):
    folder = tmp_path / "cache" / "kernels"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    with pytest.warns(RuntimeWarning, match=r"does not cache .*others may write to it \(drwxrwxrwx\)"):
        np.testing.assert_array_equal(doubling()(x), 2 * x)  # built in a temporary folder
    assert not list(folder.iterdir())
    folder.chmod(0o700)
    uid = os.getuid()
    fresh.setattr(os, "getuid", lambda: uid + 1)
    with pytest.warns(RuntimeWarning, match=f"belongs to user id {uid}, not to you"):
        assert compiler._cache_folder() is None


def test_an_unusable_cache_costs_one_warning_and_nothing_else(fresh, tmp_path):
    (tmp_path / "file").write_text("")
    fresh.setenv("TINYAE_CACHE_DIR", str(tmp_path / "file"))  # not a folder
    with pytest.warns(RuntimeWarning, match="(?s)does not cache.*(FileExistsError|NotADirectoryError)"):
        np.testing.assert_array_equal(doubling()(x), 2 * x)
    forget()
    fresh.setenv("TINYAE_CACHE_DIR", str(tmp_path / "cache"))

    def full(*_):
        raise OSError(28, "No space left on device")

    fresh.setattr(compiler.Toolchain, "store", full)
    with pytest.warns(RuntimeWarning, match=r"can't use its kernel cache .*No space left"):
        np.testing.assert_array_equal(doubling("triple", "y = 3 * x")(x), 3 * x)  # (the probe's store failed)
    np.testing.assert_array_equal(doubling("halve", "y = x / 2")(x), x / 2)  # no second warning


@pytest.mark.parametrize("refused", ["tinyae-kernel-", "cache"])
def test_a_library_loads_from_the_cache_or_where_it_was_built(fresh, monkeypatch, refused):
    """Either place may be mounted noexec: a library that loads from the other is fine, a cache that can't
    serve one is dropped with a warning."""

    class Noexec(ctypes.CDLL):
        def __init__(self, name, *args, **kwargs):
            if refused in name:
                raise OSError(f"{name}: failed to map segment from shared object")
            super().__init__(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", Noexec)
    if refused == "cache":
        with pytest.warns(RuntimeWarning, match="can't use its kernel cache .*failed to map segment"):
            np.testing.assert_array_equal(doubling()(x), 2 * x)
    else:  # (a temporary folder mounted noexec)
        np.testing.assert_array_equal(doubling()(x), 2 * x)


# A compiler that fails ------------------------------------------------------------------------------------

def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in "ZX"  # a zombie is dead, waiting for init to reap it


HANGING = """echo $$ >> "{pids}"
if [ "$1" = --version ] && [ {hangs_at} = compile ]; then echo hanging-cc 1.0; exit 0; fi
trap '' TERM  # SIGTERM ignored, by its children too: it takes SIGKILL
sleep 30 &
echo $! >> "{pids}"
sleep 30
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("hangs_at", ["--version", "compile"])
def test_a_hanging_compiler_is_stopped_with_its_process_group(fresh, tmp_path, hangs_at):
    pids = tmp_path / "pids"
    fresh.setenv("CC", executable(tmp_path / "cc", HANGING.format(pids=pids, hangs_at=hangs_at)))
    fresh.setattr(compiler, "COMPILE_TIMEOUT", 0.3)
    fresh.setattr(compiler, "TERM_GRACE", 0.1)
    start = time.perf_counter()
    with pytest.warns(RuntimeWarning, match=r"(?s)could not compile.*did not finish in 0.3 s"):
        assert doubling()(x) is NotImplemented
    assert time.perf_counter() - start < 5
    started = [int(pid) for pid in pids.read_text().split()]
    assert len(started) == 2 + (hangs_at == "compile")  # the script (twice if --version answered) and a child
    deadline = time.perf_counter() + 2  # (SIGKILL lands when the scheduler next runs them)
    while any(map(alive, started)) and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert not any(map(alive, started))
    assert doubling("triple", "y = 3 * x")(x) is NotImplemented  # given up: no second wait, no warning
    assert len(pids.read_text().split()) == len(started)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_an_interrupted_compiler_is_stopped_too(fresh, tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    cc = executable(tmp_path / "cc", HANGING.format(pids=pids, hangs_at="--version"))

    def interrupted(process, timeout):  # Ctrl-C, once the script has started its child
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline and len(runs(pids)) < 2:
            time.sleep(0.01)
        raise KeyboardInterrupt

    monkeypatch.setattr(compiler, "_wait", interrupted)
    monkeypatch.setattr(compiler, "TERM_GRACE", 0.1)
    with pytest.raises(KeyboardInterrupt):
        compiler._run([cc, "--version"])
    started = [int(pid) for pid in pids.read_text().split()]
    deadline = time.perf_counter() + 2
    while any(map(alive, started)) and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert len(started) == 2 and not any(map(alive, started))


def test_without_a_compiler_the_twins_run_after_one_warning(fresh):
    fresh.setenv("CC", "/nonexistent/cc")
    loop = doubling()
    with pytest.warns(RuntimeWarning, match="(?s)could not compile its CPU kernels.*nonexistent"):
        assert loop(x) is NotImplemented
    assert loop(x.astype(np.float64)) is NotImplemented  # no second attempt, no second warning
    np.testing.assert_array_equal(kernels.all_kernels()["relu_forward"](x), np.maximum(x, 0))


def test_a_cc_that_does_not_parse_falls_back_with_one_warning(fresh):
    fresh.setenv("CC", 'cc "-O2')
    kernel = kernels.Kernel("double_it", "T x", "T y", "y = 2 * x", lambda x: 2 * x)
    with pytest.warns(RuntimeWarning, match=r"(?s)could not compile.*CC='cc \"-O2' does not parse.*quot"):
        np.testing.assert_array_equal(kernel(x), 2 * x)
    assert kernel.cpu_loop(x) is NotImplemented


def test_a_library_that_does_not_load_falls_back_with_one_warning(fresh, tmp_path):
    writes_junk = ('[ "$1" = --version ] && { echo junk-cc 1.0; exit 0; }\n'
                   'while [ $# -gt 0 ]; do [ "$1" = -o ] && echo "not a library" > "$2"; shift; done\n')
    fresh.setenv("CC", executable(tmp_path / "cc", writes_junk))
    with pytest.warns(RuntimeWarning, match="(?s)could not compile its CPU kernels.*kernel.so"):
        assert doubling()(x) is NotImplemented
    assert not list((tmp_path / "cache" / "kernels").iterdir())


def test_a_kernel_that_does_not_compile_keeps_its_twin_alone(fresh):
    broken = cloop.CompiledLoop("broken", [("T", "x")], [("T", "y")], "y = x +")
    with pytest.warns(RuntimeWarning, match="kernel 'broken' does not compile"):
        assert broken(x) is NotImplemented
    np.testing.assert_array_equal(doubling("triple", "y = 3 * x")(x), 3 * x)  # the compiler is not given up


# TINYAE_CPU_KERNELS ---------------------------------------------------------------------------------------

def test_cpu_kernels_numpy_runs_the_twins_and_never_a_compiler(fresh, tmp_path):
    cc, log = logging_cc(tmp_path)
    fresh.setenv("CC", cc)
    fresh.setenv("TINYAE_CPU_KERNELS", "numpy")
    calls = []
    kernel = kernels.Kernel("double_it", "T x", "T y", "y = 2 * x", lambda x: calls.append(x) or 2 * x)
    np.testing.assert_array_equal(kernel(x), 2 * x)
    assert len(calls) == 1 and kernel.cpu_loop(x) is NotImplemented
    exp_loop = cloop.CompiledLoop("exponential", [("T", "x")], [("T", "y")], "y = exp(x)")
    assert exp_loop(x) is NotImplemented and not log.exists()


@pytest.mark.parametrize("value", ["", "c", "gcc"])
def test_cpu_kernels_c_is_the_default_and_another_value_is_named(fresh, value):
    fresh.setenv("TINYAE_CPU_KERNELS", value)
    if value == "gcc":
        with pytest.warns(RuntimeWarning, match="TINYAE_CPU_KERNELS='gcc' is not one of 'c' .* or 'numpy'"):
            np.testing.assert_array_equal(doubling()(x), 2 * x)
    else:
        np.testing.assert_array_equal(doubling()(x), 2 * x)


# The bodies a Kernel takes --------------------------------------------------------------------------------

def test_every_kernel_calls_only_the_declared_functions():
    for kernel in kernels.all_kernels().values():
        assert cloop.calls(kernel.preamble + "\n" + kernel.operation) <= cloop.MATH_FUNCTIONS


@pytest.mark.parametrize("body, called", [("y = max(x, (T)0)", "max"), ("y = fminf(x, 1.0f)", "fminf"),
                                          ("y = __expf(x)", "__expf"), ("y = tanh(x)", "tanh"),
                                          ("T a = x; y = sqrt(fmax(a, (T)0))", "fmax")])
def test_a_body_calling_another_function_is_refused_when_defined(body, called):
    with pytest.raises(ValueError, match=rf"^kernel k: the body calls {called}\(\), but a body may call only "
                                         r"exp, expm1, fabs, log, log1p, sqrt \(cloop.MATH_FUNCTIONS"):
        kernels.Kernel("k", "T x", "T y", body, lambda x: x)


def test_casts_keywords_and_comments_are_not_calls():
    body = ("if (x > (T)0) { y = (T)0.5 * exp(x); } else while (0) {}\n"
            "y = sizeof (T) ? y : (T)(x);  /* max(a, b) */ // tanh(x)")
    kernels.Kernel("k", "T x", "T y", body, lambda x: x)
    with pytest.raises(ValueError, match=r"^kernel k: T\(...\) is a C\+\+ cast, .*; write \(T\)\(...\)$"):
        kernels.Kernel("k", "T x", "T y", "y = T(0.5) * x", lambda x: x)
    with pytest.raises(ValueError, match="the body calls helper"):
        kernels.Kernel("k", "T x", "T y", "y = helper(x)", lambda x: x, preamble="#define helper(a) (a)")


@pytest.mark.parametrize("comment", ["// doubled", "// doubled, and a line continued \\"])
def test_a_trailing_line_comment_in_a_body_or_preamble_compiles(fresh, comment):
    kernel = kernels.Kernel("commented", "T x", "T y", f"y = TWO * x;  {comment}", lambda x: 2 * x,
                            preamble=f"#define TWO 2  {comment}")
    with np.errstate(all="raise"):  # (no warning either)
        np.testing.assert_array_equal(kernel.cpu_loop(x), 2 * x)


def test_a_body_using_exp_keeps_its_twin_without_vector_math(monkeypatch):
    monkeypatch.setattr(cloop, "vector_math_available", lambda: False)
    loop = cloop.CompiledLoop("exponential", [("T", "x")], [("T", "y")], "y = exp(x)")
    assert loop.math_calls == {"exp"} and not loop.vectorizes
    assert loop(x) is NotImplemented

"""The C compiler behind the CPU kernels (``cloop``): ``$CC`` run with a time limit, its libraries cached.

``library(source, libraries)`` is the entry point: the shared library built from C ``source``, loaded with
ctypes. ``$CC`` (default ``cc``, split as a shell would) builds one in about 0.1 s, so each library is kept in
a cache folder, and a later process loads it from there without running the compiler:

* the folder: ``$TINYAE_CACHE_DIR/kernels``, else ``$XDG_CACHE_HOME/tinyae/kernels`` or
  ``~/.cache/tinyae/kernels``, created private (mode 0700). A folder owned by another user, or writable by
  group or others, is not used: one warning, and libraries are built in a temporary folder as without a cache.
* the key: SHA-256 of the source, the compiler's command and flags (``-march=native`` or not, ``-fopenmp`` or
  not: a library built without OpenMP is never taken for one built with it, or the reverse), the libraries
  linked, the compiler's identity (resolved path, size and time, ``--version``), the C library's version and
  the CPU (``-march=native`` builds for this one: a home folder shared by several machines must not hand one
  machine's library to another).
* an entry: ``KEY.so`` and ``KEY.sha256``, each written to a temporary file in the folder and renamed into
  place. A library whose bytes don't hash to the recorded digest (truncated, tampered with) is never loaded:
  it is built again.

The compiler runs in a process group of its own, killed (SIGTERM, then SIGKILL) after ``COMPILE_TIMEOUT``
seconds. Whatever goes wrong (a ``$CC`` that doesn't parse or isn't there, a compiler that hangs or can't
build a trivial library, a library that won't load) costs speed, never a result: one warning says what
happened and how to fix it, and the NumPy twins run. ``TINYAE_CPU_KERNELS=numpy`` chooses the twins without
running any compiler; ``c`` (the default) the compiled loops where they pay.

Libraries are built with OpenMP (``-fopenmp``: the loops may then share out their work, ``threads``) where
the compiler builds a probe with it (``OPENMP_PROBE``), else without, silently: their loops then run on one
thread, and compute the same bits.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-shared", "-fPIC"]
NATIVE = ["-march=native"]  # tried first; some compilers (or CPUs) refuse it, then the loops build without
PROBE = "void probe(void) {}\n"  # a library any working compiler builds
OPENMP = ["-fopenmp"]  # the loops run on several threads where the compiler builds OPENMP_PROBE with it
OPENMP_PROBE = "#include <omp.h>\nint tinyae_threads(void) { return omp_get_max_threads(); }\n"
COMPILE_TIMEOUT = 60.0  # seconds a compiler run may take before its process group is killed
TERM_GRACE = 0.5  # seconds between SIGTERM and SIGKILL
CACHE_FORMAT = "1"  # part of every key: changing how entries are built or laid out changes it
MODES = ("c", "numpy")  # TINYAE_CPU_KERNELS: compiled loops where they pay (the default), or the NumPy twins
CPU_FIELDS = {"vendor_id", "cpu family", "model", "model name", "stepping", "flags",  # x86
              "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "Features",  # Arm
              "isa", "cpu model", "uarch"}  # others
_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "")  # tinyae/ as frames name it


class CompilerUnusable(Exception):
    """``$CC`` can't build libraries here; the message says why."""


class Toolchain:
    """``$CC`` as this process found it: the command, its identity (part of every cache key), the cache
    folder (None: none is used), the flag sets still worth trying, and, once it can't be used, why."""

    def __init__(self):
        self.command: list[str] = []
        self.identity = ""
        self.cache: Path | None = None
        self.flag_sets = [NATIVE, []]  # NATIVE is dropped once it fails where the plain flags work
        self.parallel: list[str] = []  # OPENMP where the compiler builds OPENMP_PROBE with it
        self.problem: str | None = None  # set: no compiler runs, the twins do

    def build(self, source: str, libraries: list[str]) -> ctypes.CDLL | str:
        """The library built from ``source``, loaded from the cache or compiled (and cached); the compiler's
        complaint, as text, if it doesn't compile. Raises CompilerUnusable or OSError if no compiler can."""
        keys = {tuple(extra): self.key(source, extra, libraries) for extra in self.flag_sets}
        for key in keys.values():
            cached = self.load_cached(key)
            if cached is not None:
                return cached
        problem = ""
        with tempfile.TemporaryDirectory(prefix="tinyae-kernel-", ignore_cleanup_errors=True) as directory:
            c_file, built = Path(directory, "kernel.c"), Path(directory, "kernel.so")
            c_file.write_text(source)
            for extra in list(self.flag_sets):
                command = self.compile_command(extra, libraries, str(c_file), str(built))
                status, output = _run(command)
                if status != 0:
                    problem = f"{shlex.join(command)}\n{output}".strip()
                    continue
                try:
                    loaded = self.install(keys[tuple(extra)], built)
                except OSError as error:  # built, but it won't load
                    problem = f"{shlex.join(command)}\n{output}\n{error}".strip()
                    continue
                if extra != NATIVE and NATIVE in self.flag_sets:
                    self.flag_sets.remove(NATIVE)  # refused by this compiler or CPU: don't try it again
                return loaded
        return problem

    def compile_command(self, extra: list[str], libraries: list[str], c_file: str, library: str) -> list[str]:
        return [*self.command, *FLAGS, *self.parallel, *extra, c_file, "-o", library, *libraries, "-lm"]

    def key(self, source: str, extra: list[str], libraries: list[str]) -> str:
        """The cache key: what went into the library (the command, less its temporary paths)."""
        command = self.compile_command(extra, libraries, "kernel.c", "kernel.so")
        text = "\0".join([CACHE_FORMAT, self.identity, *command, source])
        return hashlib.sha256(text.encode()).hexdigest()

    def load_cached(self, key: str) -> ctypes.CDLL | None:
        """The cached library of ``key``, loaded if its bytes hash to the recorded digest; else None."""
        if self.cache is None:
            return None
        entry = self.cache / f"{key}.so"
        try:
            digest = (self.cache / f"{key}.sha256").read_text().strip()
            if hashlib.sha256(entry.read_bytes()).hexdigest() != digest:
                return None  # truncated or tampered with: built again, and replaced
            return ctypes.CDLL(str(entry))
        except OSError:  # not cached yet, or it won't load (a library it links is gone): built again
            return None

    def install(self, key: str, built: Path) -> ctypes.CDLL:
        """The library just ``built``, stored in the cache and loaded from there; loaded from where it was
        built if the cache can't serve it (full, read-only, mounted noexec: the cache is dropped, with a
        warning). Raises OSError if it loads from neither (then it isn't kept)."""
        if self.cache is None:
            return ctypes.CDLL(str(built))
        try:
            return ctypes.CDLL(str(self.store(key, built.read_bytes())))
        except OSError as error:
            cache_error = error
        try:
            loaded = ctypes.CDLL(str(built))
        except OSError:
            for suffix in (".so", ".sha256"):
                with contextlib.suppress(OSError):
                    (self.cache / f"{key}{suffix}").unlink()
            raise
        self.drop_cache(cache_error)
        return loaded

    def store(self, key: str, library: bytes) -> Path:
        """Write ``KEY.so`` and then its digest, ``KEY.sha256``, each whole or not at all (a temporary file
        renamed into place); returns the library's path."""
        entry = self.cache / f"{key}.so"
        digest = hashlib.sha256(library).hexdigest().encode()
        for path, content in ((entry, library), (self.cache / f"{key}.sha256", digest)):
            handle, temporary = tempfile.mkstemp(dir=self.cache, prefix=".tmp-")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(content)
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        return entry

    def drop_cache(self, error: Exception) -> None:
        warn(f"tinyae can't use its kernel cache {self.cache} ({type(error).__name__}: {error}), so each "
             f"process compiles its CPU kernels again; set TINYAE_CACHE_DIR to a writable folder of your own "
             f"(on a file system that allows running programs) to fix this")
        self.cache = None

    def give_up(self, error: Exception) -> None:
        """No more compiling in this process: one warning, and the twins run."""
        unusable = isinstance(error, CompilerUnusable)
        self.problem = str(error) if unusable else f"{type(error).__name__}: {error}"
        warn(f"tinyae could not compile its CPU kernels, so their NumPy twins run instead (slower); set CC "
             f"to a working C compiler to fix this, or TINYAE_CPU_KERNELS=numpy to use the twins without "
             f"trying. The attempt:\n{self.problem[:1000]}")


def library(source: str, libraries: list[str]) -> ctypes.CDLL | str | None:
    """The shared library built from C ``source`` (linked with ``libraries`` and libm), loaded; the compiler's
    complaint (text) if ``source`` doesn't compile; None if no compiler is to be used here (after one warning
    saying why, unless TINYAE_CPU_KERNELS=numpy)."""
    tools = toolchain()
    if tools.problem is not None:
        return None
    try:
        return tools.build(source, libraries)
    except Warning:  # a warning of ours, turned into an error by the warnings filter
        raise
    except Exception as error:  # a timeout, OSError, anything: the compiler never stops training
        tools.give_up(error)
        return None


@functools.cache
def toolchain() -> Toolchain:
    """This process's ``Toolchain``: the mode read, ``$CC`` found and tried on a trivial library (from the
    cache, where a process before built it), the cache folder set up."""
    tools = Toolchain()
    if _mode() == "numpy":
        tools.problem = "TINYAE_CPU_KERNELS=numpy"
        return tools
    try:
        tools.command, tools.identity = _find_compiler()
        tools.cache = _cache_folder()
        probe = tools.build(PROBE, [])
        if isinstance(probe, str):
            raise CompilerUnusable(probe)
    except Warning:
        raise
    except Exception as error:
        tools.give_up(error)
        return tools
    tools.parallel = OPENMP
    try:
        openmp = tools.build(OPENMP_PROBE, [])
    except Warning:
        raise
    except Exception:  # (a compiler that hangs on it): the loops run on one thread
        openmp = None
    if not isinstance(openmp, ctypes.CDLL):
        tools.parallel = []
    return tools


def _mode() -> str:
    """TINYAE_CPU_KERNELS ("c" where unset or empty); another value gets a warning and "c"."""
    mode = os.environ.get("TINYAE_CPU_KERNELS") or "c"
    if mode not in MODES:
        warn(f"TINYAE_CPU_KERNELS={mode!r} is not one of 'c' (compiled loops where they pay, the default) or "
             f"'numpy' (the NumPy twins, no compiler); using 'c'")
        return "c"
    return mode


def _find_compiler() -> tuple[list[str], str]:
    """``$CC`` as a command (its program resolved on PATH) and its identity; CompilerUnusable if it isn't
    one."""
    setting = os.environ.get("CC") or "cc"
    try:
        words = shlex.split(setting)
    except ValueError as error:  # an unbalanced quote
        raise CompilerUnusable(f"CC={setting!r} does not parse as a command ({error})") from None
    found = shutil.which(words[0]) if words else None
    if found is None:
        raise CompilerUnusable(f"CC={setting!r}: no program {words[0] if words else ''!r} found")
    command = [os.path.abspath(found), *words[1:]]  # its name kept: some drivers act on it (ccache, clang++)
    status, version = _run([*command, "--version"])
    program = os.path.realpath(found)
    details = os.stat(program)
    return command, "\n".join([shlex.join(command), program, f"{details.st_size} {details.st_mtime_ns}",
                               f"--version: exit {status}", version, _platform()])


@functools.cache
def _platform() -> str:
    """The machine, the C library's version and the CPU (model and features: what ``-march=native`` builds
    for; from Linux's /proc/cpuinfo, its first processor)."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (OSError, ValueError):  # not glibc
        libc = None
    cpu = []
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as lines:
        for line in lines:
            if not line.strip():
                break
            if line.split(":")[0].strip() in CPU_FIELDS:
                cpu.append(line.strip())
    return "\n".join([platform.machine(), str(libc), *cpu])


def _cache_folder() -> Path | None:
    """The kernel cache folder, created private (0700); None, after one warning, where it can't be used."""
    folder: Path | str = "(none: no home folder)"
    try:
        root = os.environ.get("TINYAE_CACHE_DIR") or Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "tinyae")
        folder = Path(root, "kernels")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        details = folder.stat()
        if details.st_uid != os.getuid():
            problem = f"it belongs to user id {details.st_uid}, not to you ({os.getuid()})"
        elif details.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problem = f"others may write to it ({stat.filemode(details.st_mode)})"
        else:
            return folder
    except (OSError, RuntimeError) as error:  # (RuntimeError: Path.home() without a home)
        problem = f"{type(error).__name__}: {error}"
    warn(f"tinyae does not cache its compiled CPU kernels in {folder}: {problem}; each process compiles them "
         f"again. Set TINYAE_CACHE_DIR to a folder of your own to fix this")
    return None


def _run(command: list[str]) -> tuple[int, str]:
    """Run ``command`` in a session (and process group) of its own, its output to a file (not a pipe, which
    a straying child could hold open); (exit status, output). Raises CompilerUnusable after COMPILE_TIMEOUT seconds, the whole
    group killed; an interrupt (Ctrl-C, which no longer reaches the group) kills it too."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            status = _wait(process, COMPILE_TIMEOUT)
        except BaseException as interruption:
            _kill_group(process)
            if isinstance(interruption, subprocess.TimeoutExpired):
                raise CompilerUnusable(f"{shlex.join(command)}\ndid not finish in {COMPILE_TIMEOUT:g} s, "
                                       f"so it was stopped") from None
            raise
        output.seek(0)
        return status, output.read().decode(errors="replace")


def _wait(process: subprocess.Popen, timeout: float) -> int:
    """``process.wait(timeout)``, but back the moment the process ends (``Popen.wait`` with a timeout polls,
    up to 50 ms late: measured, 0.3 s more over the dozen compiles of a training step's kernels)."""
    waiter = threading.Thread(target=process.wait, daemon=True)
    waiter.start()
    waiter.join(timeout)
    if waiter.is_alive():
        raise subprocess.TimeoutExpired(process.args, timeout)
    return process.returncode


def _kill_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group led by ``process``, SIGKILL after TERM_GRACE seconds; reap the leader."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
            os.killpg(process.pid, signal_number)
        if signal_number == signal.SIGTERM:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=TERM_GRACE)
    process.wait()


def warn(message: str) -> None:
    """A RuntimeWarning attributed to the first caller outside tinyae."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, RuntimeWarning, stacklevel=level)

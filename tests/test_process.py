"""Process-wide settings belong to the program, not the library: importing tinyae changes neither malloc
nor matplotlib's backend; the tinyae command (tinyae.app.process) sets malloc and the thread pools."""

import os
import subprocess
import sys

import pytest

from tinyae.app import process
from tinyae.backend import env_flag


def python(code: str, **environment: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, **environment},
                            capture_output=True, text=True, check=True)
    return result.stdout


def _is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


# Resident MiB after freeing 100 MiB of 10 MiB blocks, minus before allocating them.
RESIDENT_AFTER_FREEING = """
import os, numpy as np, tinyae
{setup}
def resident_mib():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
before = resident_mib()
blocks = [np.ones(10 << 17) for _ in range(10)]  # 10 x 10 MiB, each page touched
del blocks
print(resident_mib() - before)
"""


@pytest.mark.skipif(not _is_glibc(), reason="the malloc settings are glibc's")
def test_importing_tinyae_leaves_malloc_alone_and_the_command_keeps_freed_memory():
    """A program that imports tinyae and frees 100 MiB gives it back to the OS; after keep_freed_memory (the
    tinyae command's setting), malloc keeps it for the next training step."""
    released = float(python(RESIDENT_AFTER_FREEING.format(setup="")))
    kept = float(python(RESIDENT_AFTER_FREEING.format(
        setup="from tinyae.app.process import keep_freed_memory\nassert keep_freed_memory()")))
    assert released < 20
    assert kept > 80
    switched_off = float(python(RESIDENT_AFTER_FREEING.format(
        setup="from tinyae.app.process import keep_freed_memory\nassert not keep_freed_memory()"),
        TINYAE_KEEP_FREED_MEMORY="off"))
    assert switched_off < 20


@pytest.mark.skipif(not _is_glibc(), reason="the malloc settings are glibc's")
def test_freed_temporaries_are_reused_without_fresh_page_faults():
    """A step's large temporaries, allocated and freed again and again, cost page faults only while malloc
    hands freed memory back to the OS (the default), not after keep_freed_memory."""
    code = (
        "import resource, numpy as np\n"
        "from tinyae.app.process import keep_freed_memory\n"
        "keep_freed_memory()\n"
        "def step():\n"
        "    arrays = [np.ones(3_200_000, np.float32) for _ in range(3)]  # 3 x 12.8 MB, as im2col's\n"
        "    del arrays\n"
        "step()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(10):\n"
        "    step()\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)\n"
    )
    kept, returned = float(python(code, TINYAE_KEEP_FREED_MEMORY="1")), float(python(code, TINYAE_KEEP_FREED_MEMORY="0"))
    assert returned > 500  # of the 9,375 pages a step touches (1,100 here with glibc 2.36)
    assert kept < 50


def test_importing_tinyae_and_drawing_leaves_the_matplotlib_backend_alone():
    """A program that chose its matplotlib backend keeps it after tinyae draws a figure, without pyplot."""
    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "import tinyae, tinyae.app.cli\n"
        "from tinyae.app import figures\n"
        "import numpy as np, tempfile, pathlib\n"
        "path = figures.image_grid(np.zeros((4, 28, 28)), pathlib.Path(tempfile.mkdtemp()) / 'grid.png', 2)\n"
        "assert path.read_bytes()[:8] == b'\\x89PNG\\r\\n\\x1a\\n'\n"
        "print(matplotlib.get_backend(), matplotlib.rcParams['backend'], 'matplotlib.pyplot' in sys.modules)\n"
    )
    assert python(code, MPLBACKEND="").split() == ["svg", "svg", "False"]


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("true", True), ("Yes", True), ("ON", True), (" on ", True),
    ("0", False), ("False", False), ("no", False), ("off", False), ("", None),
])
def test_env_flag_accepts_the_usual_words(monkeypatch, value, expected):
    monkeypatch.setenv("TINYAE_SOME_FLAG", value)
    for default in (True, False):
        assert env_flag("TINYAE_SOME_FLAG", default) is (default if expected is None else expected)


def test_env_flag_refuses_other_words_naming_the_variable(monkeypatch):
    monkeypatch.setenv("TINYAE_SOME_FLAG", "maybe")
    with pytest.raises(ValueError, match=r"TINYAE_SOME_FLAG='maybe' is not a boolean; expected one of "
                                         r"1/true/yes/on or 0/false/no/off"):
        env_flag("TINYAE_SOME_FLAG", True)
    monkeypatch.delenv("TINYAE_SOME_FLAG")
    assert env_flag("TINYAE_SOME_FLAG", True) is True


def fake_topology(tmp_path, siblings: dict[int, str], name: str = "core_cpus_list"):
    for cpu, listed in siblings.items():
        folder = tmp_path / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / name).write_text(listed + "\n")
    return tmp_path


def test_physical_cores_count_smt_siblings_once_among_the_allowed_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 5}, raising=False)
    topology = fake_topology(tmp_path, {0: "0,4", 1: "1,5", 2: "2,6", 3: "3,7", 4: "0,4", 5: "1,5"})
    assert process.physical_cores(topology) == 4  # 5 shares core "1,5" with 1


def test_physical_cores_read_older_kernels_thread_siblings(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert process.physical_cores(fake_topology(tmp_path, {0: "0-1", 1: "0-1"}, "thread_siblings_list")) == 1


def test_physical_cores_without_a_topology_count_the_allowed_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 3}, raising=False)
    assert process.physical_cores(tmp_path) == 3


def test_configure_process_limits_the_blas_threads():
    code = ("import numpy, threadpoolctl\n"
            "from tinyae.app.process import configure_process\n"
            "print(configure_process({}), sorted({{p['num_threads'] for p in threadpoolctl.threadpool_info()}}))\n")
    assert python(code.format(1)).split() == ["1", "[1]"]
    default = process.physical_cores()
    assert python(code.format(None)).split() == [str(default), f"[{default}]"]


def test_configure_process_shares_openmps_threads_with_openblas_where_it_can():
    """Where this process's compiler and OpenBLAS allow the sharing, the command makes it, and limits the
    OpenMP pool it loaded too (the limit comes after the sharing)."""
    can_share = python("from tinyae.kernels import threads\nprint(threads.share_with_blas())").strip()
    code = ("import threadpoolctl\n"
            "from tinyae.app.process import configure_process\n"
            "from tinyae.kernels import threads\n"
            "configure_process(1)\n"
            "print(threads.parallel, sorted({(p['internal_api'], p['num_threads'])"
            " for p in threadpoolctl.threadpool_info()}))\n")
    shared, pools = python(code).split(" ", 1)
    assert shared == can_share
    if shared == "True":
        assert pools.strip() == "[('openblas', 1), ('openmp', 1)]"

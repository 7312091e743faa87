"""The mutation check of the test suite: plant plausible one-line bugs, one at a time, and make sure the
tests notice each one.

    python tools/mutate.py              # every mutant, 2 at a time (a few minutes on 2 cores)
    python tools/mutate.py --only adam  # the mutants whose name contains "adam"
    python tools/mutate.py --list       # the list, nothing run

Each mutant (``tools/mutants.py``) replaces one exact piece of text in one file of ``tinyae/`` (it must occur
there exactly once: a mutant whose text is gone is reported as stale, so the list follows the code) and names
the tests that guard that code. Both backends run them in a scratch copy of the repository (``numpy`` and
``strict``, or only ``numpy`` for a mutant of a compiled C body, which strict never runs). A mutant is
*killed* when a run fails; the check fails if any mutant survives a backend that must kill it. The
unmutated tests are run first: a mutant counts only against tests that pass without it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import queue
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from mutants import MUTANTS, Mutant  # noqa: E402

RUN_LIMIT = 600  # seconds for one pytest run; a mutant that makes the tests hang counts as killed


def stale(mutant: Mutant) -> str | None:
    """Why the mutant can't be applied to the current code, or None."""
    path = ROOT / mutant.file
    if not path.is_file():
        return f"{mutant.file} does not exist"
    count = path.read_text().count(mutant.original)
    return None if count == 1 else f"its text occurs {count} times in {mutant.file} (expected once)"


def scratch_copy(directory: Path) -> Path:
    """A copy of what the tests need (the package with its data, the tests, the scripts they run) to mutate
    freely."""
    copy = directory / "repo"
    copy.mkdir()
    for name in ("tinyae", "tests", "examples", "docs", "bench", "tools"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "out"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, copy / name)
    return copy


def run_tests(copy: Path, tests: tuple[str, ...], backend: str) -> tuple[bool, float]:
    """(whether the tests passed, seconds) for one backend, in the copy."""
    environment = dict(os.environ, TINYAE_BACKEND=backend, PYTHONPATH=str(copy))
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=copy, env=environment, capture_output=True, timeout=RUN_LIMIT)
        passed = result.returncode == 0
        if result.returncode not in (0, 1):  # 1: tests failed; anything else (usage, collection) is ours
            raise RuntimeError(f"pytest exited {result.returncode} for {tests}:\n{result.stdout.decode()[-2000:]}")
    except subprocess.TimeoutExpired:
        passed = False
    return passed, time.perf_counter() - started


class Worker:
    """One scratch copy of the repository, mutated and restored in turn."""

    def __init__(self, directory: Path):
        self.copy = scratch_copy(directory)

    def check(self, mutant: Mutant) -> dict[str, bool]:
        """{backend: killed} for the mutant."""
        path = self.copy / mutant.file
        original = path.read_text()
        path.write_text(original.replace(mutant.original, mutant.replacement, 1))
        try:
            return {backend: not run_tests(self.copy, mutant.tests, backend)[0] for backend in mutant.backends}
        finally:
            path.write_text(original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="only the mutants whose name contains this text")
    parser.add_argument("--jobs", type=int, default=2, help="mutants checked at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if args.only in m.name]
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name:40} {mutant.file}: {mutant.original!r} -> {mutant.replacement!r}")
        return 0
    problems = [f"{m.name}: {reason}" for m in chosen if (reason := stale(m))]
    if problems:
        print("stale mutants (update tools/mutants.py):\n  " + "\n  ".join(problems))
        return 1
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinyae-mutate-") as directory:
        free: queue.Queue[Worker] = queue.Queue()
        for index in range(args.jobs):
            Path(directory, str(index)).mkdir()
            free.put(Worker(Path(directory, str(index))))

        def with_worker(task):
            worker = free.get()
            try:
                return task(worker)
            finally:
                free.put(worker)

        controls = sorted({(m.tests, backend) for m in chosen for backend in m.backends})
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            passes = list(pool.map(lambda item: with_worker(lambda w: run_tests(w.copy, *item)[0]), controls))
            failing = [item for item, passed in zip(controls, passes) if not passed]
            if failing:
                print("these tests fail without any mutant; fix them first:")
                for tests, backend in failing:
                    print(f"  {backend}: {' '.join(tests)}")
                return 1
            print(f"{len(controls)} test selections pass unmutated; checking {len(chosen)} mutants")
            survivors = []
            for mutant, killed in pool.map(lambda m: (m, with_worker(lambda w: w.check(m))), chosen):
                marks = "  ".join(f"{b}: {'killed' if k else 'SURVIVED'}" for b, k in killed.items())
                print(f"{mutant.name:42} {marks}", flush=True)
                survivors += [f"{mutant.name} ({b})" for b, k in killed.items() if not k]
    surviving = {survivor.split(" ")[0] for survivor in survivors}
    print(f"\n{len(chosen)} mutants, {len(chosen) - len(surviving)} killed on every backend that runs them, "
          f"in {time.perf_counter() - started:.0f} s")
    if survivors:
        print("survivors: " + ", ".join(survivors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

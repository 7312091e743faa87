"""Run the tutorial walkthrough's pages as notebooks.

Each page of docs/tutorial/ (English) and docs/tutorial.zh-CN/ (Chinese) is one source in two forms: a
Markdown file in Jupytext's "markdown" format (NN-slug.md, which GitHub renders) and the notebook made from
it (NN-slug.ipynb). This script converts a page with jupytext and executes it with nbclient:

    python tools/tutorial.py                  # every page, full runs: writes docs/.../NN-slug.ipynb and the
                                              # figures under docs/tutorial/figures/ (commit both)
    python tools/tutorial.py docs/tutorial/02-losses-and-regularization.md    # one page
    python tools/tutorial.py --quick          # every page with TINYAE_TUTORIAL_QUICK=1 (tiny training
                                              # limits), in a scratch folder: writes nothing in the repository
    python tools/tutorial.py --list           # the pages, nothing run

A page runs with its own folder as the working directory (so ``../tutorial/figures`` is the shared figure
folder from either language's folder). tests/test_tutorial.py runs every page this way with --quick's
setting, and checks that each committed notebook's cells are the page's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = (ROOT / "docs" / "tutorial", ROOT / "docs" / "tutorial.zh-CN")
QUICK_VARIABLE = "TINYAE_TUTORIAL_QUICK"


def pages() -> list[Path]:
    """Every page of both folders: the NN-slug.md files (not README.md), in order, English first."""
    return [page for folder in FOLDERS for page in sorted(folder.glob("[0-9][0-9]-*.md"))]


def notebook_path(page: Path) -> Path:
    """Where a page's executed notebook is committed: beside it, NN-slug.ipynb."""
    return page.with_suffix(".ipynb")


def read_page(page: Path) -> nbformat.NotebookNode:
    """The page as an (unexecuted) notebook, its cells numbered "cell-1", "cell-2", … (not jupytext's random
    ids), so that running a page again rewrites its notebook only where an output changed."""
    notebook = jupytext.read(page, fmt="md")
    for number, cell in enumerate(notebook.cells, start=1):
        cell.id = f"cell-{number}"
    return notebook


def cells(notebook) -> list[tuple[str, str]]:
    """(cell type, source) of every cell: what must be the same in the page and its notebook."""
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def execute(page: Path, quick: bool, cwd: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """The page executed as a notebook in the python3 kernel, with ``cwd`` as the working directory and
    TINYAE_TUTORIAL_QUICK=1 when ``quick``. Raises nbclient's CellExecutionError on a cell's error."""
    notebook = read_page(page)
    env = {key: value for key, value in os.environ.items() if key != QUICK_VARIABLE}
    env["MPLBACKEND"] = "Agg"
    # the kernel imports the tinyae of this checkout, whatever is installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if quick:
        env[QUICK_VARIABLE] = "1"
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env, cwd=str(cwd))
    return notebook


def scratch_copy(page: Path, scratch: Path) -> Path:
    """A working directory in ``scratch`` laid out like the repository (docs/<page's folder>, and tinyae/ as
    a link to this checkout's), so that whatever a page writes stays inside ``scratch``: relative paths
    (../tutorial/figures) and paths from the repository root found from the working directory alike."""
    cwd = scratch / "docs" / page.parent.name
    (scratch / "docs" / "tutorial" / "figures").mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    if not (scratch / "tinyae").exists():
        (scratch / "tinyae").symlink_to(ROOT / "tinyae", target_is_directory=True)
    return cwd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to run (default: every page)")
    parser.add_argument("--quick", action="store_true",
                        help=f"set {QUICK_VARIABLE}=1 and run in a scratch folder (writes nothing here)")
    parser.add_argument("--list", action="store_true", help="list the pages and exit")
    args = parser.parse_args(argv)
    chosen = [page.resolve() for page in args.pages] or pages()
    for page in chosen:
        if page.suffix != ".md" or not page.is_file():
            parser.error(f"{page}: expected a page docs/tutorial*/NN-slug.md")
    if args.list:
        print("\n".join(str(page.relative_to(ROOT)) for page in chosen))
        return 0
    started = time.perf_counter()
    for page in chosen:
        begun = time.perf_counter()
        if args.quick:
            scratch = Path(tempfile.mkdtemp(prefix="tinyae-tutorial-"))
            try:
                execute(page, quick=True, cwd=scratch_copy(page, scratch))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            print(f"ran {page.relative_to(ROOT)} ({time.perf_counter() - begun:.1f} s)")
        else:
            notebook = execute(page, quick=False, cwd=page.parent)
            nbformat.write(notebook, notebook_path(page))
            print(f"wrote {notebook_path(page).relative_to(ROOT)} ({time.perf_counter() - begun:.1f} s)")
    print(f"{len(chosen)} page(s) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

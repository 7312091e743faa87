"""The tutorial walkthrough (docs/tutorial/, docs/tutorial.zh-CN/): every page runs, and its committed
notebook is the page.

Pages are discovered (tools/tutorial.py's ``pages``: every NN-slug.md of both folders), so a new page is
tested without an edit here. For each page:
- its committed notebook (NN-slug.ipynb, executed by a full run of tools/tutorial.py) has the page's cells,
  so what GitHub shows as the notebook is what the page says;
- the page executes as a notebook with TINYAE_TUTORIAL_QUICK=1 (tiny training limits) in a scratch folder,
  and no cell raises. The whole walkthrough, both languages, takes well under 3 minutes on 2 cores.
The pages run on the default (numpy) backend in a kernel of their own: checked once, in the numpy run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import tutorial  # noqa: E402  (tools/tutorial.py)

PAGES = tutorial.pages()
IDS = [str(page.relative_to(ROOT / "docs")) for page in PAGES]


def test_both_languages_have_the_same_pages():
    english, chinese = ({page.name for page in PAGES if page.parent == folder} for folder in tutorial.FOLDERS)
    assert english, "no pages found in docs/tutorial/"
    assert english == chinese, f"pages in only one language: {sorted(english ^ chinese)}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_committed_notebook_is_the_page(page):
    notebook = tutorial.notebook_path(page)
    assert notebook.is_file(), f"{notebook.name} is missing: run python tools/tutorial.py {page.relative_to(ROOT)}"
    committed = nbformat.read(notebook, as_version=4)
    assert tutorial.cells(committed) == tutorial.cells(tutorial.read_page(page)), (
        f"{notebook.name} is out of date with {page.name}: run python tools/tutorial.py {page.relative_to(ROOT)}"
    )
    errors = [output for cell in committed.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors, f"{notebook.name} was committed with an error in a cell: {errors[0].get('ename')}"
    unrun = [cell.source[:40] for cell in committed.cells if cell.cell_type == "code" and cell.source.strip()
             and cell.get("execution_count") is None]
    assert not unrun, f"{notebook.name} was committed unexecuted (first cell not run: {unrun[0]!r})"


@pytest.mark.skipif(BACKEND != "numpy", reason="the pages run on the numpy backend in a kernel of their own: "
                                              "checked once, in the numpy run of the suite")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jupyter_client's and zmq's, not tinyae's
@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_page_runs_quick(page, tmp_path):
    notebook = tutorial.execute(page, quick=True, cwd=tutorial.scratch_copy(page, tmp_path), timeout=120)
    ran = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]
    assert ran and all(cell.execution_count is not None for cell in ran), f"{page.name}: not every cell ran"

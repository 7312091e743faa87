"""The tutorial walkthrough (docs/tutorial/, docs/tutorial.zh-CN/): every page runs, and its committed
notebook is the page.

Pages are discovered (tools/tutorial.py's ``pages``: every NN-slug.md of both folders), so a new page is
tested without an edit here. For each page:
- its committed notebook (NN-slug.ipynb, executed by a full run of tools/tutorial.py) has the page's cells,
  so what GitHub shows as the notebook is what the page says;
- every relative link of the page (to code, figures, other pages) reaches a file; a link to lines of code
  (path#L10-L20) stays inside the file, and one of its text's `code names` (the last part of a dotted one)
  occurs in those lines, so a link that drifts off what it names as the code changes fails;
- its code cells are those of its twin in the other language (the prose differs, the computation not);
- the page executes as a notebook with TINYAE_TUTORIAL_QUICK=1 (tiny training limits) in a scratch folder,
  and no cell raises. The whole walkthrough, both languages, takes well under 3 minutes on 2 cores.
The pages run on the default (numpy) backend in a kernel of their own: checked once, in the numpy run.
"""

from __future__ import annotations

import re
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
INDEXES = [folder / "README.md" for folder in tutorial.FOLDERS]
INDEX_IDS = [str(index.relative_to(ROOT / "docs")) for index in INDEXES]
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")  # [text](target): Markdown links and images
LINES = re.compile(r"#L(\d+)(?:-L(\d+))?$")


def test_both_languages_have_the_same_pages():
    english, chinese = ({page.name for page in PAGES if page.parent == folder} for folder in tutorial.FOLDERS)
    assert english, "no pages found in docs/tutorial/"
    assert english == chinese, f"pages in only one language: {sorted(english ^ chinese)}"


ENGLISH = [page for page in PAGES if page.parent == tutorial.FOLDERS[0]]


@pytest.mark.parametrize("page", ENGLISH, ids=[page.name for page in ENGLISH])
def test_both_languages_run_the_same_code(page):
    twin = tutorial.FOLDERS[1] / page.name
    code = [[source for kind, source in tutorial.cells(tutorial.read_page(path)) if kind == "code"]
            for path in (page, twin)]
    assert code[0] == code[1], f"{page.name}: the Chinese page runs other code than the English one"


@pytest.mark.parametrize("page", PAGES + INDEXES, ids=IDS + INDEX_IDS)
def test_links_reach_what_they_name(page):
    prose = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)  # not code cells
    links = LINK.findall(prose)
    assert links, f"{page.name} links to nothing"
    if page.name == "README.md":  # the index lists every page of its folder
        unlisted = {p.name for p in PAGES if p.parent == page.parent} - {target for _, target in links}
        assert not unlisted, f"{page.relative_to(ROOT)} does not list {sorted(unlisted)}"
    for text, target in links:
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the page
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve()
        assert linked.exists(), f"{page.name}: the link [{text}]({target}) reaches no file ({linked})"
        lines = LINES.match("#" + fragment) if fragment else None
        if lines is None:
            continue
        source = linked.read_text(encoding="utf-8").splitlines()
        first, last = int(lines[1]), int(lines[2] or lines[1])
        assert 1 <= first <= last <= len(source), (
            f"{page.name}: [{text}]({target}) names lines {first}-{last} of a file of {len(source)} lines")
        names = [name.split(".")[-1] for name in re.findall(r"`([^`]+)`", text)]  # `nn.Linear`: Linear
        excerpt = "\n".join(source[first - 1:last])
        assert not names or any(name in excerpt for name in names), (
            f"{page.name}: [{text}]({target}): lines {first}-{last} no longer contain {names}; the code "
            "moved, update the line numbers")


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_committed_notebook_is_the_page(page):
    notebook, rerun = tutorial.notebook_path(page), f"python tools/tutorial.py {page.relative_to(ROOT)}"
    assert notebook.is_file(), f"{notebook.name} is missing: run {rerun}"
    committed = nbformat.read(notebook, as_version=4)
    assert tutorial.cells(committed) == tutorial.cells(tutorial.read_page(page)), (
        f"{notebook.name} is out of date with {page.name}: run {rerun}")
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

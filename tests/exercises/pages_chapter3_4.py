"""Checks shared by the tests of chapters 3 and 4 of the walkthrough: each page runs (quickly) as a notebook,
its committed .ipynb holds the page's cells, its two languages run the same code, and its links into
tinyae/ point at lines that exist and name what the link says.

(tests/test_tutorial.py checks every page's notebook; these are the chapter 3-4 pages' own checks.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("tutorial", "tutorial.zh-CN")
CODE_LINK = re.compile(r"\[([^\]]*)\]\((\.\./\.\./tinyae/[^)#]+)(?:#L(\d+)(?:-L(\d+))?)?\)")


def pages(name: str) -> list[Path]:
    return [ROOT / "docs" / language / name for language in LANGUAGES]


def code_cells(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", page.read_text(encoding="utf-8"), flags=re.S)


def run_quick(page: Path, monkeypatch, scratch: Path) -> None:
    """Execute the page as a notebook with TINYAE_TUTORIAL_QUICK=1 on NumPy; a cell error fails.

    It runs in ``scratch`` laid out as the repository (docs/<language>/, and tinyae/ linked to this
    checkout's), so what the page writes, into the root it finds from its working directory, stays there."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("TINYAE_TUTORIAL_QUICK", "1")
    monkeypatch.setenv("TINYAE_BACKEND", "numpy")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    cwd = scratch / "docs" / page.parent.name
    cwd.mkdir(parents=True)
    (scratch / "tinyae").symlink_to(ROOT / "tinyae", target_is_directory=True)
    notebook = jupytext.read(page)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute(cwd=str(cwd))  # raises CellExecutionError, naming the cell, on any error
    outputs = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "quick run" in outputs


def check_notebook_in_sync(page: Path) -> None:
    """The committed PAGE.ipynb holds exactly the page's code cells, every one executed, in a full run."""
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(page.with_suffix(".ipynb"), as_version=4)
    committed = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    name = page.with_suffix(".ipynb").name
    assert committed == code_cells(page), f"{name} is out of date: re-execute the page"
    assert all(cell.get("execution_count") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{name}: a code cell was not executed"
    text = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []))
    assert "full run" in text, f"{name} was executed in QUICK mode, not from a full run"


def check_links(page: Path) -> None:
    """Every link into tinyae/ names a file that exists; a #Lstart-Lend anchor lies inside the file, and each
    `name` (code span) of the link text occurs in those lines, as its last dotted part."""
    links = CODE_LINK.findall(page.read_text(encoding="utf-8"))
    assert links, f"{page.name} links to no tinyae code"
    for text, target, start, end in links:
        path = (page.parent / target).resolve()
        assert path.is_file(), f"{page.name}: link to {target}, which does not exist"
        if not start:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        first, last = int(start), int(end or start)
        assert 1 <= first <= last <= len(lines), f"{page.name}: {target}#L{start} is past the end of the file"
        excerpt = "\n".join(lines[first - 1:last])
        for name in re.findall(r"`([^`]+)`", text):
            identifier = name.split(".")[-1]
            assert identifier in excerpt, (f"{page.name}: link [{text}] to {target}#L{start}-L{end}: "
                                           f"{identifier!r} is not in those lines (did the code move?)")


def check_languages_share_code(name: str) -> None:
    english, chinese = pages(name)
    assert code_cells(english) == code_cells(chinese), f"{name}: the two languages run different code"
    figures = set(re.findall(r"figures/([\w.-]+\.png)", english.read_text(encoding="utf-8")))
    assert figures == set(re.findall(r"figures/([\w.-]+\.png)", chinese.read_text(encoding="utf-8")))
    for figure in figures:
        assert (ROOT / "docs" / "tutorial" / "figures" / figure).is_file(), f"{figure} is not committed"

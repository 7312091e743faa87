"""Every Python snippet of README.md runs as pasted: each ```python block alone, in a fresh namespace, in a
folder where `tinyae train` has written `runs/vae` (a tiny one: one epoch on 500 images)."""

import re
from pathlib import Path

import pytest

from tinyae.app.cli import main
from tests.conftest import BACKEND

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def folder_with_a_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert main(["train", "--epochs", "1", "--limit", "500", "--test-limit", "100", "--quiet"]) == 0
    return folder


def test_the_readme_has_snippets():
    assert len(BLOCKS) >= 4 and any("tinyae.load_run" in block for block in BLOCKS)


@pytest.mark.skipif(BACKEND == "strict", reason="the snippets and `tinyae train` run on numpy")
@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=lambda number: f"snippet {number + 1}")
def test_readme_snippet_runs_as_pasted(number, folder_with_a_run, monkeypatch):
    monkeypatch.chdir(folder_with_a_run)
    exec(compile(BLOCKS[number], f"README.md, snippet {number + 1}", "exec"), {"__name__": "__main__"})

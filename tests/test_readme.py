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


def generating_images_commands() -> list[list[str]]:
    """The `tinyae` command lines of the README's "Generating images" block, comments dropped."""
    import shlex

    section = README.read_text().split("## Generating images", 1)[1]
    block = re.search(r"^```bash\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL).group(1)
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]


@pytest.mark.skipif(BACKEND == "strict", reason="the commands run on numpy")
def test_the_generating_images_commands_run_as_the_readme_says(tmp_path, monkeypatch, capsys):
    """Each command as written (training shortened to one epoch on 500 images), in a fresh folder; the
    figures the README shows are written to this folder's docs/gallery instead of the repository's."""
    from tinyae.app.browser import BrowserNotFound, find_chromium

    commands = generating_images_commands()
    assert [command[:2] for command in commands] == [["tinyae", "train"], ["tinyae", "sample"],
                                                     ["tinyae", "sample"], ["tinyae", "arithmetic"],
                                                     ["tinyae", "explore"]]
    monkeypatch.chdir(tmp_path)
    for command in commands:
        arguments = command[1:]
        if arguments[0] == "train":
            arguments += ["--epochs", "1", "--limit", "500", "--test-limit", "200", "--quiet"]
        if "--screenshot" in arguments:
            try:
                find_chromium()
            except BrowserNotFound as error:
                arguments = arguments[:arguments.index("--screenshot")]
                print(f"no Chromium ({error}): the page is written without its screenshot")
        assert main(arguments) == 0, command
    for written in ("runs/cvae/figures/sample.png", "docs/gallery/cvae_grid.png", "docs/gallery/arithmetic.png",
                    "runs/cvae/explore.html"):
        assert (tmp_path / written).stat().st_size > 0, written

"""The tinyae command's help, version and --threads: plain-text help with a description for every command."""

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tinyae
from tinyae.app import cli, process


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return action.choices


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(["--version"])
    assert stop.value.code == 0
    declared = re.search(r'^version = "(.+)"$', (Path(__file__).parents[1] / "pyproject.toml").read_text(), re.M)
    assert capsys.readouterr().out == f"tinyae {declared.group(1)}\n" == f"tinyae {tinyae.__version__}\n"


def test_every_command_has_a_description_and_plain_text_help():
    commands = subcommands()
    assert {"train", "eval", "sample", "plot", "gradcheck"} <= set(commands)
    for name, parser in [("tinyae", cli.build_parser()), *commands.items()]:
        text = parser.format_help()
        assert parser.description, name
        assert not re.search(r"``|`|:math:|:func:|\*\*", text), f"{name}: markup in\n{text}"


def test_every_command_takes_threads():
    for name, parser in subcommands().items():
        assert "--threads" in parser.format_help(), name


def test_threads_reach_the_process_settings(monkeypatch, tmp_path, capsys):
    chosen = []
    monkeypatch.setattr(process, "configure_process", chosen.append)
    cli.main(["plot", str(tmp_path / "no-run"), "--threads", "3"])
    cli.main(["plot", str(tmp_path / "no-run")])
    assert chosen == [3, None]


def test_the_command_line_help_runs():
    result = subprocess.run([sys.executable, "-m", "tinyae", "train", "--help"], capture_output=True, text=True,
                            check=True)
    assert "--threads N" in result.stdout and "physical cores" in result.stdout

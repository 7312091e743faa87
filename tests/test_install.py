"""An install that works anywhere: the wheel built from this checkout, installed into a fresh virtual
environment, trains from another folder without a network (MNIST is package data)."""

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[1]
DEPENDENCIES = ("numpy", "matplotlib", "tqdm", "threadpoolctl")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BACKEND != "numpy", reason="the installed command runs on numpy; checked once, in the "
                                                  "numpy run of the suite"),
]


def run(command: list, cwd: Path, env: dict | None = None) -> str:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def can_build_offline() -> bool:
    """This environment can build the wheel itself: setuptools 70.1 or later, or an older one and wheel (the
    dev extra brings setuptools>=70.1)."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the checkout (the build leaves build/ and *.egg-info beside its sources)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "tinyae", source / "tinyae", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    isolation = ["--no-build-isolation"] if can_build_offline() else []  # else pip fetches setuptools
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", tmp_path / "dist", source], tmp_path)
    (wheel,) = (tmp_path / "dist").glob("tinyae-*.whl")
    return wheel


def dependency_folder(name: str) -> Path:
    """The folder on sys.path that holds module or package ``name``."""
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parents[1 if spec.submodule_search_locations else 0]


def fresh_environment(tmp_path: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed, that sees this environment's dependencies through
    a .pth file naming their folders (.pth files in those folders are not read: no editable tinyae)."""
    fresh = tmp_path / "fresh"
    run([sys.executable, "-m", "venv", fresh], tmp_path)
    python = fresh / "bin" / "python"
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], tmp_path)
    folders = {str(dependency_folder(name)) for name in DEPENDENCIES}
    folders.add(sysconfig.get_paths()["purelib"])
    site_packages = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
    (Path(site_packages.strip()) / "dependencies.pth").write_text("\n".join(sorted(folders - {str(ROOT)})) + "\n")
    return fresh


def test_the_wheel_trains_offline_from_any_folder(tmp_path):
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"tinyae/data/files/mnist/{split}-{kind}-ubyte.gz" for split in ("train", "t10k")
            for kind in ("images-idx3", "labels-idx1")} <= names
    fresh = fresh_environment(tmp_path, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "TINYAE_DATA")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "empty-cache"), TINYAE_MNIST_URL="http://127.0.0.1:9/",
               TINYAE_BACKEND="numpy")
    where = run([fresh / "bin" / "python", "-c", "import tinyae; print(tinyae.__file__)"], elsewhere, env)
    assert Path(where.strip()).is_relative_to(fresh)
    assert run([fresh / "bin" / "tinyae", "--version"], elsewhere, env) == "tinyae 0.1.0\n"
    output = run([fresh / "bin" / "tinyae", "train", "--epochs", "1", "--limit", "500", "--test-limit", "100",
                  "--hidden", "16", "--latent-dim", "2", "--out", "run", "--quiet", "--threads", "1"], elsewhere, env)
    assert "epoch   1" in output
    assert (elsewhere / "run" / "checkpoint.npz").is_file() and (elsewhere / "run" / "figures" / "loss.png").is_file()
    assert not (tmp_path / "empty-cache" / "tinyae").exists()  # nothing downloaded

"""Every script in examples/ runs, in a shortened form, and writes legible figures (so none of them rots).

Scripts are discovered (examples/*.py but the helpers, whose names start with "_"), each run in a fresh
interpreter (sys.executable) with warnings as errors, as a user would run it:
- scripts built on examples/_common.py get ``--limit 256 --test-limit 128 --epochs 1 --out DIR`` and must
  write the PNGs listed in FIGURES (a new one not listed must write at least one);
- scripts without options (NO_OPTIONS) run as they are; any other gets the same shortened options but
  ``--out``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from tests.conftest import BACKEND

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(path for path in EXAMPLES.glob("*.py") if not path.name.startswith("_"))
SHORT = ["--limit", "256", "--test-limit", "128", "--epochs", "1"]
NO_OPTIONS = {"first_gradient"}
FIGURES = {
    "autoencoder": ["reconstructions.png", "losses.png"],
    "sparse_autoencoder": ["codes.png"],
    "denoising_autoencoder": ["gaussian.png", "mask.png"],
    "vae": ["reconstructions.png", "samples.png", "loss.png"],
    "beta_vae": ["recon_vs_kl.png", "reconstructions.png", "samples.png"],
    "conv_vae": ["reconstructions.png", "samples.png", "loss.png"],
    "latent_interpolation": ["interpolation.png", "three_to_eight.png", "thickness.png"],
}

pytestmark = pytest.mark.skipif(
    BACKEND != "numpy",
    reason="the examples run on the default (numpy) backend in a subprocess; they are checked once, in the "
           "numpy run of the suite, not again under TINYAE_BACKEND=" + BACKEND,
)


def uses_common(script: Path) -> bool:
    return "from _common import" in script.read_text()


def run(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TINYAE_BACKEND": "numpy", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-W", "error", str(script), *args], cwd=cwd, env=environment,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{script.name} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def assert_legible(path: Path) -> None:
    """A real figure: a PNG of some size whose pixels are not all one color."""
    assert path.is_file(), f"{path.name} was not written"
    assert path.stat().st_size > 5_000, f"{path.name} is only {path.stat().st_size} bytes"
    pixels = plt.imread(path)
    assert min(pixels.shape[:2]) >= 100, f"{path.name} is {pixels.shape[1]}×{pixels.shape[0]} pixels"
    assert pixels[..., :3].std() > 0.05, f"{path.name} is nearly blank"


def test_every_example_is_known():
    names = {script.stem for script in SCRIPTS}
    assert set(FIGURES) | NO_OPTIONS <= names, f"listed but missing: {set(FIGURES) | NO_OPTIONS - names}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.stem)
def test_example_runs(script: Path, tmp_path: Path):
    if script.stem in NO_OPTIONS:
        run(script, [], tmp_path)
        return
    if not uses_common(script):
        run(script, SHORT, tmp_path)
        return
    out = tmp_path / "out"
    result = run(script, [*SHORT, "--out", str(out)], tmp_path)
    expected = FIGURES.get(script.stem) or [path.name for path in out.glob("*.png")]
    assert expected, f"{script.name} wrote no figure"
    for name in expected:
        assert_legible(out / name)
        assert f"wrote {out / name}" in result.stdout, f"{script.name} did not say it wrote {name}"

"""The conditional VAE's quality bars (issue 16), measured as a user gets them: `tinyae train` with the
defaults (10 epochs, full MNIST) of a VAE and a CVAE of the same size, then `tinyae eval`.

    python bench/cvae_quality.py [--latent-dims 2 5 8 20] [--out /tmp/cvae-quality] [-k 100]

Bars: the CVAE's test −ELBO (of log p(x|y)) at most the VAE's (of log p(x)) at the same latent size, and
at least 90% of 1,000 generated digits recognised by `tinyae.app.classifier`'s judge as the digit asked for.
Prints one Markdown row per latent size; the runs are kept under --out (continued if there).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import machine


def run(out: Path, model: str, latent_dim: int, k: int) -> dict:
    """Train (or continue) the run and evaluate it; its eval.json."""
    folder = out / f"{model}-{latent_dim}"
    tinyae = [sys.executable, "-m", "tinyae"]
    subprocess.run([*tinyae, "train", "--model", model, "--latent-dim", str(latent_dim), "--out", str(folder),
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*tinyae, "eval", str(folder), "-k", str(k), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return json.loads((folder / "eval.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latent-dims", type=int, nargs="+", default=[2, 5, 8, 20])
    parser.add_argument("--out", type=Path, default=Path("/tmp/cvae-quality"))
    parser.add_argument("-k", type=int, default=100, help="importance samples of the IWAE estimate")
    args = parser.parse_args()
    print(machine())
    print("| latent dim | VAE test −ELBO | CVAE test −ELBO | CVAE −log p(x\\|y), IWAE | generated digits "
          "recognised | per digit (0-9) | judge's test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for latent_dim in args.latent_dims:
        vae, cvae = (run(args.out, model, latent_dim, args.k) for model in ("vae", "cvae"))
        per_digit = " ".join(f"{value:.0%}" for value in cvae["generated_digit_accuracy_per_digit"])
        print(f"| {latent_dim} | {vae['negative_elbo']:.2f} | {cvae['negative_elbo']:.2f} | "
              f"{cvae['negative_log_likelihood']:.2f} | {cvae['generated_digit_accuracy']:.1%} | {per_digit} | "
              f"{cvae['judge_test_accuracy']:.1%} |", flush=True)


if __name__ == "__main__":
    main()

"""Draw the README's figures of the computation graph from the code as it is now:

    python tools/draw_readme_graph.py            # writes docs/vae_graph.png and docs/vae_graph_backward.png

The loss of the default VAE (784-400-20, ``tinyae train``'s model, weights seeded as ``--seed 0``) on the
first 128 test images of the bundled MNIST (any 128 images would give the same graph; these give the
gradient norms of the second figure something real to show). Tensors carry the model's own names (x, mu,
logvar, z, logits, recon, kl, loss) and parameter names, the inputs of Linear, Reparameterize and
GaussianKL are labelled. The second figure adds ‖∂L/∂t‖₂ on every tensor and the backward pass, the
gradient flowing back along each edge.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def vae_loss(batch: int = 128):
    """(loss, model): the −ELBO per image of the default VAE on the first ``batch`` test images."""
    import tinyae
    from tinyae.data import load_mnist
    from tinyae.models import VAE

    tinyae.manual_seed(0)
    model = VAE()
    images, _ = load_mnist("test")
    x = tinyae.tensor(images[:batch].reshape(batch, -1).astype(np.float32) / 255)
    loss, _ = model.loss(x)
    return loss, model


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder of the figures (default docs/)")
    args = parser.parse_args(argv)
    from tinyae import viz

    loss, model = vae_loss()
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [viz.draw_graph(loss, args.out / "vae_graph.png", module=model, dpi=120),
             viz.draw_graph(loss, args.out / "vae_graph_backward.png", module=model, grads=True, backward=True,
                            dpi=120)]
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()

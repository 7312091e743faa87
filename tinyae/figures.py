"""Figures with matplotlib (Agg, headless): image grids, loss curves, reconstructions and samples.

Every function writes one PNG and returns its path. Images are (n, 28, 28) or (n, 784) NumPy arrays of
intensities in [0, 1]; models are run in eval mode without recording a graph.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402

from .autograd import no_grad  # noqa: E402
from .tensor import Tensor  # noqa: E402


def as_images(values) -> np.ndarray:
    """Host images (n, 28, 28) from a Tensor or array of shape (n, 784) or (n, 1, 28, 28)."""
    array = values.numpy() if isinstance(values, Tensor) else np.asarray(values)
    side = int(math.isqrt(array[0].size))
    return array.reshape(len(array), side, side)


def image_grid(images, path: Path, columns: int = 8, title: str | None = None, row_labels=None) -> Path:
    """Tile images into a grid (white lines between them) and save it as a PNG."""
    images = as_images(images)
    rows = math.ceil(len(images) / columns)
    side = images.shape[1]
    canvas = np.ones((rows * (side + 1) + 1, columns * (side + 1) + 1))
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[1 + row * (side + 1): (row + 1) * (side + 1), 1 + column * (side + 1): (column + 1) * (side + 1)] = image
    figure, axes = plt.subplots(figsize=(columns * 0.6 + 0.6, rows * 0.6 + (0.5 if title else 0.2)))
    axes.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    axes.set_xticks([])
    if row_labels:
        axes.set_yticks([(side + 1) * (i + 0.5) for i in range(len(row_labels))], row_labels)
    else:
        axes.set_yticks([])
    if title:
        axes.set_title(title, fontsize=10)
    return save(figure, path)


def save(figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def loss_curves(metrics: list[dict], path: Path) -> Path:
    """Train and test loss per epoch, and each loss part, from the records of metrics.jsonl."""
    epochs = [record["epoch"] for record in metrics]
    parts = sorted({key[len("test_"):] for record in metrics for key in record if key.startswith("test_")} - {"loss"})
    figure, axes = plt.subplots(1, 1 + len(parts), figsize=(4.5 * (1 + len(parts)), 3.5), squeeze=False)
    for axis, name in zip(axes[0], ["loss", *parts]):
        for split, style in (("train", "-o"), ("test", "--s")):
            axis.plot(epochs, [record.get(f"{split}_{name}") for record in metrics], style, label=split, markersize=3)
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"{name} (nats per image)")
        axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle("loss per epoch")
    return save(figure, path)


@no_grad()
def reconstructions(model, images: Tensor, path: Path, columns: int = 8) -> Path:
    """Pairs of rows: originals, then their reconstructions sigmoid(g_φ(f_θ(x))) (for VAEs, from μ(x))."""
    model.eval()
    code = model.encode(images)
    code = code[0] if isinstance(code, tuple) else code  # a VAE reconstructs from the posterior mean
    decoded = as_images(model.decode(code).sigmoid())
    originals = as_images(images)
    rows = []
    for start in range(0, len(originals), columns):
        rows += [originals[start: start + columns], decoded[start: start + columns]]
    return image_grid(np.concatenate(rows), path, columns, "originals (odd rows) and reconstructions (even rows)")


@no_grad()
def samples(model, n: int, path: Path, columns: int = 8) -> Path:
    """n images decoded from z ~ N(0, I) (VAEs only)."""
    model.eval()
    return image_grid(model.sample(n), path, columns, f"{n} samples from p(z) = N(0, I)")

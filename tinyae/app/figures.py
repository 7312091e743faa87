"""Figures with matplotlib: image grids, loss curves, reconstructions, samples, and walks through the latent
space (interpolations, traversals, the 2-D manifold, the embedding of the test set).

Every function writes one image file (PNG unless the path's suffix names another format) and returns
its path. Each figure is a ``matplotlib.figure.Figure`` drawn on
its own Agg canvas: neither pyplot nor a global backend is used, so importing this module or drawing a
figure leaves matplotlib's settings as the program chose them. Images are (n, 28, 28) or (n, 784) NumPy
arrays of intensities in [0, 1]; models are run in eval mode without recording a graph. Latent grids are
built on the host (a few numbers) and sent to the model's backend once; decoded images come back once.
A conditional model (a CVAE) is given the digits' ``labels`` (host ints (n,), or rows (n, classes)) with
its codes; the other models take none.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from statistics import NormalDist

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import random as tinyae_random
from ..autograd import no_grad
from .evaluate import condition_of, latent_means
from ..models import Autoencoder
from ..tensor import Tensor

DIGIT_COLORS = colormaps["tab10"]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas (no pyplot, no global backend)."""
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def as_images(values) -> np.ndarray:
    """Host images (n, 28, 28) from a Tensor or array of shape (n, 784) or (n, 1, 28, 28)."""
    array = values.numpy() if isinstance(values, Tensor) else np.asarray(values)
    side = int(math.isqrt(array[0].size))
    return array.reshape(len(array), side, side)


def image_grid(images, path: Path, columns: int = 8, title: str | None = None, row_labels=None,
               column_labels=None, xlabel: str | None = None, ylabel: str | None = None) -> Path:
    """Tile images into a grid (thin light-grey lines between them) and save it as a PNG; labels are optional
    strings per row and per column, and axis titles."""
    images = as_images(images)
    rows = math.ceil(len(images) / columns)
    side = images.shape[1]
    canvas = np.full((rows * (side + 1) + 1, columns * (side + 1) + 1), 0.3)  # 0 is white under gray_r
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[1 + row * (side + 1): (row + 1) * (side + 1), 1 + column * (side + 1): (column + 1) * (side + 1)] = image
    figure = new_figure((columns * 0.6 + 0.6, rows * 0.6 + (0.5 if title else 0.2)))
    axes = figure.subplots()
    axes.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    centers = [(side + 1) * (i + 0.5) for i in range(max(rows, columns))]
    axes.set_xticks(centers[:len(column_labels)] if column_labels else [], column_labels or [], fontsize=7)
    axes.set_yticks(centers[:len(row_labels)] if row_labels else [], row_labels or [], fontsize=7)
    axes.tick_params(length=0)
    axes.set_xlabel(xlabel or "")
    axes.set_ylabel(ylabel or "")
    if title:
        axes.set_title(title, fontsize=10)
    return save(figure, path)


def save(figure: Figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` (the format its suffix names, PNG by default) by write-then-rename: a
    kill at any moment leaves the old file or the new one, never a partial image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            figure.savefig(file, format=path.suffix[1:].lower() or "png", dpi=100, bbox_inches="tight")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def supported_formats() -> list[str]:
    """The file suffixes (without the dot) a figure can be saved as: png, pdf, svg, jpg, ..."""
    return sorted(FigureCanvasAgg.get_supported_filetypes())


def loss_curves(metrics: list[dict], path: Path) -> Path:
    """Train and test loss per epoch, each loss part, and the layers' gradient norms where the run logged
    them, from the records of metrics.jsonl."""
    return save(loss_figure(metrics), path)


def loss_figure(metrics: list[dict]) -> Figure:
    """One panel for the loss, and one per part where the loss has several (a VAE's recon and kl); a single
    part is the loss itself (an AE's recon) and gets no panel of its own. A run trained with
    --log-grad-norms gets a last panel: each layer's gradient norm (mean over the epoch's steps) on a log
    scale, where a fading layer shows. The epochs are integer ticks."""
    epochs = [record["epoch"] for record in metrics]
    parts = sorted({key[len("test_"):] for record in metrics for key in record if key.startswith("test_")} - {"loss"})
    panels = ["loss", *parts] if len(parts) > 1 else ["loss"]
    layers = list(dict.fromkeys(layer for record in metrics for layer in record.get("grad_norms", {})))
    figure = new_figure((4.5 * (len(panels) + bool(layers)) + (1.2 if layers else 0), 3.5))
    axes = figure.subplots(1, len(panels) + bool(layers), squeeze=False)[0]
    for axis, name in zip(axes, panels):
        for split, style in (("train", "-o"), ("test", "--s")):
            axis.plot(epochs, [record.get(f"{split}_{name}") for record in metrics], style, label=split, markersize=3)
        axis.set_ylabel(f"{name} (nats per image)")
        axis.legend()
    if layers:
        gradient_panel(axes[-1], epochs, metrics, layers)
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.set_xticks(epoch_ticks(min(epochs), max(epochs)))
        axis.grid(alpha=0.3)
    figure.suptitle("loss per epoch" + (" and gradient norm per layer" if layers else ""))
    return figure


def gradient_panel(axis, epochs: list[int], metrics: list[dict], layers: list[str]) -> None:
    """Each layer's ‖∂L/∂θ_layer‖₂ per epoch (NaN, a gap, where a record lacks it), on a log scale, the
    legend beside the panel."""
    colors = colormaps["viridis"]
    for number, layer in enumerate(layers):
        norms = [record.get("grad_norms", {}).get(layer, math.nan) for record in metrics]
        axis.plot(epochs, [math.nan if value is None else value for value in norms], "-o", markersize=2.5,
                  label=layer, color=colors(number / max(len(layers) - 1, 1)))
    axis.set_yscale("log")
    axis.set_ylabel("‖∂L/∂θ‖₂ per layer (mean over steps)")
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)


def epoch_ticks(first: int, last: int, most: int = 10) -> list[int]:
    """At most ``most`` integer ticks from ``first`` to ``last``, evenly spaced by a whole number of epochs."""
    step = math.ceil((last - first + 1) / most)
    return list(range(first, last + 1, step))


@no_grad()
def reconstructions(model: Autoencoder, images: Tensor, path: Path, columns: int = 8, labels=None) -> Path:
    """Pairs of rows: originals, then their reconstructions sigmoid(g_φ(f_θ(x))) (for VAEs, from μ(x))."""
    model.eval()
    condition = condition_of(model, labels)
    decoded = as_images(model.decode(latent_means(model, images, labels), *condition).sigmoid())  # from μ(x)
    originals = as_images(images)
    rows = []
    for start in range(0, len(originals), columns):
        rows += [originals[start: start + columns], decoded[start: start + columns]]
    return image_grid(np.concatenate(rows), path, columns, "originals (odd rows) and reconstructions (even rows)")


@no_grad()
def samples(model: Autoencoder, n: int, path: Path, columns: int = 8, digit: int | None = None) -> Path:
    """n images decoded from z ~ N(0, I) (VAEs only); a conditional model draws the digit ``digit``, or
    by default the digits 0, 1, …, 9 in turn."""
    model.eval()
    if not model.is_conditional:
        return image_grid(model.sample(n), path, columns, f"{n} samples from p(z) = N(0, I)")
    labels = np.arange(n) % model.config["classes"] if digit is None else np.full(n, digit)
    what = "of the digits 0, 1, … in turn" if digit is None else f"of the digit {digit}"
    return image_grid(model.sample(n, labels), path, columns, f"{n} samples {what}, z ~ N(0, I)")


@no_grad()
def class_grid(model: Autoencoder, path: Path, columns: int = 8) -> Path:
    """A conditional model's classic figure: row y decodes g_φ(z_j, y) for the same ``columns`` draws
    z_j ~ N(0, I) in every row, so a column holds one style (the code) drawn as each digit (the label)."""
    model.eval()
    classes, latent_dim = model.config["classes"], model.config["latent_dim"]
    z = tinyae_random.standard_normal((columns, latent_dim), dtype=np.float64, backend_name="numpy")
    codes = np.tile(z, (classes, 1))  # row-major (digit, column): the same z in every row
    labels = np.repeat(np.arange(classes), columns)
    return image_grid(decode_grid(model, codes, labels), path, columns,
                      row_labels=[str(digit) for digit in range(classes)],
                      column_labels=[f"z{j + 1}" for j in range(columns)], ylabel="digit y (the label)",
                      xlabel="code z ~ N(0, I), the same down each column",
                      title="one code per column decoded as every digit: the label sets the digit, z the style")


def decode_grid(model: Autoencoder, codes: np.ndarray, labels=None) -> np.ndarray:
    """sigmoid(g_φ(z)) for host codes (n, D) (and, for a conditional model, host labels (n,) or rows
    (n, classes)): the codes go to the model's backend once, images come back."""
    parameter = next(iter(model.parameters()))
    z = Tensor(codes.astype(parameter.dtype)).to(parameter.backend)
    return as_images(model.decode(z, *condition_of(model, labels)).sigmoid())


def one_hot_rows(labels, classes: int) -> np.ndarray:
    """Host one-hot rows (n, classes) of int labels (n,)."""
    return np.eye(classes)[np.asarray(labels)]


@no_grad()
def interpolations(model: Autoencoder, starts: Tensor, ends: Tensor, path: Path, steps: int = 10,
                   start_labels=None, end_labels=None) -> Path:
    """One row per pair of images (a, b): a, then g_φ((1 − t)·z_a + t·z_b) for t = 0, 1/(steps − 1), …, 1,
    then b, where z is the posterior mean μ(x) (the code f_θ(x) for an AE). A conditional model walks the
    label too, from a's one-hot row to b's: y_t = (1 − t)·e_a + t·e_b (a soft label in between)."""
    model.eval()
    z_start = latent_means(model, starts, start_labels).numpy()
    z_end = latent_means(model, ends, end_labels).numpy()
    t = np.linspace(0, 1, steps).reshape(1, steps, 1)
    codes = z_start[:, None] + t * (z_end - z_start)[:, None]  # (pairs, steps, D)
    labels = None
    if model.is_conditional:
        y_start, y_end = (one_hot_rows(y, model.config["classes"]) for y in (start_labels, end_labels))
        labels = (y_start[:, None] + t * (y_end - y_start)[:, None]).reshape(len(codes) * steps, -1)
    firsts, lasts = as_images(starts), as_images(ends)
    decoded = decode_grid(model, codes.reshape(len(codes) * steps, -1), labels)
    rows = np.concatenate([firsts[:, None], decoded.reshape(len(codes), steps, *firsts.shape[1:]), lasts[:, None]],
                          axis=1)
    labels = ["image a", *[f"t={value:.2g}" for value in t.ravel()], "image b"]
    return image_grid(rows.reshape(-1, *rows.shape[2:]), path, steps + 2, column_labels=labels,
                      title="straight lines in latent space between pairs of test digits "
                            "(first and last columns: the digits themselves)")


def traversal_codes(center: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Codes (dims·V, D), row-major over (d, v): ``center`` (D,) with z_d replaced by values[d, v]
    for each of the first ``dims`` dimensions, ``values`` being (dims, V)."""
    dims, count = values.shape
    codes = np.repeat(center[None, None, :], dims, axis=0).repeat(count, axis=1)
    codes[np.arange(dims), :, np.arange(dims)] = values  # row d: dimension d takes each value in turn
    return codes.reshape(dims * count, -1)


@no_grad()
def traversal(model: Autoencoder, center: np.ndarray, dims: int, path: Path, center_name: str,
              spread: tuple[np.ndarray, np.ndarray] | None = None, steps: int = 11, digit: int | None = None) -> Path:
    """Rows: latent dimensions d < ``dims``; columns: g_φ(z) with z = ``center`` except z_d = m_d + v·s_d
    for ``steps`` values v evenly spaced in [−3, 3]. (m, s) = ``spread``, the mean and standard deviation
    of each dimension over test codes (an AE's codes have no prior scale), or (0, 1), the prior's. A
    conditional model draws every image as the digit ``digit``."""
    model.eval()
    labels = None if digit is None else np.full(dims * steps, digit)
    grid = np.linspace(-3, 3, steps)
    mean, std = spread if spread is not None else (np.zeros(dims), np.ones(dims))
    values = mean[:dims, None] + std[:dims, None] * grid
    scale = "the prior's σ" if spread is None else "σ of the test codes, around their mean"
    return image_grid(decode_grid(model, traversal_codes(center, values), labels), path, steps,
                      row_labels=[f"z{d}" for d in range(dims)], column_labels=[f"{v:+.1f}" for v in grid],
                      xlabel=f"z_d in units of {scale}",
                      title=f"one latent dimension at a time from −3σ to 3σ, the others at {center_name}"
                            + ("" if digit is None else f", as the digit {digit}"))


def manifold_codes(size: int) -> np.ndarray:
    """z = (Φ⁻¹(u₁), Φ⁻¹(u₂)) for u on the grid ((i + ½)/size)_i of (0, 1)², so that every cell holds the
    same prior mass of N(0, I); (size², 2), row-major with z₂ decreasing down the rows, z₁ growing along."""
    quantiles = [NormalDist().inv_cdf((i + 0.5) / size) for i in range(size)]
    z1, z2 = np.meshgrid(quantiles, quantiles[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


@no_grad()
def manifold(model: Autoencoder, path: Path, size: int = 20, digit: int | None = None) -> Path:
    """The decoded grid g_φ(z) over a 2-D latent space at the codes of ``manifold_codes`` (for a
    conditional model, g_φ(z, ``digit``): the space of one digit's styles)."""
    model.eval()
    codes = manifold_codes(size)
    digits = None if digit is None else np.full(len(codes), digit)
    every = math.ceil(size / 20)  # at most about 20 labels, placed symmetrically about the middle
    labels = [f"{z:+.1f}" if min(i, size - 1 - i) % every == 0 else "" for i, z in enumerate(codes[:size, 0])]
    return image_grid(decode_grid(model, codes, digits), path, size, row_labels=labels[::-1],
                      column_labels=labels, xlabel="z1", ylabel="z2",
                      title="decoded z = Φ⁻¹(u) over a uniform grid of u in (0, 1)²"
                            + ("" if digit is None else f", as the digit {digit}"))


def principal_components(codes: np.ndarray, count: int = 2) -> tuple[np.ndarray, float]:
    """(the centered codes projected on their first ``count`` principal directions, the fraction of the
    variance they explain), from the SVD of the centered codes X − X̄ = U S Vᵀ: projections (X − X̄)V."""
    centered = codes - codes.mean(axis=0)
    _, singular_values, directions = np.linalg.svd(centered, full_matrices=False)
    explained = (singular_values[:count] ** 2).sum() / (singular_values**2).sum()
    return centered @ directions[:count].T, float(explained)


def embedding(codes: np.ndarray, labels: np.ndarray, path: Path, what: str) -> Path:
    """Scatter of host codes (N, D) colored by digit label; for D > 2 their projection on the first two
    principal components, for D = 1 the code against the label."""
    dims = codes.shape[1]
    if dims > 2:
        points, explained = principal_components(codes)
        title = f"{what}: PCA of the {dims}-D codes (2 components, {explained:.0%} of the variance)"
        axis_names = ("principal component 1", "principal component 2")
    elif dims == 2:
        points, title, axis_names = codes, f"{what} in the 2-D latent space", ("z1", "z2")
    else:
        points, title, axis_names = np.stack([codes[:, 0], labels], axis=1), f"{what} (1-D)", ("z1", "digit")
    figure = new_figure((6.5, 5.5))
    axes = figure.subplots()
    for digit in np.unique(labels):
        chosen = labels == digit
        axes.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=0.6,
                     color=DIGIT_COLORS(int(digit) % 10), label=str(digit), rasterized=True)
    axes.legend(title="digit", markerscale=4, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    axes.set_xlabel(axis_names[0])
    axes.set_ylabel(axis_names[1])
    axes.set_title(f"{title}\n{len(codes)} test images", fontsize=10)
    axes.grid(alpha=0.3)
    return save(figure, path)


def stroke_mass(images: np.ndarray) -> np.ndarray:
    """The "thickness" of each host image (n, ...): its stroke mass m(x) = Σ_p x_p, the summed intensity."""
    return images.reshape(len(images), -1).sum(axis=1)


def slant(images: np.ndarray) -> np.ndarray:
    """The slant of each host image (n, ...) of square side S: the shear of its ink, cov(u, v)/var(v).

    With the intensities as weights w_p, u_p the pixel's column (to the right) and v_p its height (rows
    counted upwards), ū, v̄ their means, cov(u, v) = Σ w (u − ū)(v − v̄)/Σ w and var(v) = Σ w (v − v̄)²/Σ w:
    the columns the ink moves to the right per row up, > 0 for a digit leaning right like "/", 0 upright.
    """
    weights = images.reshape(len(images), -1)
    side = math.isqrt(weights.shape[1])
    heights, columns = np.divmod(np.arange(side * side), side)
    heights = side - 1 - heights  # rows counted upwards
    total = np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    u = columns - (weights * columns).sum(axis=1, keepdims=True) / total
    v = heights - (weights * heights).sum(axis=1, keepdims=True) / total
    return (weights * u * v).sum(axis=1) / np.maximum((weights * v * v).sum(axis=1), 1e-12)


ATTRIBUTES = {"thickness": stroke_mass, "slant": slant}  # name → the measure of a host image


def attribute_vector(codes: np.ndarray, values: np.ndarray, labels: np.ndarray, fraction: float = 0.25
                     ) -> np.ndarray:
    """The latent direction of an attribute: v = (1/|K|) Σ_{k ∈ K} (z̄_k,high − z̄_k,low), (D,).

    For each class k, z̄_k,high is the mean code of its images whose attribute ``values`` lie in the top
    ``fraction`` of the class's values, z̄_k,low of those in the bottom ``fraction``; K is the classes that
    have both. Comparing within a class keeps v from also moving between digits (thick digits are more often
    0s and 8s than 1s: a difference over all images would partly point from 1 to 8); averaging over the
    classes gives each the same weight. ``codes`` (N, D), ``values`` and ``labels`` (N,) on the host.
    """
    differences = []
    for label in np.unique(labels):
        chosen = labels == label
        low, high = np.quantile(values[chosen], [fraction, 1 - fraction])
        lows, highs = chosen & (values <= low), chosen & (values >= high)
        if chosen.sum() >= 2 and highs.any() and lows.any():
            differences.append(codes[highs].mean(axis=0) - codes[lows].mean(axis=0))
    if not differences:
        raise ValueError("attribute_vector: no class has two images or more to compare")
    return np.mean(differences, axis=0)


def one_of_each_class(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` images taken in turn from each class: the first of class 0, the first of class
    1, ..., then the second of each, ... (in the order of ``labels``, a class skipped once it runs out)."""
    by_class = np.argsort(labels, kind="stable")
    rank = np.empty(len(labels), dtype=np.int64)  # each image's place among the images of its class
    rank[by_class] = np.arange(len(labels)) - np.searchsorted(labels[by_class], labels[by_class])
    return np.lexsort((labels, rank))[:count]


@no_grad()
def arithmetic_images(model: Autoencoder, images: Tensor, vector: np.ndarray, alphas: np.ndarray,
                      labels=None) -> np.ndarray:
    """Host images (rows, len(alphas), side, side): sigmoid(g_φ(z + α·v)) for each image's code z (μ(x), or
    f_θ(x) for an AE) and each α; a conditional model encodes and decodes each row with its label (host
    ``labels`` (rows,)): the digit stays, the style moves."""
    model.eval()
    codes = latent_means(model, images, labels).numpy()
    shifted = codes[:, None, :] + alphas[None, :, None] * vector  # (rows, steps, D)
    repeated = None if labels is None else np.repeat(np.asarray(labels), len(alphas), axis=0)
    decoded = decode_grid(model, shifted.reshape(-1, codes.shape[1]), repeated)
    return decoded.reshape(len(codes), len(alphas), *decoded.shape[1:])


def arithmetic(model: Autoencoder, images: Tensor, vector: np.ndarray, path: Path, attribute: str,
               alphas: np.ndarray | None = None, labels=None) -> Path:
    """One row per test image: the image, then the decoded z + α·v for each α (default −2 to 2 by ½; α = 0
    is the reconstruction), v being the attribute's vector (``attribute_vector``)."""
    alphas = np.linspace(-2, 2, 9) if alphas is None else alphas
    decoded = arithmetic_images(model, images, vector, alphas, labels)
    originals = as_images(images)
    rows = np.concatenate([originals[:, None], decoded], axis=1)
    column_labels = ["image", *[f"α={alpha:+.2g}" if alpha else "α=0" for alpha in alphas]]
    return image_grid(rows.reshape(-1, *rows.shape[2:]), path, len(alphas) + 1, column_labels=column_labels,
                      xlabel=f"z + α·v, v the {attribute} vector (|v| = {np.linalg.norm(vector):.2f})",
                      title=f"latent arithmetic: adding the {attribute} vector to test digits' codes\n"
                            f"(v = mean code of the highest {attribute} quarter − the lowest, within each "
                            "digit, averaged over digits; α=0: the reconstruction)")

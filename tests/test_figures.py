"""tinyae.app.figures: the latent grids by hand, and every figure from small untrained models (any backend)."""

import matplotlib.image
import numpy as np
import pytest

import tinyae
from tinyae.app import figures
from tinyae.models import AE, VAE, ConvVAE


def assert_png_shows_something(path):
    assert path.suffix == ".png" and path.stat().st_size > 2000
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100 and pixels[..., :3].std() > 0.05


def images(n, layout="flat"):
    host = np.random.default_rng(0).uniform(size=(n, 784))
    return tinyae.tensor(host if layout == "flat" else host.reshape(n, 1, 28, 28), dtype="float32")


@pytest.fixture
def vae():
    tinyae.manual_seed(0)
    return VAE(hidden=16, latent_dim=2)


def test_traversal_codes_change_one_dimension_per_row():
    center = np.array([0.5, -1.0, 2.0])
    values = np.array([[-3.0, 0.0, 3.0], [-1.0, 0.0, 1.0]])
    codes = figures.traversal_codes(center, values).reshape(2, 3, 3)
    np.testing.assert_array_equal(codes[0], [[-3, -1, 2], [0, -1, 2], [3, -1, 2]])
    np.testing.assert_array_equal(codes[1], [[0.5, -1, 2], [0.5, 0, 2], [0.5, 1, 2]])


def test_manifold_codes_are_gaussian_quantiles_with_z2_growing_upwards():
    codes = figures.manifold_codes(4).reshape(4, 4, 2)
    quantiles = [-1.150349, -0.318639, 0.318639, 1.150349]  # Φ⁻¹(1/8), Φ⁻¹(3/8), Φ⁻¹(5/8), Φ⁻¹(7/8)
    np.testing.assert_allclose(codes[0, :, 0], quantiles, atol=1e-6)  # z1 along each row
    np.testing.assert_allclose(codes[:, 0, 1], quantiles[::-1], atol=1e-6)  # z2 down the rows


def test_principal_components_of_points_on_a_line():
    direction = np.array([1.0, 2.0, 0.0, -2.0]) / 3
    positions = np.linspace(-2, 2, 9)
    codes = positions[:, None] * direction + 5 + np.random.default_rng(0).normal(scale=1e-6, size=(9, 4))
    points, explained = figures.principal_components(codes)
    assert points.shape == (9, 2) and explained == pytest.approx(1.0)
    np.testing.assert_allclose(np.abs(points[:, 0]), np.abs(positions), atol=1e-5)  # the sign of a PC is free


def test_interpolation_traversal_and_manifold_figures(vae, tmp_path):
    x = images(6)
    assert_png_shows_something(figures.interpolations(vae, x[:3], x[3:], tmp_path / "lines.png", steps=5))
    assert_png_shows_something(figures.traversal(vae, np.zeros(2), 2, tmp_path / "traversal.png", "0"))
    assert_png_shows_something(figures.manifold(vae, tmp_path / "manifold.png", size=6))


def test_figures_of_a_conv_vae_and_an_ae(tmp_path):
    tinyae.manual_seed(0)
    x = images(4, "image")
    conv = ConvVAE(latent_dim=3)
    assert_png_shows_something(figures.interpolations(conv, x[:2], x[2:], tmp_path / "conv.png", steps=3))
    ae = AE(hidden=16, latent_dim=3)
    spread = np.full(3, 5.0), np.full(3, 2.0)
    assert_png_shows_something(figures.traversal(ae, np.ones(3), 3, tmp_path / "ae.png", "a code", spread))


@pytest.mark.parametrize("dims", [1, 2, 5])
def test_embedding_in_one_two_and_more_dimensions(dims, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    codes = rng.normal(size=(300, dims)) + labels[:, None] * 0.5
    assert_png_shows_something(figures.embedding(codes, labels, tmp_path / "embedding.png", "test codes"))


def loss_records(epochs, parts):
    return [{"epoch": epoch, "train_loss": 100.0 / epoch, "test_loss": 110.0 / epoch,
             **{f"{split}_{part}": 50.0 / epoch for split in ("train", "test") for part in parts}}
            for epoch in epochs]


@pytest.mark.parametrize("parts, panels", [(["recon"], ["loss"]), (["kl", "recon"], ["loss", "kl", "recon"]),
                                           (["recon", "sparsity"], ["loss", "recon", "sparsity"])])
def test_loss_figure_has_a_panel_per_part_only_where_the_loss_has_several(parts, panels):
    figure = figures.loss_figure(loss_records([1, 2, 3], parts))
    assert [axis.get_ylabel().split()[0] for axis in figure.axes] == panels


@pytest.mark.parametrize("epochs", [[1], [1, 2], [3, 4, 5], list(range(1, 38))])
def test_loss_figure_ticks_are_whole_epochs(epochs, tmp_path):
    figure = figures.loss_figure(loss_records(epochs, ["kl", "recon"]))
    for axis in figure.axes:
        ticks = axis.get_xticks()
        assert ticks[0] == epochs[0] and ticks[-1] <= epochs[-1] and 1 <= len(ticks) <= 10
        assert np.all(ticks == np.round(ticks)) and len(set(np.diff(ticks))) <= 1
    assert_png_shows_something(figures.loss_curves(loss_records(epochs, ["recon"]), tmp_path / "loss.png"))


def test_epoch_ticks_by_hand():
    assert figures.epoch_ticks(1, 1) == [1]
    assert figures.epoch_ticks(1, 10) == list(range(1, 11))
    assert figures.epoch_ticks(1, 11) == [1, 3, 5, 7, 9, 11]
    assert figures.epoch_ticks(5, 30) == [5, 8, 11, 14, 17, 20, 23, 26, 29]


def test_gradient_norms_get_a_log_panel_with_gaps_where_an_epoch_lacks_them():
    records = loss_records([1, 2, 3], ["kl", "recon"])
    records[1]["grad_norms"] = {"fc1": 0.5, "fc21": 2.0}
    records[2]["grad_norms"] = {"fc1": 0.25, "fc21": 1e-4, "fc22": 3.0}
    figure = figures.loss_figure(records)
    assert len(figure.axes) == 4 and figure.axes[-1].get_yscale() == "log"
    lines = {line.get_label(): line.get_ydata() for line in figure.axes[-1].get_lines()}
    assert list(lines) == ["fc1", "fc21", "fc22"]  # in the order first met
    np.testing.assert_array_equal(lines["fc1"], [np.nan, 0.5, 0.25])
    np.testing.assert_array_equal(lines["fc22"], [np.nan, np.nan, 3.0])
    assert len(figures.loss_figure(loss_records([1, 2], ["kl", "recon"])).axes) == 3

"""Latent arithmetic (``tinyae arithmetic RUN``): the attribute measures on drawn images, the attribute
vector recovering a planted direction, decoding along it on a briefly trained run, and the command."""

import numpy as np
import pytest

import tinyae
from tinyae.app import figures
from tinyae.app.cli import build_parser, main
from tinyae.app.run import Run
from tinyae.models import CVAE
from tests.conftest import BACKEND
from tests.test_figures import assert_png_shows_something

ALPHAS = np.linspace(-2, 2, 9)
# 2 s on 2 cores: test loss 164, the least training after which both directions decode as they should
BRIEF = ["--limit", "4096", "--test-limit", "1000", "--epochs", "5", "--batch-size", "32", "--hidden", "64",
         "--latent-dim", "8", "--quiet"]


def bar(top_shift: int, width: int = 2) -> np.ndarray:
    """A 28×28 image of a bar from row 4 to row 23 whose top leans ``top_shift`` columns to the right of its
    foot, centered."""
    image = np.zeros((28, 28))
    for row in range(4, 24):
        column = 13 - top_shift // 2 + top_shift * (23 - row) // 19
        image[row, column:column + width] = 1.0
    return image


def test_stroke_mass_and_slant_of_drawn_bars():
    bars = np.stack([bar(0), bar(0, width=4), bar(19), bar(-19), np.roll(bar(19), (2, -3), axis=(0, 1))])
    np.testing.assert_allclose(figures.stroke_mass(bars), [40, 80, 40, 40, 40])
    slants = figures.slant(bars)
    np.testing.assert_allclose(slants[:2], 0, atol=1e-12)  # upright, thin or thick
    assert slants[2] == pytest.approx(1.0)  # one column right per row up: "/"
    assert slants[3] == pytest.approx(-1.0)  # "\"
    assert slants[4] == pytest.approx(slants[2])  # wherever it is drawn
    assert figures.slant(np.zeros((1, 28, 28)))[0] == 0  # a blank image is upright


def test_the_attribute_vector_recovers_a_planted_direction_within_classes():
    """Codes = a class offset (the thicker classes far along it) + the attribute times a direction + noise:
    the direction is found, and the class offsets, which a difference over all images picks up, are not."""
    rng = np.random.default_rng(0)
    dims, per_class = 6, 400
    labels = np.repeat(np.arange(10), per_class)
    direction = rng.normal(size=dims)
    offsets = rng.normal(scale=5.0, size=(10, dims))
    values = rng.normal(size=len(labels)) + labels  # class k's attribute values around k
    noise = rng.normal(scale=0.3, size=(len(labels), dims))
    codes = offsets[labels] + np.outer(values - labels, direction) + noise
    vector = figures.attribute_vector(codes, values, labels)
    within = [np.sort(values[labels == k]) for k in range(10)]
    gap = np.mean([ranked[-100:].mean() - ranked[:100].mean() for ranked in within])  # top − bottom quarter
    np.testing.assert_allclose(vector, gap * direction, atol=0.05 * np.linalg.norm(direction) * gap)
    high, low = values >= np.quantile(values, 0.75), values <= np.quantile(values, 0.25)
    overall = codes[high].mean(axis=0) - codes[low].mean(axis=0)
    planted = gap * direction
    assert np.linalg.norm(overall - planted) > np.linalg.norm(planted)  # the classes lead a naive one astray


def test_one_of_each_class_takes_the_classes_in_turn():
    labels = np.array([3, 1, 3, 0, 1, 1, 2])
    np.testing.assert_array_equal(figures.one_of_each_class(labels, 7), [3, 1, 6, 0, 4, 2, 5])
    np.testing.assert_array_equal(figures.one_of_each_class(labels, 2), [3, 1])


def test_arithmetic_images_keep_each_rows_label_in_a_conditional_model(tmp_path):
    tinyae.manual_seed(0)
    model = CVAE(hidden=16, latent_dim=3)
    images = tinyae.tensor(np.random.default_rng(0).uniform(size=(3, 784)))
    labels, vector = np.array([4, 0, 7]), np.array([1.0, -1.0, 0.5])
    decoded = figures.arithmetic_images(model, images, vector, ALPHAS, labels)
    with tinyae.no_grad():
        codes = model.encode(images, labels)[0]
        for row, digit in enumerate(labels):
            shifted = codes[row:row + 1] + tinyae.tensor(ALPHAS[:, None] * vector)
            expected = model.decode(shifted, np.full(len(ALPHAS), digit)).sigmoid().numpy()
            np.testing.assert_allclose(decoded[row].reshape(len(ALPHAS), -1), expected, rtol=1e-6)
    other = figures.arithmetic_images(model, images, vector, ALPHAS, np.array([4, 0, 8]))
    assert (other[:2] == decoded[:2]).all() and not np.allclose(other[2], decoded[2])
    path = figures.arithmetic(model, images, vector, tmp_path / "a.png", "slant", labels=labels)
    assert_png_shows_something(path)


@pytest.fixture(scope="module")
def brief_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("arithmetic") / "run"
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")
    assert main(["train", "--out", str(folder), "--threads", "1", *BRIEF]) == 0
    return folder


@pytest.mark.parametrize("attribute", ["thickness", "slant"])
def test_decoding_along_the_vector_increases_the_attribute(brief_run, attribute):
    run = Run.open(brief_run)
    codes, images, labels = run.test_codes(1000)
    vector = run.attribute_vector(attribute, 1000, (codes, images, labels))
    rows = figures.one_of_each_class(labels, 20)
    decoded = figures.arithmetic_images(run.model, tinyae.tensor(images[rows]), vector, ALPHAS)
    measured = figures.ATTRIBUTES[attribute](decoded.reshape(-1, 784)).reshape(20, len(ALPHAS))
    assert (np.diff(measured.mean(axis=0)) > 0).all(), measured.mean(axis=0)  # on average, at every step
    assert (measured[:, -1] > measured[:, 0]).all()  # for every digit, end to end
    assert (np.diff(measured, axis=1) > 0).mean() > 0.9  # and nearly every step of every digit


def test_the_command_writes_the_figure(brief_run, tmp_path, capsys):
    assert main(["arithmetic", str(brief_run), "--rows", "3", "--threads", "1"]) == 0
    path = brief_run / "figures" / "arithmetic.png"
    assert capsys.readouterr().out.strip() == str(path)
    assert_png_shows_something(path)
    output = tmp_path / "slant.pdf"
    arguments = ["--attribute", "slant", "--limit", "300", "--output", str(output)]
    assert main(["arithmetic", str(brief_run), *arguments]) == 0
    assert output.stat().st_size > 1000


def test_the_command_on_a_conditional_run(tmp_path):
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")
    folder = tmp_path / "cvae"
    quick = ["--limit", "256", "--test-limit", "100", "--hidden", "32", "--latent-dim", "4", "--quiet"]
    assert main(["train", "--model", "cvae", "--epochs", "1", "--out", str(folder), *quick]) == 0
    assert main(["arithmetic", str(folder), "--rows", "4", "--attribute", "slant"]) == 0
    assert_png_shows_something(folder / "figures" / "arithmetic.png")


@pytest.mark.parametrize("arguments, message", [
    (["--rows", "50", "--limit", "40"], "error: --rows 50 needs 50 test images; --limit keeps 40"),
    (["--limit", "1"], "error: attribute_vector: no class has two images or more to compare (in the first "
                       "1 test images; use more)"),
])
def test_impossible_requests_are_one_line(brief_run, capsys, arguments, message):
    assert main(["arithmetic", str(brief_run), *arguments]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("tinyae arithmetic: ") and message in error


def test_the_commands_attributes_are_the_measured_ones():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    attribute = next(action for action in subcommands["arithmetic"]._actions if action.dest == "attribute")
    assert list(attribute.choices) == list(figures.ATTRIBUTES)

"""tinyae explore: the page is self-contained, its embedded decoder is the model's, and in a real headless
Chromium (driven over the DevTools protocol, tinyae.app.browser) its own controls give the code, its
decoding matches tinyae's to 1e-4 and its canvas shows those intensities (grey 255·(1 − p), ±1 level for
the rounding), with no console error. The browser tests are skipped where no Chromium is installed."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import tinyae
from tinyae import nn
from tinyae.app import browser as browser_module
from tinyae.app import explore
from tinyae.app.cli import main
from tinyae.app.explore import ExploreError
from tinyae.app.run import Run
from tinyae.models import AE, CVAE, VAE, ConvVAE
from tests.conftest import BACKEND, to_numpy

QUICK = ["--limit", "64", "--test-limit", "100", "--batch-size", "32", "--epochs", "1", "--quiet"]
RUNS = {  # the browser tests' models: MLP and conv decoders (both kinds), conditional or not, an AE
    "vae": ["--model", "vae", "--hidden", "32", "--latent-dim", "4"],
    "cvae": ["--model", "cvae", "--hidden", "32", "--latent-dim", "2"],
    "conv-transpose": ["--model", "conv-cvae", "--latent-dim", "3", "--decoder", "transpose"],
    "conv-upsample": ["--model", "conv-ae", "--latent-dim", "3", "--decoder", "upsample"],
}
ON_NUMPY = pytest.mark.skipif(BACKEND == "strict", reason="the runs and their pages are on numpy; run once")


def page_data(path: Path) -> dict:
    """The MODEL object a page embeds."""
    return json.loads(re.search(r"const MODEL = (.*?);</script>", path.read_text(), re.S).group(1))


def floats(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


def write_page(model, path: Path, count: int = 3) -> Path:
    latent_dim = model.config["latent_dim"]
    rng = np.random.default_rng(0)
    return explore.write_explorer(model, path, rng.normal(size=(count, latent_dim)), np.arange(count),
                                  rng.uniform(size=(count, 784)), np.zeros(latent_dim), np.ones(latent_dim),
                                  "a </script> <title>", "about")


# The page, without a browser ----------------------------------------------------------------------------

def test_the_page_is_self_contained_and_embeds_the_mlp_vaes_decoder(tmp_path):
    tinyae.manual_seed(0)
    model = VAE(hidden=8, latent_dim=2)
    page = write_page(model, tmp_path / "page.html")
    text = page.read_text()
    for remote in ("http://", "https://", "//cdn", "src=", "href=", "@import", "@font-face", "url(", "<link",
                   "fetch(", "XMLHttpRequest"):
        assert remote not in text, remote
    assert "a &lt;/script&gt; &lt;title&gt;" in text and text.count("</script>") == 2  # the title escaped
    data = page_data(page)
    assert [layer["kind"] for layer in data["layers"]] == ["linear", "relu", "linear"]
    fc3, _, fc4 = data["layers"]
    np.testing.assert_array_equal(floats(fc3["weight"]), to_numpy(model.fc3.weight.data).ravel())
    np.testing.assert_array_equal(floats(fc4["bias"]), to_numpy(model.fc4.bias.data))
    assert (fc3["in"], fc3["out"], fc4["in"], fc4["out"]) == (2, 8, 8, 784)
    assert (data["height"], data["width"], data["latent_dim"]) == (28, 28, 2)


def test_a_conditional_vaes_decoder_takes_the_label_columns_last(tmp_path):
    tinyae.manual_seed(0)
    model = CVAE(hidden=8, latent_dim=2)
    data = page_data(write_page(model, tmp_path / "page.html"))
    assert data["classes"] == 10
    assert [layer["kind"] for layer in data["layers"]] == ["linear", "relu", "linear"]
    assert (data["layers"][0]["in"], data["layers"][0]["out"]) == (12, 8)
    assert page_data(write_page(VAE(hidden=8, latent_dim=2), tmp_path / "plain.html"))["classes"] == 0


@pytest.mark.parametrize("decoder", ["transpose", "upsample"])
def test_a_conv_decoder_is_exported_layer_by_layer_in_pytorchs_layouts(tmp_path, decoder):
    tinyae.manual_seed(0)
    model = ConvVAE(latent_dim=3, decoder=decoder)
    data = page_data(write_page(model, tmp_path / "page.html"))
    kinds = [layer["kind"] for layer in data["layers"]]
    body = (["conv_transpose2d", "relu", "conv_transpose2d"] if decoder == "transpose"
            else ["upsample", "conv2d", "relu", "upsample", "conv2d"])
    assert kinds == ["linear", "relu", "unflatten", *body]
    assert data["layers"][2]["shape"] == [64, 7, 7]
    convolutions = [layer for layer in data["layers"] if layer["kind"].startswith("conv")]
    modules = [module for module in model.decoder if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))]
    for layer, module in zip(convolutions, modules, strict=True):
        np.testing.assert_array_equal(floats(layer["weight"]), to_numpy(module.weight.data).ravel())
        assert layer["kernel"] == list(module.kernel_size) and layer["stride"] == list(module.stride)
        assert layer["padding"] == list(module.padding) and (layer["in"], layer["out"]) == (
            module.in_channels, module.out_channels)


def test_a_decoder_the_page_cannot_run_is_refused(tmp_path):
    model = AE(hidden=8, latent_dim=2)
    model.decoder = nn.Sequential(nn.Linear(2, 784), nn.Tanh())
    with pytest.raises(ExploreError, match="cannot run a Tanh layer"):
        write_page(model, tmp_path / "page.html")

    class Shifted(VAE):
        def decode(self, z):
            return super().decode(z) + 1

    with pytest.raises(ExploreError, match="cannot export the decoder of a Shifted"):
        write_page(Shifted(hidden=8, latent_dim=2), tmp_path / "page.html")
    assert not (tmp_path / "page.html").exists()


# The command ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs, one per entry of RUNS."""
    if BACKEND == "strict":
        pytest.skip("the runs and their pages are on numpy; run once")
    folder = tmp_path_factory.mktemp("explore")
    for name, options in RUNS.items():
        assert main(["train", *QUICK, *options, "--out", str(folder / name)]) == 0
    return {name: folder / name for name in RUNS}


def outcome(argv, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([str(argument) for argument in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


@ON_NUMPY
def test_a_write_that_fails_leaves_the_old_page_whole(runs, tmp_path, capsys, monkeypatch):
    """The page is written as page.html.tmp, fsynced and renamed: a write cut short (a full disk here; a
    kill alike) leaves the old page as it was and no partial file."""
    page = tmp_path / "page.html"
    page.write_text("the old page")

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    code, _, err = outcome(["explore", runs["vae"], "--output", page], capsys)
    assert code == 1 and "No space left on device" in err and err.count("\n") == 1
    assert page.read_text() == "the old page" and sorted(path.name for path in tmp_path.iterdir()) == ["page.html"]


@ON_NUMPY
def test_bad_runs_and_file_names_are_one_line_errors(runs, tmp_path, capsys, monkeypatch):
    Run.create(tmp_path / "fresh", Run.open(runs["vae"]).config)  # a run killed before its first epoch
    monkeypatch.setenv("TINYAE_CHROMIUM", str(tmp_path / "no-chromium"))
    page, shot = tmp_path / "page.html", tmp_path / "shot.png"
    cases = [(["explore", tmp_path / "fresh"], 1, "has no checkpoint yet"),
             (["explore", tmp_path / "nothing"], 1, "no run folder at"),
             (["explore", runs["vae"], "--output", tmp_path], 2, "expected a file name, got the folder"),
             (["explore", runs["vae"], "--output", tmp_path / "page.txt"], 2, "ending in .html or .htm"),
             (["explore", runs["vae"], "--screenshot", tmp_path / "shot.jpg"], 2, "ending in .png"),
             (["explore", runs["vae"], "--output", tmp_path / "no" / "page.html"], 1, "No such file or dir"),
             (["explore", runs["vae"], "--output", page, "--screenshot", shot], 1,
              "no-chromium is not an executable")]
    for argv, expected_code, fragment in cases:
        code, _, err = outcome(argv, capsys)
        assert code == expected_code and fragment in err.strip().splitlines()[-1], (argv, err)
        assert "Traceback" not in err and (code == 2 or len(err.strip().splitlines()) == 1), err
    assert not page.exists()  # no page when the screenshot cannot be taken
    monkeypatch.delenv("TINYAE_CHROMIUM")  # the screenshot's folder is missing: no page, no browser started
    missing = tmp_path / "no" / "s.png"
    code, out, err = outcome(["explore", runs["vae"], "--output", page, "--screenshot", missing], capsys)
    assert code == 1 and out == "" and not page.exists() and "Traceback" not in err
    assert err.strip() == f"tinyae explore: error: cannot write or read {missing}: No such file or directory"

    broken = tmp_path / "broken-chromium"
    broken.write_text("#!/bin/sh\necho 'error while loading shared libraries: libnss3.so' >&2\nexit 127\n")
    broken.chmod(0o755)
    monkeypatch.setenv("TINYAE_CHROMIUM", str(broken))
    code, out, err = outcome(["explore", runs["vae"], "--output", page, "--screenshot", shot], capsys)
    assert code == 1 and out.strip() == str(page) and not shot.exists()
    assert err.strip() == ("tinyae explore: error: the browser quit (exit status 127): error while loading "
                           "shared libraries: libnss3.so")


@ON_NUMPY
def test_the_command_writes_the_page_of_the_runs_test_codes(runs, capsys):
    code, out, _ = outcome(["explore", runs["conv-upsample"]], capsys)
    assert code == 0 and out.strip() == str(runs["conv-upsample"] / "explore.html")
    data = page_data(runs["conv-upsample"] / "explore.html")
    run = Run.open(runs["conv-upsample"])
    batches = run.test_set(100, batch_size=100)
    images = next(iter(batches))
    with tinyae.no_grad():
        codes = run.model.encode(images).numpy()
    np.testing.assert_allclose(floats(data["codes"]).reshape(codes.shape), codes, rtol=1e-6, atol=1e-6)
    assert data["labels"] == batches.labels.tolist() and data["classes"] == 0
    thumbnails = np.frombuffer(base64.b64decode(data["images"]), dtype=np.uint8).reshape(100, 28, 28)
    np.testing.assert_array_equal(thumbnails, np.round(images.numpy().reshape(100, 28, 28) * 255))
    with tinyae.no_grad():  # an AE's sliders: the mean ± 3σ of its test codes
        test_codes = run.model.encode(run.test_images(1000)).numpy()
    np.testing.assert_allclose(floats(data["center"]), test_codes.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(floats(data["spread"]), test_codes.std(axis=0), rtol=1e-5, atol=1e-6)


# In the browser ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module's browser tests."""
    if BACKEND == "strict":
        pytest.skip("the runs and their pages are on numpy; run once")
    try:
        browser_module.find_chromium()
    except browser_module.BrowserNotFound as error:
        pytest.skip(f"no Chromium: {error}")
    with browser_module.Browser() as browser:
        yield browser


def decoded_by_tinyae(run: Run, code, digit: int | None = None) -> np.ndarray:
    """sigmoid(g(z)) (sigmoid(g(z, digit)) for a conditional VAE) by tinyae, (H·W,) float64."""
    labels = () if digit is None else (np.array([digit]),)
    with tinyae.no_grad():
        z = tinyae.tensor(np.asarray(code, dtype=np.float32)[None])
        return run.model.decode(z, *labels).sigmoid().numpy().astype(np.float64).ravel()


def set_sliders(browser, values) -> None:
    """Move each slider z_d to values[d] as a user would: its value, then an input event."""
    browser.evaluate(f"""{json.dumps([repr(float(value)) for value in values])}.forEach((value, d) => {{
        const slider = document.getElementById("z" + d);
        slider.value = value;
        slider.dispatchEvent(new Event("input", {{bubbles: true}}));
    }})""")


def check_page_shows(browser, run: Run, code, digit: int | None = None) -> None:
    """The page's intensities are tinyae's for ``code`` (and ``digit``) (1e-4), and its canvas shows them:
    each image pixel a 10×10 square of grey 255·(1 − p) (±1 level: rounding), opaque."""
    expected = decoded_by_tinyae(run, code, digit)
    page = np.array(browser.evaluate("explorer.decoded()"))
    assert page.shape == expected.shape and np.abs(page - expected).max() <= 1e-4
    pixels = np.array(browser.evaluate("""(() => {
        const canvas = document.getElementById("decoded"), context = canvas.getContext("2d");
        return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data); })()"""))
    pixels = pixels.reshape(280, 280, 4)
    assert (pixels[..., 3] == 255).all() and (pixels[..., 0] == pixels[..., 1]).all()
    assert (pixels[..., 0] == pixels[..., 2]).all()
    grey = np.kron(np.round(255 * (1 - expected)).reshape(28, 28), np.ones((10, 10)))
    assert np.abs(pixels[..., 0] - grey).max() <= 1


def open_page(browser, run_folder: Path, capsys) -> Run:
    code, _, _ = outcome(["explore", run_folder], capsys)
    assert code == 0
    browser.open(run_folder / "explore.html")
    assert browser.errors == []
    return Run.open(run_folder)


def test_the_mlp_vae_page_decodes_as_tinyae_from_sliders_pad_test_digits_and_draws(runs, chromium, capsys):
    run = open_page(chromium, runs["vae"], capsys)
    assert chromium.evaluate('document.getElementById("digits").hidden') is True  # no digit to choose
    code = [0.5, -1.25, 2.875, -0.0625]
    set_sliders(chromium, code)
    assert chromium.evaluate("explorer.code()") == code
    check_page_shows(chromium, run, code)

    # the pad: x moves z2 from −3 (left) to 3, y moves z0 from 3 (top) to −3
    chromium.evaluate('document.getElementById("pad-x").value = 2; '
                      'document.getElementById("pad-y").value = 0')
    box = chromium.evaluate('(({left, top, width, height}) => ({left, top, width, height}))('
                            'document.getElementById("pad").getBoundingClientRect())')
    x, y = round(box["left"] + 0.25 * box["width"]), round(box["top"] + 0.75 * box["height"])
    chromium.mouse("mousePressed", x, y)
    chromium.mouse("mouseMoved", x + 30, y - 20)
    chromium.mouse("mouseReleased", x + 30, y - 20, buttons=0)
    u, v = (x + 30 - box["left"]) / box["width"], (y - 20 - box["top"]) / box["height"]
    moved = [3 - 6 * v, -1.25, -3 + 6 * u, -0.0625]
    np.testing.assert_allclose(chromium.evaluate("explorer.code()"), moved, rtol=0, atol=1e-12)
    check_page_shows(chromium, run, moved)

    # test digit #3: its code μ(x₃) and its label
    start_from_test(chromium, 3)
    images = run.test_images(4)
    with tinyae.no_grad():
        mu = run.model.encode(images)[0].numpy()[3]
    np.testing.assert_allclose(chromium.evaluate("explorer.code()"), mu, rtol=1e-6, atol=1e-6)
    label = run.test_set(4).labels[3]
    assert chromium.evaluate('document.getElementById("original-label").textContent') == f"#3, a {label}"
    check_page_shows(chromium, run, mu)

    # random draws: new codes of the prior's scale, each decoded as tinyae decodes it
    draws = []
    for _ in range(3):
        chromium.evaluate('document.getElementById("random").click()')
        draws.append(chromium.evaluate("explorer.code()"))
        check_page_shows(chromium, run, draws[-1])
    assert len({tuple(draw) for draw in draws}) == 3 and np.abs(draws).max() < 10
    assert chromium.errors == []
    screenshot = matplotlib.image.imread(io.BytesIO(chromium.screenshot()), format="png")
    assert screenshot.shape[:2] == (800, 1000) and screenshot[..., :3].std() > 0.05


def test_a_pad_over_one_dimension_follows_the_pointer_across(chromium, tmp_path):
    """A 1-D code (or x and y set to the same dimension): the pad moves that dimension left to right, the
    pointer's height aside, and draws its dot under the pointer, on the middle line."""
    tinyae.manual_seed(0)
    chromium.open(write_page(VAE(hidden=8, latent_dim=1), tmp_path / "page.html"))
    box = chromium.evaluate('(({left, top, width, height}) => ({left, top, width, height}))('
                            'document.getElementById("pad").getBoundingClientRect())')
    for u, v in [(0.1, 0.5), (0.9, 0.5), (0.25, 0.1), (0.75, 0.9)]:
        x, y = round(box["left"] + u * box["width"]), round(box["top"] + v * box["height"])
        chromium.mouse("mousePressed", x, y)
        chromium.mouse("mouseReleased", x, y, buttons=0)
        u = (x - box["left"]) / box["width"]
        np.testing.assert_allclose(chromium.evaluate("explorer.code()"), [-3 + 6 * u], rtol=0, atol=1e-9)
        dot = chromium.evaluate("""(() => {  // the red pixels' center, in the pad's pixels
            const pad = document.getElementById("pad"), context = pad.getContext("2d");
            const data = context.getImageData(0, 0, pad.width, pad.height).data;
            let sx = 0, sy = 0, n = 0;
            for (let k = 0; k < data.length; k += 4)
                if (data[k] > 150 && data[k + 1] < 60) {
                    sx += (k / 4) % pad.width; sy += Math.floor(k / 4 / pad.width); n++; }
            return [sx / n, sy / n, pad.width, pad.height]; })()""")
        assert abs(dot[0] - u * dot[2]) <= 2 and abs(dot[1] - dot[3] / 2) <= 2, (u, v, dot)
    assert chromium.errors == []


def test_a_sigmoid_codes_sliders_and_draws_stay_in_0_1(chromium, tmp_path, capsys):
    """A sparse AE with the KL penalty squashes its code by a sigmoid: its sliders and random draws stay
    within (0, 1), the codes its decoder was trained on, while its mean ± 3σ reaches below 0."""
    folder = tmp_path / "sparse"
    assert main(["train", *QUICK, "--model", "sparse-ae", "--penalty", "kl", "--hidden", "16", "--latent-dim",
                 "3", "--out", str(folder)]) == 0
    run = Run.open(folder)
    run.explorer(count=3)
    assert page_data(folder / "explore.html")["bounds"] == [0, 1]
    tinyae.manual_seed(0)
    chromium.open(explore.write_explorer(run.model, tmp_path / "page.html", np.full((1, 3), 0.1), np.zeros(1),
                                         np.zeros((1, 784)), np.array([0.05, 0.5, 0.9]), np.full(3, 0.2),
                                         "sparse", "about", bounds=(0, 1)))
    ranges = chromium.evaluate('[0, 1, 2].map(d => [+document.getElementById("z" + d).min, '
                               '+document.getElementById("z" + d).max])')
    np.testing.assert_allclose(ranges, [[0, 0.65], [0, 1], [0.3, 1]], rtol=0, atol=1e-6)
    draws = []
    for _ in range(20):
        chromium.evaluate('document.getElementById("random").click()')
        draws.append(chromium.evaluate("explorer.code()"))
    assert 0 <= np.min(draws) and np.max(draws) <= 1 and len({tuple(draw) for draw in draws}) == 20
    assert chromium.errors == []


def start_from_test(browser, index: int) -> None:
    browser.evaluate(f'document.getElementById("test-index").value = "{index}"; '
                     'document.getElementById("from-test").click()')


@pytest.mark.parametrize("name", ["cvae", "conv-transpose"])
def test_a_conditional_vaes_page_draws_the_digit_of_its_buttons(runs, chromium, capsys, name):
    run = open_page(chromium, runs[name], capsys)
    assert chromium.evaluate('document.getElementById("digits").hidden') is False
    labels = run.test_labels(5)
    assert chromium.evaluate("explorer.digit()") == labels[0]  # the page starts from test digit #0
    start_from_test(chromium, 4)
    with tinyae.no_grad():
        mu = run.model.encode(run.test_images(5), labels)[0].numpy()[4]  # μ(x₄, y₄)
    np.testing.assert_allclose(chromium.evaluate("explorer.code()"), mu, rtol=1e-6, atol=1e-6)
    assert chromium.evaluate("explorer.digit()") == labels[4]
    check_page_shows(chromium, run, mu, labels[4])
    code = [0.25, -1.5, 0.625][:run.model.config["latent_dim"]]
    set_sliders(chromium, code)
    for digit in (3, 8):
        chromium.evaluate(f'document.querySelectorAll("#digits button")[{digit}].click()')
        assert chromium.evaluate("explorer.digit()") == digit
        assert chromium.evaluate('document.querySelector("#digits button.chosen").textContent') == str(digit)
        check_page_shows(chromium, run, code, digit)
    assert chromium.errors == []


@pytest.mark.parametrize("name", ["conv-transpose", "conv-upsample"])
def test_a_conv_decoder_runs_in_the_page_as_in_tinyae(runs, chromium, capsys, name):
    run = open_page(chromium, runs[name], capsys)
    data = page_data(runs[name] / "explore.html")
    digit = chromium.evaluate("explorer.digit()") if data["classes"] else None
    low = floats(data["center"]) - 3 * floats(data["spread"])
    code = (low + floats(data["spread"]) * np.array([1.5, 3.25, 5.0])).tolist()  # within the sliders' range
    set_sliders(chromium, code)
    np.testing.assert_allclose(chromium.evaluate("explorer.code()"), code, rtol=0, atol=1e-12)
    check_page_shows(chromium, run, code, digit)
    assert chromium.errors == []


def test_screenshot_writes_the_page_as_chromium_shows_it(runs, chromium, capsys, tmp_path):
    code, out, err = outcome(["explore", runs["vae"], "--output", tmp_path / "page.html", "--screenshot",
                              tmp_path / "page.png"], capsys)
    assert code == 0, err
    assert out.split() == [str(tmp_path / "page.html"), str(tmp_path / "page.png")]
    pixels = matplotlib.image.imread(tmp_path / "page.png")
    assert pixels.shape[:2] == (800, 1000) and pixels[..., :3].std() > 0.05


def test_the_browser_reports_console_errors_exceptions_and_failed_loads(chromium, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><img src="missing.png"><script>console.log("all well"); '
                    'console.error("bad", 7); window.setTimeout(() => { throw new Error("late") }, 0); '
                    'undefinedFunction();</script>')
    chromium.open(page)
    assert chromium.evaluate("new Promise(done => setTimeout(() => done(1 + 1), 50))") == 2
    errors = "\n".join(chromium.errors)
    assert "console: bad 7" in errors and "all well" not in errors
    assert "exception: ReferenceError: undefinedFunction is not defined" in errors
    assert "exception: Error: late" in errors and "missing.png" in errors, errors
    with pytest.raises(browser_module.BrowserError, match="nothing: ReferenceError: nothing is not defined"):
        chromium.evaluate("nothing")

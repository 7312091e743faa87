"""The conditional VAEs: the label's layout in the weights, the forms a label may take, the loss, training
on labelled batches, and the application's commands on a conditional run."""

import json

import numpy as np
import pytest

import tinyae as ta
from tinyae import backend, models, optim
from tinyae.app import figures
from tinyae.app.cli import main
from tinyae.data import Batches, load_mnist
from tests.conftest import BACKEND, to_numpy

SMALL = {"input_dim": 6, "hidden": 5, "latent_dim": 3, "classes": 4}


def relu(a):
    return np.maximum(a, 0)


def weights(module):
    return {name: to_numpy(p) for name, p in module.named_parameters()}


def test_state_dict_is_the_vaes_with_the_label_columns_last():
    cvae, vae = models.CVAE(), models.VAE()
    shapes = {key: tuple(value.shape) for key, value in cvae.state_dict().items()}
    assert list(shapes) == list(vae.state_dict())
    assert shapes["fc1.weight"] == (400, 784 + 10) and shapes["fc3.weight"] == (400, 5 + 10)
    conv = models.ConvCVAE()
    assert tuple(conv.state_dict()["decoder.0.weight"].shape) == (64 * 7 * 7, 5 + 10)
    assert tuple(conv.state_dict()["mu.weight"].shape) == (5, 64 * 7 * 7 + 10)


def test_encode_and_decode_are_the_documented_products_of_the_concatenation():
    """W [x; e_y] = W_x x + W_y[:, y]: checked against NumPy with the weights split at the label columns."""
    ta.manual_seed(3)
    model = models.CVAE(**SMALL)
    w = weights(model)
    rng = np.random.default_rng(0)
    x, z, y = rng.random((5, 6)), rng.standard_normal((5, 3)), np.array([0, 3, 1, 3, 2])
    hidden = relu(x @ w["fc1.weight"][:, :6].T + w["fc1.weight"][:, 6:][:, y].T + w["fc1.bias"])
    mu, logvar = model.encode(ta.tensor(x.astype(np.float32)), y)
    np.testing.assert_allclose(to_numpy(mu), hidden @ w["fc21.weight"].T + w["fc21.bias"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(logvar), hidden @ w["fc22.weight"].T + w["fc22.bias"], rtol=1e-5,
                               atol=1e-6)
    decoded = relu(z @ w["fc3.weight"][:, :3].T + w["fc3.weight"][:, 3:][:, y].T + w["fc3.bias"])
    logits = decoded @ w["fc4.weight"].T + w["fc4.bias"]
    np.testing.assert_allclose(to_numpy(model.decode(ta.tensor(z.astype(np.float32)), y)), logits, rtol=1e-5,
                               atol=1e-5)


def test_labels_as_a_tensor_host_ints_one_hot_rows_or_a_soft_mix():
    ta.manual_seed(1)
    model = models.CVAE(**SMALL)
    z = ta.tensor(np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32))
    y = np.array([2, 0, 3])
    expected = to_numpy(model.decode(z, y))
    for labels in (ta.Tensor(y, dtype=np.int64), y.astype(np.int32), np.eye(4)[y], np.eye(4, dtype=np.float32)[y]):
        np.testing.assert_array_equal(to_numpy(model.decode(z, labels)), expected)
    # a soft label is a point between the classes: the first layer's pre-activation mixes linearly
    w = weights(model)
    soft = 0.25 * np.eye(4)[y] + 0.75 * np.eye(4)[[1, 1, 1]]
    hidden = relu(to_numpy(z) @ w["fc3.weight"][:, :3].T + soft @ w["fc3.weight"][:, 3:].T + w["fc3.bias"])
    np.testing.assert_allclose(to_numpy(model.decode(z, soft)), hidden @ w["fc4.weight"].T + w["fc4.bias"],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 4, 1]), "class indices from 0 to 3"),
    (np.array([0, -1, 1]), "class indices from 0 to 3"),
    (np.zeros((3, 5)), r"rows \(N, 4\)"),
    (np.array([0.0, 1.0, 2.0]), r"rows \(N, 4\)"),
    (np.zeros((3, 1), dtype=np.int64), r"class indices \(N,\)"),
])
def test_bad_labels_are_named(labels, message):
    model = models.CVAE(**SMALL)
    z = ta.tensor(np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=message):
        model.decode(z, labels)
        ta.tensor([0.0]).item()  # on a device the range is checked at the next host read


@pytest.mark.parametrize("labels", [np.array([0, 1]), [0, 1, 2, 3], np.eye(4)[[0]], np.eye(4)[[0, 1, 2, 3]]])
def test_labels_of_another_length_than_the_batch_are_named(labels):
    model = models.CVAE(**SMALL)
    x = ta.tensor(np.zeros((3, 6), dtype=np.float32))
    with pytest.raises(ValueError, match=rf"CVAE: 3 images need 3 labels, got {len(labels)}"):
        model.loss(x, labels)
    with pytest.raises(ValueError, match=rf"CVAE: 3 images need 3 labels, got {len(labels)}"):
        model.sample(3, labels)


def test_host_labels_out_of_range_fail_at_once_on_every_backend():
    """Labels given on the host (a list, a NumPy array) are checked before they move to the device."""
    model = models.CVAE(**SMALL)
    with pytest.raises(ValueError, match="class indices from 0 to 3"):
        model.sample(2, [0, 4])
    with pytest.raises(ValueError, match="class indices from 0 to 3"):
        model.sample(2, np.array([-1, 0]))


def test_the_loss_is_the_negative_elbo_of_the_conditioned_model():
    """loss = BCE(g(z, y), x) + KL(N(μ, σ²) ‖ N(0, I)) per image, with z = μ + σ ε and ε redrawn from the
    same seed: the parts computed again from encode and decode by hand."""
    ta.manual_seed(0)
    model = models.CVAE(**SMALL)
    rng = np.random.default_rng(2)
    x, y = ta.tensor(rng.random((4, 6)).astype(np.float32)), np.array([1, 1, 0, 3])
    ta.manual_seed(5)
    total, parts = model.loss(x, y)
    mu, logvar = (to_numpy(t).astype(np.float64) for t in model.encode(x, y))
    ta.manual_seed(5)
    eps = to_numpy(ta.random.standard_normal((4, 3), dtype=np.float32))  # the draw of reparameterize
    z = mu + np.exp(0.5 * logvar) * eps
    logits = to_numpy(model.decode(ta.tensor(z.astype(np.float32)), y)).astype(np.float64)
    target = to_numpy(x).astype(np.float64)
    bce = (np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))).sum() / 4
    kl = 0.5 * (mu**2 + np.exp(logvar) - logvar - 1).sum() / 4
    assert parts["recon"].item() == pytest.approx(bce, rel=1e-4)
    assert parts["kl"].item() == pytest.approx(kl, rel=1e-4)
    assert total.item() == pytest.approx(bce + kl, rel=1e-4)


def test_samples_are_the_digits_asked_for():
    """sample(n, labels) decodes N(0, I) draws with those labels: the same draws decoded by hand."""
    ta.manual_seed(0)
    model = models.CVAE(**SMALL)
    labels = np.array([3, 3, 0, 2, 1])
    ta.manual_seed(9)
    samples = to_numpy(model.sample(5, labels))
    ta.manual_seed(9)
    z = ta.Tensor(ta.random.standard_normal((5, 3), dtype=np.float32))
    np.testing.assert_array_equal(samples, to_numpy(model.decode(z, labels).sigmoid()))
    ta.manual_seed(9)
    default = to_numpy(model.sample(5))  # 0, 1, 2, 3, 0
    np.testing.assert_array_equal(default, to_numpy(model.decode(z, np.array([0, 1, 2, 3, 0])).sigmoid()))


def test_labelled_batches_keep_each_image_with_its_label():
    images = np.arange(50, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)  # image i holds i
    labels = (np.arange(50) * 7) % 10
    batches = Batches(images, labels, batch_size=8, shuffle=True, with_labels=True, seed=4)
    seen = 0
    for _ in range(2):
        for x, y in batches:
            index = np.rint(to_numpy(x)[:, 0] * 255).astype(int)
            np.testing.assert_array_equal(to_numpy(y), labels[index])
            assert to_numpy(y).dtype == np.int64
            seen += len(index)
    assert seen == 100
    with pytest.raises(ValueError, match="needs the labels"):
        Batches(images, with_labels=True)


def test_a_cvae_learns_to_use_the_label():
    """After a few dozen steps on real digits, the true label explains an image better than a wrong one:
    the reconstruction loss from μ(x, y) is lower with y than with (y + 5) mod 10."""
    images, labels = load_mnist("train")
    x = ta.tensor((images[:256] / 255.0).reshape(256, 784).astype(np.float32))
    y = labels[:256].astype(np.int64)
    ta.manual_seed(0)
    model = models.CVAE(hidden=128, latent_dim=4)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        total, _ = model.loss(x, y)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    def recon(labels_given):
        with ta.no_grad():
            mu, _ = model.encode(x, y)  # the code of the image, then decoded with the label given
            return model.reconstruction_loss(model.decode(mu, labels_given), x).item()

    assert recon(y) < recon((y + 5) % 10) - 10


def test_class_grid_holds_each_code_down_its_column(tmp_path, monkeypatch):
    decoded = {}

    def record(model, codes, labels=None):
        decoded["codes"], decoded["labels"] = codes, labels
        return np.zeros((len(codes), 28, 28))

    monkeypatch.setattr(figures, "decode_grid", record)
    figures.class_grid(models.CVAE(latent_dim=3), tmp_path / "grid.png", columns=6)
    codes = decoded["codes"].reshape(10, 6, 3)
    np.testing.assert_array_equal(codes, np.broadcast_to(codes[0], codes.shape))
    assert len(np.unique(codes[0], axis=0)) == 6  # a fresh draw per column
    np.testing.assert_array_equal(decoded["labels"].reshape(10, 6), np.arange(10)[:, None].repeat(6, 1))
    assert (tmp_path / "grid.png").stat().st_size > 0


# The commands on a conditional run --------------------------------------------------------------------------

QUICK = ["--limit", "256", "--test-limit", "100", "--batch-size", "64", "--latent-dim", "2", "--quiet"]


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")
    folder = tmp_path_factory.mktemp("runs") / "cvae"
    assert main(["train", "--model", "cvae", "--hidden", "32", "--epochs", "1", "--out", str(folder), *QUICK]) == 0
    return folder


@pytest.mark.parametrize("command", [
    ["sample", "--digit", "7", "-n", "16"], ["sample", "--grid", "-n", "5"], ["sample"], ["reconstruct"],
    ["interpolate", "--pairs", "2"], ["traverse", "--dims", "2"], ["manifold", "--size", "4", "--digit", "3"],
    ["embed"], ["eval", "-k", "4", "--limit", "50", "--quiet"],
])
def test_every_command_runs_on_a_conditional_run(cvae_run, command, capsys):
    assert main([command[0], str(cvae_run), *command[1:]]) == 0
    out = capsys.readouterr().out
    if command[0] == "eval":
        report = json.loads((cvae_run / "eval.json").read_text())
        assert "log p(x|y)" in report["conditional"] and "log p(x|y)" in out
        assert report["negative_log_likelihood"] <= report["negative_elbo"] + 1e-3
    else:
        assert out.strip().endswith(".png")


def test_resuming_a_conditional_run_repeats_the_uninterrupted_one(tmp_path):
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")
    options = ["--model", "cvae", "--hidden", "16", *QUICK]
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "whole"), *options]) == 0
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "split"), *options]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2", "--quiet"]) == 0
    whole, split = ((tmp_path / name / "metrics.jsonl").read_text().splitlines() for name in ("whole", "split"))
    drop_time = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in whole + split]
    assert drop_time[:2] == drop_time[2:]


@pytest.mark.parametrize("command, message", [
    (["sample", "--digit", "10"], "--digit 10 is not a class"),
    (["manifold", "--digit", "12"], "--digit 12 is not a class"),
])
def test_a_digit_outside_the_classes_is_one_line(cvae_run, command, message, capsys):
    assert main([command[0], str(cvae_run), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_grid_and_digit_together_are_a_usage_error(cvae_run, capsys):
    """--grid draws every digit: a --digit beside it would be ignored, so it is refused."""
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(cvae_run), "--grid", "--digit", "3"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "not allowed with argument" in err.strip().splitlines()[-1]
    assert "Traceback" not in err


@pytest.mark.parametrize("option", [["--digit", "3"], ["--grid"]])
def test_digits_on_demand_need_a_conditional_run(tmp_path, option, capsys):
    if BACKEND == "strict":
        pytest.skip("the command offers the numpy and cupy backends")
    assert main(["train", "--hidden", "16", "--epochs", "1", "--out", str(tmp_path / "vae"), *QUICK]) == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "vae"), *option]) == 1
    err = capsys.readouterr().err
    assert f"{option[0]} needs a conditional VAE" in err and err.count("\n") == 1


def test_the_labels_reach_the_device_once(monkeypatch):
    """Labelled batches slice device labels (no host copy per batch): the labels live on the backend."""
    images, labels = np.zeros((20, 2, 2), dtype=np.uint8), np.arange(20) % 10
    batches = Batches(images, labels, batch_size=5, with_labels=True)
    assert type(batches.device_labels) is type(backend.module(BACKEND).asarray(np.zeros(1)))
    _, y = next(iter(batches))
    assert y.backend == BACKEND

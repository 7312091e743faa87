"""Each model: the shared interface, and its loss falls over a few dozen steps on a small batch."""

import numpy as np
import pytest

import tinyae as ta
from tinyae import models, optim
from tinyae.data import load_mnist
from tests.conftest import to_numpy

CASES = [
    ("ae", {"hidden": 64, "latent_dim": 8}),
    ("ae", {"hidden": 64, "latent_dim": 8, "reconstruction": "mse"}),
    ("sparse-ae", {"hidden": 64, "latent_dim": 16, "penalty": "l1"}),
    ("sparse-ae", {"hidden": 64, "latent_dim": 16, "penalty": "kl", "sparsity": 0.1}),
    ("denoising-ae", {"hidden": 64, "latent_dim": 8, "noise": "gaussian"}),
    ("denoising-ae", {"hidden": 64, "latent_dim": 8, "noise": "mask", "noise_level": 0.5}),
    ("vae", {"hidden": 64, "latent_dim": 8}),
    ("vae", {"hidden": 64, "latent_dim": 8, "beta": 4.0, "likelihood": "gaussian"}),
    ("conv-ae", {"latent_dim": 8}),
    ("conv-vae", {"latent_dim": 8, "decoder": "upsample"}),
]


@pytest.fixture(scope="module")
def digits():
    images, _ = load_mnist("test")
    return (images[:32] / 255.0).astype(np.float32)


def batch_for(name, digits):
    shape = (len(digits), 1, 28, 28) if models.image_layout(name) == "image" else (len(digits), 784)
    return ta.tensor(digits.reshape(shape))


@pytest.mark.parametrize("name, config", CASES)
def test_loss_falls_over_a_few_dozen_steps(name, config, digits):
    ta.manual_seed(0)
    model = models.MODELS[name](**config)
    optimizer = optim.Adam(model.parameters(), lr=2e-3)
    x = batch_for(name, digits)
    losses = []
    for _ in range(30):
        total, parts = model.loss(x)
        assert set(parts) >= {"recon"} and all(np.isfinite(p.item()) for p in parts.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses


@pytest.mark.parametrize("name, config", CASES)
def test_interface_shapes(name, config, digits):
    model = models.MODELS[name](**config)
    x = batch_for(name, digits[:4])
    code = model.encode(x)
    if model.is_variational:
        mu, logvar = code
        assert mu.shape == logvar.shape == (4, config["latent_dim"])
        logits, _, _ = model(x)
        samples = model.sample(5)
        assert samples.shape == (5,) + x.shape[1:]
        assert 0 <= to_numpy(samples).min() and to_numpy(samples).max() <= 1
        code = mu
    else:
        logits = model(x)
    assert logits.shape == x.shape
    assert model.decode(code).shape == x.shape
    rebuilt = type(model)(**model.config)
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in model.named_parameters()]


def test_vae_layers_match_pytorch_example_names():
    names = [name for name, _ in models.VAE().named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc21.weight", "fc21.bias", "fc22.weight", "fc22.bias",
                     "fc3.weight", "fc3.bias", "fc4.weight", "fc4.bias"]


@pytest.mark.parametrize("make", [
    lambda: models.VAE(beta=-1), lambda: models.VAE(likelihood="poisson"), lambda: models.SparseAE(penalty="l2"),
    lambda: models.DenoisingAE(noise="salt"), lambda: models.DenoisingAE(noise="mask", noise_level=1.5),
    lambda: models.ConvVAE(decoder="pixelshuffle"), lambda: models.AE(reconstruction="l1"),
])
def test_bad_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_denoising_corrupts_only_in_training(digits):
    model = models.DenoisingAE(hidden=32, latent_dim=4)
    x = ta.tensor(digits[:4].reshape(4, 784))
    noisy = model.corrupt(x)
    assert not np.array_equal(to_numpy(noisy), to_numpy(x))
    model.eval()
    first, _ = model.loss(x)
    second, _ = model.loss(x)
    assert first.item() == second.item()

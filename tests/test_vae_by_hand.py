"""examples/vae_by_hand.py against tinyae: the hand-written backprop and Adam equal autograd and optim.Adam.

The same VAE is built in tinyae (``tinyae.models.VAE``, float64) with the hand-written weights and the same
noise ε, and every hand-written gradient must equal autograd's to 1e-9 relative (max |a − b| / max |b| per
parameter; in practice they agree to ~1e-16). Arrays are made on the backend under test.
"""

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import tinyae as ta
from tests.conftest import BACKEND, to_numpy
from tinyae import functional as F
from tinyae.models import VAE

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vae_by_hand.py"
SMALL = (30, 16, 4)


@pytest.fixture(scope="module")
def by_hand():
    """The example script, imported as a module."""
    spec = importlib.util.spec_from_file_location("vae_by_hand", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batch(rng: np.random.Generator, xp, sizes, n: int):
    """(x, eps): MNIST-like intensities in [0, 1] (about a third exactly 0) and N(0, I) noise, float64."""
    x = rng.random((n, sizes[0]))
    x[x < 0.3] = 0.0
    return xp.asarray(x), xp.asarray(rng.standard_normal((n, sizes[2])))


def tinyae_vae(params: dict, sizes, beta: float = 1.0) -> VAE:
    """tinyae's VAE in float64 with the hand-written weights."""
    ta.set_default_dtype("float64")
    model = VAE(*sizes, beta=beta)
    model.load_state_dict(params)
    return model


def relative_error(hand, autograd) -> float:
    """max |a − b| / max |b|."""
    hand, autograd = to_numpy(hand), to_numpy(autograd)
    return float(np.abs(hand - autograd).max() / np.abs(autograd).max())


@pytest.mark.parametrize("sizes, beta, n", [((784, 400, 20), 1.0, 64), (SMALL, 4.0, 5)])
def test_hand_written_gradients_equal_autograd(by_hand, xp, monkeypatch, sizes, beta, n):
    rng = np.random.default_rng(0)
    params = by_hand.init_params(rng, xp, np.float64, sizes)
    x, eps = batch(rng, xp, sizes, n)
    loss, grads = by_hand.forward_backward(params, x, eps, beta)

    model = tinyae_vae(params, sizes, beta)
    # The model's own loss, with its reparameterization fed the same ε.
    monkeypatch.setattr(F, "reparameterize", functools.partial(F.reparameterize, eps=eps))
    total, _ = model.loss(ta.tensor(x))
    total.backward()

    assert abs(float(loss) - total.item()) <= 1e-12 * abs(total.item())
    named = dict(model.named_parameters())
    assert list(grads) != [] and set(grads) == set(named)
    for name, parameter in named.items():
        assert type(grads[name]) is type(parameter.grad), name
        assert grads[name].shape == parameter.shape and grads[name].dtype == np.float64, name
        assert relative_error(grads[name], parameter.grad) <= 1e-9, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_keeps_the_dtype(by_hand, xp, dtype):
    rng = np.random.default_rng(1)
    params = by_hand.init_params(rng, xp, dtype, SMALL)
    x, eps = (value.astype(dtype) for value in batch(rng, xp, SMALL, 3))
    loss, grads = by_hand.forward_backward(params, x, eps)
    assert loss.dtype == dtype and all(grad.dtype == dtype for grad in grads.values())


def test_hand_written_adam_matches_tinyae_adam(by_hand, xp):
    rng = np.random.default_rng(2)
    params = by_hand.init_params(rng, xp, np.float64, SMALL)
    model = tinyae_vae(params, SMALL)
    named = dict(model.named_parameters())
    settings = {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6}
    optimizer = ta.optim.Adam(model.parameters(), **settings)
    state = by_hand.adam_init(params)
    for _ in range(5):
        _, grads = by_hand.forward_backward(params, *batch(rng, xp, SMALL, 4))
        for name, parameter in named.items():  # both optimizers see the same gradients
            parameter.grad = grads[name].copy()
        optimizer.step()
        by_hand.adam_step(params, grads, state, **settings)
        for name, parameter in named.items():
            np.testing.assert_allclose(to_numpy(params[name]), parameter.numpy(), rtol=1e-12, atol=0,
                                       err_msg=name)
    assert state["step"] == 5


def test_main_trains_briefly_and_prints_the_test_loss(by_hand, capsys):
    test_loss = by_hand.main(["--limit", "256", "--test-limit", "100", "--batch-size", "64",
                              "--backend", BACKEND])
    output = capsys.readouterr().out
    assert math.isfinite(test_loss) and 0 < test_loss < 784 * math.log(2)  # below the loss of logits 0
    assert f"test loss (-ELBO per image) {test_loss:.3f}" in output

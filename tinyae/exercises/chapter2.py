"""Checkers for the exercises of chapter 2 (docs/tutorial/02-losses-and-regularization.md): the tutorial's
reconstruction loss exactly as it is written, and the reparameterization trick from log σ².

    from tinyae.exercises import chapter2
    chapter2.check_tutorial_mse(tutorial_mse)          # tutorial_mse(x, x_hat) -> scalar Tensor
    chapter2.check_reparameterize(my_reparameterize)   # my_reparameterize(mu, logvar, eps) -> Tensor
"""

from __future__ import annotations

import numpy as np

import tinyae
from tinyae.exercises import checker
from tinyae import backend


def _tensors(rng, shape, requires_grad=False):
    return tinyae.tensor(rng.standard_normal(shape), requires_grad=requires_grad)


@checker
def check_tutorial_mse(tutorial_mse) -> None:
    """``tutorial_mse(x, x_hat)`` must be L = (1/N) Σᵢ ‖xᵢ − x̂ᵢ‖², N the batch size (the first axis) and
    the norm over all of an image's other axes, as a differentiable scalar Tensor."""
    rng = np.random.default_rng(0)
    for shape in [(4, 784), (3, 1, 28, 28), (1, 5), (7, 2, 3)]:
        x, x_hat = _tensors(rng, shape), _tensors(rng, shape, requires_grad=True)
        loss = tutorial_mse(x, x_hat)
        assert isinstance(loss, tinyae.Tensor) and loss.shape == (), (
            "tutorial_mse must return a scalar Tensor (shape ()), got "
            f"{getattr(loss, 'shape', type(loss).__name__)}")
        difference = x.numpy() - x_hat.numpy()
        n, per_image = shape[0], difference[0].size
        expected = float((difference**2).sum() / n)
        got = loss.item()
        if not np.isclose(got, expected, rtol=1e-9):
            ratio = expected / got if got else float("nan")
            hint = (f" It is {ratio:.4g} times too small: you averaged over the {per_image} numbers of each "
                    "image too (reduction='mean'); the tutorial sums over them and averages over images only"
                    if np.isclose(ratio, per_image) else
                    f" It is {got / expected:.4g} times too large: divide the sum by the batch size N"
                    if np.isclose(got / expected, n) else "")
            raise AssertionError(f"for a batch of shape {shape}, tutorial_mse gives {got:.6g}, but "
                                 f"(1/N) Σᵢ ‖xᵢ − x̂ᵢ‖² = {expected:.6g}.{hint}")
        assert loss.requires_grad, (
            "the value is right but the loss does not depend on x_hat in the graph: compute it with tinyae's "
            "operations on the Tensors (not on .numpy() copies) so that backward reaches x_hat")
        loss.backward()
        grad = None if x_hat.grad is None else backend.to_backend(x_hat.grad, "numpy")
        assert grad is not None and np.allclose(grad, -2 * difference / n, rtol=1e-9), (
            "the value is right but the gradient in x_hat is not 2(x̂ − x)/N: compute the loss with tinyae's "
            "operations on the Tensors (not on .numpy() copies) so that backward reaches x_hat")
    print("✓ tutorial_mse is (1/N) Σᵢ ‖xᵢ − x̂ᵢ‖², for flat and image batches, and differentiable")


@checker
def check_reparameterize(reparameterize) -> None:
    """``reparameterize(mu, logvar, eps)`` must be z = μ + σ ⊙ ε with σ = exp(½ log σ²), differentiable in
    μ and log σ² (∂z/∂μ = 1, ∂z/∂log σ² = ½ σ ⊙ ε)."""
    rng = np.random.default_rng(1)
    mu, logvar = _tensors(rng, (5, 3), True), _tensors(rng, (5, 3), True)
    eps = tinyae.tensor(rng.standard_normal((5, 3)))
    z = reparameterize(mu, logvar, eps)
    assert isinstance(z, tinyae.Tensor) and z.shape == mu.shape, (
        f"reparameterize must return a Tensor of μ's shape {mu.shape}, got "
        f"{getattr(z, 'shape', type(z).__name__)}")
    sigma = np.exp(0.5 * logvar.numpy())
    expected = mu.numpy() + sigma * eps.numpy()
    if not np.allclose(z.numpy(), expected, rtol=1e-9):
        hint = (" You used exp(log σ²) = σ² as the standard deviation: σ = exp(½ log σ²)"
                if np.allclose(z.numpy(), mu.numpy() + np.exp(logvar.numpy()) * eps.numpy()) else
                " You treated logvar as σ itself: the encoder outputs log σ², so σ = exp(½ log σ²)"
                if np.allclose(z.numpy(), mu.numpy() + logvar.numpy() * eps.numpy()) else "")
        raise AssertionError(f"z is not μ + σ ⊙ ε: the first element is {z.numpy().flat[0]:.6f}, expected "
                             f"{expected.flat[0]:.6f}.{hint}")
    try:
        tinyae.gradcheck(lambda mu, logvar: reparameterize(mu, logvar, eps), [mu, logvar])
    except tinyae.GradcheckError as error:
        raise AssertionError(f"z has the right value but the wrong gradient: {error}. Build z from tinyae "
                             "operations on mu and logvar so that backward reaches both") from None
    print("✓ reparameterize is z = μ + exp(½ log σ²) ⊙ ε, and tinyae.gradcheck certifies its gradients")

"""Reference solutions of chapter 2's exercises (docs/tutorial/02-losses-and-regularization.md)."""

import tinyae.functional as F


def tutorial_mse(x, x_hat):
    """(1/N) Σᵢ ‖xᵢ − x̂ᵢ‖²: the squared errors summed over everything, divided by the batch size."""
    return F.mse_loss(x_hat, x, reduction="sum") / x.shape[0]


def reparameterize(mu, logvar, eps):
    """z = μ + exp(½ log σ²) ⊙ ε."""
    return mu + (0.5 * logvar).exp() * eps

"""Reference solutions of the chapter 3 exercises (docs/tutorial/03-forward-backward-vae-training.md)."""

import numpy as np

import tinyae
from tinyae.backend import array_module


def decoder_jacobian(W, b, z):
    """∂x̂/∂z of x̂ = sigmoid(W z + b): diag(x̂ ⊙ (1 − x̂)) W, shape (D, d)."""
    x_hat = 0.5 * np.tanh(0.5 * (W @ z + b)) + 0.5
    return (x_hat * (1 - x_hat))[:, None] * W


class Reparameterize(tinyae.Function):
    """z = μ + exp(½ logvar) ⊙ ε;  ∂z/∂μ = 1,  ∂z/∂logvar = ½ exp(½ logvar) ⊙ ε;  ε gets no gradient."""

    def forward(self, mu, logvar, eps):
        self.half_std_eps = 0.5 * array_module(logvar).exp(0.5 * logvar) * eps
        return mu + 2 * self.half_std_eps

    def backward(self, grad_out):
        need_mu, need_logvar, _ = self.needs_input_grad
        return (grad_out if need_mu else None, grad_out * self.half_std_eps if need_logvar else None, None)

"""PyTorch-style functions (``tinyae.functional``, like ``torch.nn.functional``).

Activations and ``linear`` are defined here; convolution, losses and sampling live with their ops and are
re-exported, so ``import tinyae.functional as F`` gives everything a model needs.
"""

from __future__ import annotations

from .ops.activation import LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .ops.conv import conv2d, conv_transpose2d, upsample_nearest
from .ops.linear import Linear
from .ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    gaussian_kl,
    kl_sparsity,
    l1_penalty,
    mse_loss,
)
from .ops.sampling import dropout, reparameterize
from .tensor import Tensor

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "conv2d", "conv_transpose2d", "dropout",
    "gaussian_kl", "kl_sparsity", "l1_penalty", "leaky_relu", "linear", "mse_loss", "relu", "reparameterize",
    "sigmoid", "softplus", "tanh", "upsample_nearest",
]


def relu(x: Tensor) -> Tensor:
    """max(x, 0); subgradient 0 at x = 0."""
    return ReLU.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope·x."""
    return LeakyReLU.apply(x, negative_slope=negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    """1/(1 + e⁻ˣ), overflow-free."""
    return Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh.apply(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """(1/β)·log(1 + e^(βx)), linear above ``threshold`` (PyTorch's definition), overflow-free."""
    return Softplus.apply(x, beta=beta, threshold=threshold)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x·Wᵀ + b with W (out, in): one fused op (see ``tinyae.ops.linear``)."""
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)

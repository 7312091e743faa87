"""PyTorch-style functions (``tinyae.functional``, like ``torch.nn.functional``)."""

from __future__ import annotations

from .ops.activation import LeakyReLU, ReLU, Sigmoid, Softplus, Tanh
from .ops.linear import Linear
from .tensor import Tensor


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

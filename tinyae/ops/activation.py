"""Activations: relu, leaky_relu, sigmoid, tanh, softplus.

Each is elementwise, so ∂L/∂x = ∂L/∂y ⊙ f′(x). sigmoid and softplus are computed in forms that never
overflow (no warnings even at |x| = 1e4), and each backward reuses what the forward already computed, in
one fused kernel (``tinyae.kernels``: CUDA on the GPU, the same body compiled as C or its NumPy twin on
the CPU).
"""

from __future__ import annotations

from .. import kernels
from ..autograd import Function
from ..backend import array_module


class ReLU(Function):
    """y = max(x, 0).   ∂L/∂x = ∂L/∂y ⊙ [x > 0]; at the kink x = 0 the subgradient 0 is used (as PyTorch)."""

    def forward(self, x):
        self.out = kernels.relu(x)
        return self.out

    def backward(self, grad_out):
        return kernels.relu_backward(grad_out, self.out)


class LeakyReLU(Function):
    """y = x if x > 0 else s·x  (s = negative_slope).

    ∂L/∂x = ∂L/∂y if x > 0 else s·∂L/∂y; at x = 0 the slope s is used (as PyTorch).
    """

    def forward(self, x, negative_slope=0.01):
        xp = array_module(x)
        self.positive = x > 0
        self.negative_slope = negative_slope
        return xp.where(self.positive, x, x * negative_slope)

    def backward(self, grad_out):
        return kernels.leaky_relu_backward(grad_out, self.positive, self.negative_slope)


def stable_sigmoid(x):
    """σ(x) = 1/(1 + e⁻ˣ), evaluated with e = e^(−|x|) ≤ 1 so nothing overflows:
    σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) for x < 0 (both exact rewritings, accurate in both tails)."""
    xp = array_module(x)
    e = xp.exp(-abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ).   ∂L/∂x = ∂L/∂y ⊙ y(1 − y)   (saves y)."""

    def forward(self, x):
        self.out = stable_sigmoid(x)
        return self.out

    def backward(self, grad_out):
        return kernels.sigmoid_backward(grad_out, self.out)


class Tanh(Function):
    """y = tanh x.   ∂L/∂x = ∂L/∂y ⊙ (1 − y²)   (saves y)."""

    def forward(self, x):
        self.out = array_module(x).tanh(x)
        return self.out

    def backward(self, grad_out):
        return kernels.tanh_backward(grad_out, self.out)


class Softplus(Function):
    """y = (1/β) log(1 + e^(βx)), and y = x where βx > threshold (PyTorch's definition).

    Stable form: log1p(e^(min(βx, threshold)))/β, so e^(βx) is never evaluated past the threshold.
    ∂L/∂x = ∂L/∂y ⊙ σ(βx) where βx ≤ threshold, else ∂L/∂y.
    """

    def forward(self, x, beta=1.0, threshold=20.0):
        xp = array_module(x)
        scaled = x * beta
        self.linear = scaled > threshold
        self.exp_scaled = xp.exp(xp.minimum(scaled, x.dtype.type(threshold)))
        return xp.where(self.linear, x, xp.log1p(self.exp_scaled) / beta)

    def backward(self, grad_out):
        return kernels.softplus_backward(grad_out, self.exp_scaled, self.linear)

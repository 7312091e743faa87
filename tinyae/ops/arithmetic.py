"""Arithmetic: + − × ÷ ** and negation, with NumPy broadcasting.

Broadcasting copies an operand along new or size-1 axes in the forward pass. Each copy contributes to the
loss, so in the backward pass the gradient of the operand is the *sum* of the output gradient over the
broadcast axes: ``sum_to_shape(grad_out, operand.shape)``. That one helper undoes broadcasting for every
op in tinyae.

Each operand may be a Tensor or a Python scalar; ``needs_input_grad`` tells the backward which gradients
to compute, so a constant operand costs nothing.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..backend import array_module


def sum_to_shape(grad, shape: tuple[int, ...]):
    """Sum ``grad`` down to ``shape``: over its extra leading axes, then over axes where shape has 1.

    If y = broadcast_to(x, Y) then ∂L/∂x = Σ over the broadcast axes of ∂L/∂y.
    Example: x (3, 1) broadcast with (2, 1, 4) gives y (2, 3, 4); the gradient of x sums over axes 0 and 2.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + axis for axis, size in enumerate(shape) if size == 1 and grad.shape[extra + axis] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _shape(value, needed: bool):
    """The shape of an operand whose gradient is needed (so it is an array), else None."""
    return value.shape if needed else None


class Add(Function):
    """y = a + b.   ∂L/∂a = sum_to_shape(∂L/∂y),  ∂L/∂b = sum_to_shape(∂L/∂y)."""

    def forward(self, a, b):
        self.a_shape = _shape(a, self.needs_input_grad[0])
        self.b_shape = _shape(b, self.needs_input_grad[1])
        return a + b

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        return (
            sum_to_shape(grad_out, self.a_shape) if need_a else None,
            sum_to_shape(grad_out, self.b_shape) if need_b else None,
        )


class Sub(Function):
    """y = a − b.   ∂L/∂a = sum_to_shape(∂L/∂y),  ∂L/∂b = −sum_to_shape(∂L/∂y)."""

    def forward(self, a, b):
        self.a_shape = _shape(a, self.needs_input_grad[0])
        self.b_shape = _shape(b, self.needs_input_grad[1])
        return a - b

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        return (
            sum_to_shape(grad_out, self.a_shape) if need_a else None,
            -sum_to_shape(grad_out, self.b_shape) if need_b else None,
        )


class Mul(Function):
    """y = a ⊙ b.   ∂L/∂a = sum_to_shape(∂L/∂y ⊙ b),  ∂L/∂b = sum_to_shape(∂L/∂y ⊙ a).

    Saves b only if a needs a gradient, and a only if b does.
    """

    def forward(self, a, b):
        need_a, need_b = self.needs_input_grad
        self.a = a if need_b else None
        self.b = b if need_a else None
        self.a_shape = _shape(a, need_a)
        self.b_shape = _shape(b, need_b)
        return a * b

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        return (
            sum_to_shape(grad_out * self.b, self.a_shape) if need_a else None,
            sum_to_shape(grad_out * self.a, self.b_shape) if need_b else None,
        )


class Div(Function):
    """y = a / b.   ∂L/∂a = sum_to_shape(∂L/∂y / b),  ∂L/∂b = −sum_to_shape(∂L/∂y ⊙ y / b).

    Uses the saved output y = a/b for ∂L/∂b (−a/b² = −y/b).
    """

    def forward(self, a, b):
        need_a, need_b = self.needs_input_grad
        out = a / b
        self.b = b if (need_a or need_b) else None
        self.out = out if need_b else None
        self.a_shape = _shape(a, need_a)
        self.b_shape = _shape(b, need_b)
        return out

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        grad_over_b = grad_out / self.b
        return (
            sum_to_shape(grad_over_b, self.a_shape) if need_a else None,
            sum_to_shape(-grad_over_b * self.out, self.b_shape) if need_b else None,
        )


class Pow(Function):
    """y = a ** b.

    ∂L/∂a = sum_to_shape(∂L/∂y ⊙ b ⊙ a^(b−1))  — taken as 0 where b = 0, as PyTorch,
    ∂L/∂b = sum_to_shape(∂L/∂y ⊙ y ⊙ ln a)  — taken as 0 where a = 0 and b ≥ 0 (the limit, as PyTorch),
    and NaN where a < 0, where the real power is not differentiable in b.
    """

    def forward(self, a, b):
        need_a, need_b = self.needs_input_grad
        out = a**b
        self.a = a
        self.b = b
        self.out = out if need_b else None
        self.a_shape = _shape(a, need_a)
        self.b_shape = _shape(b, need_b)
        return out

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        a, b = self.a, self.b
        grad_a = grad_b = None
        if need_a:  # b·a^(b−1), taken as 0 where b = 0 (a^0 is constant; avoids 0·0^(−1) = NaN)
            xp = array_module(a)
            if isinstance(b, (int, float)) and b == 0:
                slope = xp.zeros_like(a)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):  # 0^(negative) is inf, as in PyTorch
                    slope = b * a ** (b - 1)
                if not isinstance(b, (int, float)):
                    slope = xp.where(b == 0, slope.dtype.type(0), slope)
            grad_a = sum_to_shape(grad_out * slope, self.a_shape)
        if need_b:
            if isinstance(a, (int, float)):  # a Python scalar base (2 ** x): math.log keeps b's dtype
                log_a = math.log(a) if a > 0 else (0.0 if a == 0 else math.nan)
                with np.errstate(invalid="ignore"):  # 0^(negative) · ln 0 is inf · 0: NaN, as for an array base
                    grad_b = grad_out * self.out * log_a
            else:
                safe_a = array_module(a).where(a == 0, a.dtype.type(1), a)  # ln 0 is never evaluated
                with np.errstate(invalid="ignore"):  # ln of a negative base is NaN, by definition
                    grad_b = grad_out * self.out * array_module(a).log(safe_a)
            grad_b = sum_to_shape(grad_b, self.b_shape)
        return grad_a, grad_b


class Neg(Function):
    """y = −x.   ∂L/∂x = −∂L/∂y."""

    def forward(self, x):
        return -x

    def backward(self, grad_out):
        return -grad_out

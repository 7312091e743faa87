"""Reductions: sum, mean, max and logsumexp over ``axis`` (None, an int or a tuple), with ``keepdims``.

A reduction maps many inputs to one output, so its backward *broadcasts* the output gradient back over
the reduced axes: the mirror image of how broadcasting's backward is a sum.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import array_module


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, int or tuple; negative allowed) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    normalized = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        normalized.append(a % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"duplicate value in axis {axis}")
    return tuple(sorted(normalized))


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape with keepdims=True: reduced axes become 1."""
    return tuple(1 if axis in axes else size for axis, size in enumerate(shape))


def expand_to(grad_out, shape: tuple[int, ...], axes: tuple[int, ...]):
    """Broadcast a reduction's output gradient back to the input shape (a fresh, writable array)."""
    xp = array_module(grad_out)
    grad = grad_out.reshape(kept_shape(shape, axes))
    out = xp.empty(shape, dtype=grad_out.dtype)
    out[...] = grad
    return out


class Sum(Function):
    """y = Σ over axes of x.   ∂L/∂x = ∂L/∂y broadcast back over the summed axes."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape = x.shape
        self.axes = normalize_axes(axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, grad_out):
        return expand_to(grad_out, self.shape, self.axes)


class Mean(Function):
    """y = (1/n) Σ over axes of x, n = number of elements reduced.   ∂L/∂x = (∂L/∂y)/n broadcast back."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape = x.shape
        self.axes = normalize_axes(axis, x.ndim)
        self.count = 1
        for axis_ in self.axes:
            self.count *= x.shape[axis_]
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, grad_out):
        return expand_to(grad_out / self.count, self.shape, self.axes)


class Max(Function):
    """y = max over axes of x.

    ∂L/∂x = ∂L/∂y at the position of the maximum, 0 elsewhere. With ties, the gradient is split evenly
    among the tied maxima (the subgradient PyTorch's ``amax`` uses), so it still sums to ∂L/∂y.
    """

    def forward(self, x, axis=None, keepdims=False):
        self.axes = normalize_axes(axis, x.ndim)
        if x.size == 0:
            raise ValueError("max of an empty array: the maximum is not defined (zero-size reduction)")
        out = x.max(axis=self.axes, keepdims=True)
        self.x, self.out_kept = x, out
        return out if keepdims else out.reshape(tuple(s for i, s in enumerate(x.shape) if i not in self.axes))

    def backward(self, grad_out):
        is_max = self.x == self.out_kept
        ties = is_max.sum(axis=self.axes, keepdims=True).astype(grad_out.dtype)
        return is_max * (grad_out.reshape(self.out_kept.shape) / ties)


class LogSumExp(Function):
    """y = log Σ over axes of eˣ, computed stably as m + log Σ e^(x − m) with m = max x.

    ∂L/∂x = ∂L/∂y ⊙ e^(x − y) = ∂L/∂y ⊙ softmax(x) over the reduced axes.
    Saves e^(x − m) and its sum, so the backward needs no new exponential.
    """

    def forward(self, x, axis=None, keepdims=False):
        xp = array_module(x)
        self.axes = normalize_axes(axis, x.ndim)
        shift = x.max(axis=self.axes, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, x.dtype.type(0))  # all −inf: avoid inf − inf
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # ±inf inputs give ±inf, as PyTorch
            self.exp_shifted = xp.exp(x - shift)
            self.total = self.exp_shifted.sum(axis=self.axes, keepdims=True)
            out = xp.log(self.total) + shift
        return out if keepdims else out.reshape(tuple(s for i, s in enumerate(x.shape) if i not in self.axes))

    def backward(self, grad_out):
        with np.errstate(divide="ignore", invalid="ignore"):  # all −inf (or +inf): NaN gradient, as PyTorch
            return self.exp_shifted * (grad_out.reshape(self.total.shape) / self.total)

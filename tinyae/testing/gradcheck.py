"""Finite-difference gradient checking.

For f: inputs → output, backward computes vector-Jacobian products: given v = ∂L/∂output it returns
∂L/∂x = Jᵀv. With a fixed random v, L(x) = ⟨v, f(x)⟩ is a scalar function, and its derivative in each
input element can be measured independently by central differences:

    ∂L/∂xᵢ ≈ (L(x + ε eᵢ) − L(x − ε eᵢ)) / 2ε        (error O(ε²))

``gradcheck`` compares the two for *every* element of every input that requires grad. A random v (rather
than each basis vector in turn) checks every column of Jᵀ mixed with random weights, so a wrong entry
survives only by a measure-zero coincidence, at the cost of one backward instead of one per output
element. Everything runs in float64: in float32, ε = 1e-6 is drowned by rounding (errors ~1e-2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import autograd, backend
from ..tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic gradient of some input element disagrees with the finite-difference one."""


def _float64_leaf(value, requires_grad: bool) -> Tensor:
    data = value.data if isinstance(value, Tensor) else value
    if backend.is_array(data) and data.dtype.kind == "f":
        data = data.astype(np.float64)
    elif backend.is_array(data):
        data = data.copy()
    else:
        return value
    return Tensor._make(data, requires_grad, None)


def _project(out: Tensor | Sequence[Tensor], directions: list[np.ndarray]) -> float:
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return float(sum(np.vdot(direction, o.numpy().astype(np.float64)) for direction, o in zip(directions, outs)))


def gradients(fn: Callable[..., Tensor], inputs: Tensor | Sequence, eps: float = 1e-6,
              seed: int = 0) -> list[tuple[int, tuple, np.ndarray, np.ndarray]]:
    """(position, shape, analytic, numeric) for each input that requires grad: the backward's gradient of
    L = ⟨v, fn(inputs)⟩ (v a fixed random projection) and its central differences, in float64, on the host.

    ``inputs`` are Tensors, backend arrays (both copied to float64 leaves; only tensors with
    ``requires_grad`` are measured) or other arguments, passed through unchanged. Raises GradcheckError
    when fn does not return float64 tensors or a gradient has the wrong shape or dtype.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    leaves = [_float64_leaf(x, isinstance(x, Tensor) and x.requires_grad) for x in inputs]
    checked = [i for i, x in enumerate(leaves) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")

    out = fn(*leaves)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if not isinstance(o, Tensor) or o.dtype != np.float64:
            raise GradcheckError(
                f"gradcheck: fn must return float64 tensors for float64 inputs, got "
                f"{getattr(o, 'dtype', type(o).__name__)}: an op downcasts or fn leaves the graph"
            )
    rng = np.random.default_rng(seed)
    directions = [rng.standard_normal(o.shape) for o in outs]
    for o, direction in zip(outs, directions):
        if o.requires_grad:
            autograd.backward(o, backend.to_backend(direction, o.backend), retain_graph=True)

    measured = []
    for position in checked:
        x = leaves[position]
        analytic = np.zeros(x.shape) if x.grad is None else backend.to_backend(x.grad, "numpy")
        if analytic.shape != x.shape or analytic.dtype != np.float64:
            raise GradcheckError(
                f"gradcheck: the gradient of input {position} has shape {analytic.shape} and dtype "
                f"{analytic.dtype}; expected {x.shape} and float64"
            )
        numeric = np.empty(x.shape)
        with autograd.no_grad():
            for index in np.ndindex(*x.shape):
                original = x.data[index].item()
                x.data[index] = original + eps
                plus = _project(fn(*leaves), directions)
                x.data[index] = original - eps
                minus = _project(fn(*leaves), directions)
                x.data[index] = original
                numeric[index] = (plus - minus) / (2 * eps)
        if x.grad is None and not numeric.any():
            raise GradcheckError(
                f"gradcheck: input {position} (shape {x.shape}) does not influence fn's output, so nothing "
                "about it was checked. fn receives float64 copies of the inputs and must compute with them "
                "(to check a module's parameters, swap the copies in)"
            )
        measured.append((position, x.shape, analytic, numeric))
    return measured


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Tensor | Sequence,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s backward against central finite differences, in float64, element by element.

    ``inputs`` as for ``gradients``; ``fn`` returns a Tensor or a tuple of Tensors. An element passes when
    |analytic − numeric| ≤ atol + rtol·|numeric|. Returns True, or raises GradcheckError naming the input,
    the first failing element, both values, and the input's max abs and rel errors.
    """
    for position, shape, analytic, numeric in gradients(fn, inputs, eps, seed):
        compare(position, shape, analytic, numeric, atol, rtol)
    return True


def compare(position: int, shape, analytic: np.ndarray, numeric: np.ndarray, atol: float, rtol: float) -> None:
    abs_error = np.abs(analytic - numeric)
    rel_error = abs_error / np.maximum(np.abs(numeric), np.finfo(np.float64).tiny)
    bad = ~(abs_error <= atol + rtol * np.abs(numeric))  # also catches NaN
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GradcheckError(
            f"gradcheck: input {position} (shape {tuple(shape)}), element {index}: "
            f"analytic {analytic[index]!r} vs numeric {numeric[index]!r}; "
            f"{int(bad.sum())} of {bad.size} elements fail, max abs error {np.max(abs_error):.3g}, "
            f"max rel error {np.max(rel_error):.3g} (atol={atol}, rtol={rtol})"
        )

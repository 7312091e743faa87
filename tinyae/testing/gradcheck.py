"""Finite-difference gradient checking.

For f: inputs → output, backward computes vector-Jacobian products: given v = ∂L/∂output it returns
∂L/∂x = Jᵀv. With a fixed random v, L(x) = ⟨v, f(x)⟩ is a scalar function, and its derivative in each
input element can be measured independently by central differences:

    ∂L/∂xᵢ ≈ (L(x + ε eᵢ) − L(x − ε eᵢ)) / 2ε        (error O(ε²))

``gradcheck`` compares the two for *every* element of every input that requires grad. A random v (rather
than each basis vector in turn) checks every column of Jᵀ mixed with random weights, so a wrong entry
survives only by a measure-zero coincidence, at the cost of one backward instead of one per output
element. Everything runs in float64: in float32, ε = 1e-6 is drowned by rounding (errors ~1e-2).

Two more checks, as PyTorch's gradcheck makes: backward run twice on the same graph gives the same
gradients (up to ``nondet_tol``: it is "reentrant"); and an input that does not require a gradient
receives none, while the others' gradients stay what they were: each checked input is switched off in
turn and fn run again, so the op's ``needs_input_grad`` branches are checked too.
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


def gradients(fn: Callable[..., Tensor], inputs: Tensor | Sequence, eps: float = 1e-6, seed: int = 0,
              nondet_tol: float = 0.0) -> list[tuple[int, tuple, np.ndarray, np.ndarray]]:
    """(position, shape, analytic, numeric) for each input that requires grad: the backward's gradient of
    L = ⟨v, fn(inputs)⟩ (v a fixed random projection) and its central differences, in float64, on the host.

    ``inputs`` are Tensors, backend arrays (both copied to float64 leaves; only tensors with
    ``requires_grad`` are measured) or other arguments, passed through unchanged. Raises GradcheckError
    when fn does not return float64 tensors, a gradient has the wrong shape or dtype, a second backward
    differs from the first by more than ``nondet_tol``, or an input that does not require a gradient gets
    one or changes the others' (see the module docstring).
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
    analytic = _analytic(outs, directions, leaves)
    for position, grad in _analytic(outs, directions, leaves).items():
        _check_same(grad, analytic[position], nondet_tol,
                    f"input {position} (shape {leaves[position].shape}): running backward twice on the same "
                    "graph gave different gradients, so backward is not reentrant (does it change what "
                    "forward saved, or depend on state outside the graph?)")
    del out, outs  # the graph is no longer needed
    _check_switched_off(fn, leaves, checked, directions, analytic, nondet_tol)

    measured = []
    for position in checked:
        x = leaves[position]
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
        if analytic[position] is None:
            if numeric.any():
                analytic[position] = np.zeros(x.shape)  # a missing gradient counts as zero
            else:
                raise GradcheckError(
                    f"gradcheck: input {position} (shape {x.shape}) does not influence fn's output, so "
                    "nothing about it was checked. fn receives float64 copies of the inputs and must compute "
                    "with them (to check a module's parameters, swap the copies in)"
                )
        measured.append((position, x.shape, analytic[position], numeric))
    return measured


def directional_gradients(fn: Callable[..., Tensor], inputs: Tensor | Sequence, eps: float = 1e-6,
                          seed: int = 0, kink_tol: float = 2.5e-6,
                          tries: int = 6) -> list[tuple[int, tuple, np.ndarray, np.ndarray]]:
    """As ``gradients``, one direction per input instead of every element: for a fixed random v over the
    outputs and, for each input x that requires grad, a random unit direction u of x's shape, the analytic
    ⟨∂L/∂x, u⟩ from one backward against the central difference (L(x + εu) − L(x − εu)) / 2ε, the other
    inputs held. For inputs too large to check element by element (a model's weights): a few evaluations of
    fn per input, not 2 per element. A wrong gradient g + e passes only if ⟨e, u⟩ is within the tolerance,
    which for a random u needs |e| about rtol·|g| or less.

    Kinks. Along a direction over thousands of weights, some ReLU unit may change sides within the step; L has
    no derivative there, and the difference quotient mixes two slopes. With ℓ(h) = L(x + hu), a smooth ℓ has
    central differences c(h) = (ℓ(h) − ℓ(−h))/2h that agree at h = ε and ε/2 to O(ε²), and second differences
    S(h) = ℓ(h) + ℓ(−h) − 2ℓ(0) with S(ε) = 4·S(ε/2) to O(ε⁴). A kink of slope jump J at distance d < ε
    breaks one or the other by at least J/6 (|c(ε) − c(ε/2)| = J·d/2ε, |S(ε) − 4S(ε/2)|/ε = J·|3d/ε − 1|
    for d < ε/2), and shifts c(ε) by at most J/2. So a direction passes the test when both stay within
    ``kink_tol`` plus the rounding of the values of L (8 units in the last place of L, over ε); its kink then
    costs at most 3 times that. Else another is drawn, up to ``tries`` in all, then as many with the step
    ε/10 (kinks closer than ε to x in every direction: seen for a 2-element bias feeding thousands of ReLUs).
    Returns (position, shape, [analytic], [c]); raises GradcheckError if every direction tried crossed a kink.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    leaves = [_float64_leaf(x, isinstance(x, Tensor) and x.requires_grad) for x in inputs]
    checked = [i for i, x in enumerate(leaves) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    out = fn(*leaves)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    rng = np.random.default_rng(seed)
    directions = [rng.standard_normal(o.shape) for o in outs]
    analytic = _analytic(outs, directions, leaves)
    del out, outs
    with autograd.no_grad():
        center = _project(fn(*leaves), directions)
    measured = []
    for position in checked:
        x = leaves[position]
        original = x.data.copy()

        def along(step: float, u: np.ndarray) -> tuple[float, float]:
            """(ℓ(step), ℓ(−step))."""
            values = []
            with autograd.no_grad():
                for sign in (1, -1):
                    x.data[...] = original + backend.to_backend(sign * step * u, x.backend)
                    values.append(_project(fn(*leaves), directions))
                x.data[...] = original
            return values[0], values[1]

        smooth = False
        for step in (eps, eps / 10):
            tolerance = kink_tol + 8 * float(np.spacing(abs(center))) / step
            for _ in range(tries):
                u = rng.standard_normal(x.shape)
                u /= max(float(np.linalg.norm(u)), np.finfo(np.float64).tiny)
                (plus, minus), (half_plus, half_minus) = along(step, u), along(step / 2, u)
                numeric, half_central = (plus - minus) / (2 * step), (half_plus - half_minus) / step
                second, half_second = plus + minus - 2 * center, half_plus + half_minus - 2 * center
                smooth = (abs(numeric - half_central) <= tolerance
                          and abs(second - 4 * half_second) / step <= tolerance)
                if smooth:
                    break
            if smooth:
                break
        if not smooth:
            raise GradcheckError(f"gradcheck: input {position} (shape {x.shape}): all {2 * tries} random "
                                 f"directions crossed a kink within the step ({eps} or {eps / 10})")
        grad = analytic[position]
        projected = 0.0 if grad is None else float(np.vdot(grad, u))
        measured.append((position, x.shape, np.array([projected]), np.array([numeric])))
    return measured


def _analytic(outs, directions, leaves: list) -> dict[int, np.ndarray | None]:
    """Backpropagate ⟨v, outs⟩ (keeping the graph) into fresh ``.grad``s: {position: gradient on the host,
    or None} for each leaf that requires one.

    Raises GradcheckError for a gradient of the wrong shape or dtype, and for a leaf that does not require
    a gradient but received one."""
    for leaf in leaves:
        if isinstance(leaf, Tensor) and leaf.requires_grad:
            leaf.grad = None
    for o, direction in zip(outs, directions):
        if o.requires_grad:
            autograd.backward(o, backend.to_backend(direction, o.backend), retain_graph=True)
    grads = {}
    for position, leaf in enumerate(leaves):
        if not isinstance(leaf, Tensor):
            continue
        if not leaf.requires_grad:
            if leaf.grad is not None:
                raise GradcheckError(f"gradcheck: input {position} (shape {leaf.shape}) does not require a "
                                     "gradient but received one")
            continue
        grad = None if leaf.grad is None else backend.to_backend(leaf.grad, "numpy")
        if grad is not None and (grad.shape != leaf.shape or grad.dtype != np.float64):
            raise GradcheckError(
                f"gradcheck: the gradient of input {position} has shape {grad.shape} and dtype "
                f"{grad.dtype}; expected {leaf.shape} and float64"
            )
        grads[position] = grad
    return grads


def _check_switched_off(fn, leaves: list, checked: list[int], directions, analytic: dict,
                        nondet_tol: float) -> None:
    """Run fn again with each checked input in turn not requiring a gradient: it must receive none, and
    every other input the gradient it got with all of them on."""
    for off in checked:
        leaves[off].requires_grad, leaves[off].grad = False, None
        try:
            out = fn(*leaves)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            for position, grad in _analytic(outs, directions, leaves).items():
                if position != off:
                    _check_same(grad, analytic[position], nondet_tol,
                                f"input {position} (shape {leaves[position].shape}): its gradient changed "
                                f"when input {off} stopped requiring one (a needs_input_grad branch of an op "
                                "is wrong)")
        finally:
            leaves[off].requires_grad = True
            leaves[off].grad = None


def _check_same(grad, expected, tolerance: float, message: str) -> None:
    """GradcheckError with ``message`` unless two gradients (host arrays or None) agree to ``tolerance``
    (equal infinities and NaNs agree)."""
    if grad is None and expected is None:
        return
    grad = np.zeros_like(expected) if grad is None else grad
    expected = np.zeros_like(grad) if expected is None else expected
    with np.errstate(invalid="ignore"):  # inf − inf
        difference = np.abs(grad - expected)
    same = (grad == expected) | (difference <= tolerance) | (np.isnan(grad) & np.isnan(expected))
    if not same.all():
        raise GradcheckError(f"gradcheck: {message}; max difference {np.nanmax(difference, initial=0):.3g}, "
                             f"nondet_tol={tolerance}")


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Tensor | Sequence,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    nondet_tol: float = 0.0,
) -> bool:
    """Check ``fn``'s backward against central finite differences, in float64, element by element.

    ``inputs`` as for ``gradients``; ``fn`` returns a Tensor or a tuple of Tensors. An element passes when
    |analytic − numeric| ≤ atol + rtol·|numeric|. Returns True, or raises GradcheckError naming the input,
    the first failing element, both values, and the input's max abs and rel errors. Also checks that
    backward is reentrant (two runs agree to ``nondet_tol``, 0 by default: bit for bit) and that an input
    that does not require a gradient receives none and changes no other input's gradient.
    """
    for position, shape, analytic, numeric in gradients(fn, inputs, eps, seed, nondet_tol):
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

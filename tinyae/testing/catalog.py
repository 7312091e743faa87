"""The gradient-check catalogue behind ``tinyae gradcheck``: a finite-difference check of every op, layer and
loss, on random shapes and settings.

Each ``Entry`` says what it covers (``Function`` subclasses of tinyae.ops and tinyae.tensor, nn layers,
tinyae.functional functions; tests/test_catalog.py fails when one of those has no entry) and draws a
``Case`` from a NumPy Generator: a description of the shapes and settings, a function, and its inputs, ready
for ``tinyae.gradcheck``. Values keep a distance ``MARGIN`` (far more than the step ``EPS``) from kinks
(relu, abs, clip, ties of max) and poles (log, division), so the differences measure a derivative.

The entries of the tutorial's models (``catalog_models``) and of the fused kernels' compiled bodies
(``catalog_kernels``) register themselves from their own modules, imported at the end of this one.

``run`` checks the entries in float64 on one backend and records the largest errors, ``format_table``
prints them, and ``main`` is the command line. An entry's draws depend only on the seed and its name, so
``--only NAME --seed S`` repeats exactly the rows that the full run with seed S shows for NAME.

``DEFAULT_REPEATS``, measured: a Transpose whose backward uses the permutation itself as its inverse, wrong
only for the 3-cycles of 3 axes, is caught by a draw of the transpose entry with probability 0.079 (3 axes
in 1 of 4 draws, a 3-cycle in 2 of their 6 permutations, not all sides 1), so 4 draws miss it 72% of the
time; over 1000 seeds the first catching draw was at most the 91st. 100 draws miss it with probability
(1 − 0.079)¹⁰⁰ ≈ 3·10⁻⁴. Entries whose shapes are fixed or whose draws are costly (models, compiled kernels)
draw at most ``Entry.max_draws`` times.
"""

from __future__ import annotations

import argparse
import math
import operator
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import nn
from .. import functional as F
from ..backend import get_backend, get_default_dtype, set_backend, set_default_dtype
from ..functions import concatenate, logsumexp, maximum, minimum, stack, where
from ..ops import activation, arithmetic, conv, elementwise, linear, loss, matmul, reduce, sampling, shape
from ..random import manual_seed
from ..tensor import Tensor, ToBackend, tensor
from .gradcheck import GradcheckError, compare, directional_gradients, gradients

EPS, ATOL, RTOL = 1e-6, 1e-5, 1e-3  # tinyae.gradcheck's defaults (DESIGN.md, "Gradient checks")
MARGIN = 0.05  # the distance kept from kinks and poles
DEFAULT_REPEATS = 100  # random draws (table rows) per entry: see the module docstring
BACKENDS = ("numpy", "cupy", "strict")


class Case(NamedTuple):
    """One drawn check: its shapes and settings in words, the function, and the inputs for gradcheck.

    ``directional``: check one random direction per input (``directional_gradients``) rather than every
    element, for inputs too large to go element by element. ``runner``, if given, is called with the
    measurement (a function of no arguments returning what ``gradients`` returns) and returns the rows to
    compare: it may watch what happens while it runs, and raise GradcheckError when something it requires
    did not happen (a compiled loop that never ran).
    """

    settings: str
    fn: Callable[..., Tensor]
    inputs: list
    directional: bool = False
    runner: Callable[[Callable[[], list]], list] | None = None


@dataclass(frozen=True)
class Entry:
    """A catalogue entry: ``draw(rng)`` makes a Case; ``covers`` lists what it checks; ``max_draws`` caps
    its draws per run whatever ``repeats`` asks (None: no cap)."""

    name: str
    covers: tuple[object, ...]
    draw: Callable[[np.random.Generator], Case]
    max_draws: int | None = None


@dataclass(frozen=True)
class Result:
    """One row of the table. The errors are None when the check failed before gradients were compared."""

    name: str
    settings: str
    max_abs_error: float | None
    max_rel_error: float | None
    passed: bool
    message: str = ""


CATALOGUE: list[Entry] = []


def _entry(name: str, *covers: object, max_draws: int | None = None) -> Callable:
    """Decorator: register ``draw`` as the catalogue entry ``name`` covering ``covers``."""

    def register(draw: Callable[[np.random.Generator], Case]) -> Callable[[np.random.Generator], Case]:
        CATALOGUE.append(Entry(name, covers, draw, max_draws))
        return draw

    return register


# Drawing shapes, settings and values ----------------------------------------------------------------------

def _side(rng: np.random.Generator, low: int = 1, high: int = 3) -> int:
    return int(rng.integers(low, high + 1))


def _shape(rng: np.random.Generator, min_dims: int = 0, max_dims: int = 3, max_side: int = 4) -> tuple:
    return tuple(_side(rng, 1, max_side) for _ in range(_side(rng, min_dims, max_dims)))


def _broadcastable_to(rng: np.random.Generator, full: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``full``: a suffix of it with some sides set to 1."""
    suffix = full[len(full) - _side(rng, 0, len(full)):]
    return tuple(1 if rng.random() < 0.3 else side for side in suffix)


def _broadcast_shapes(rng: np.random.Generator, count: int = 2) -> list[tuple[int, ...]]:
    full = _shape(rng, 0, 3, 3)
    return [_broadcastable_to(rng, full) for _ in range(count)]


def _values(rng: np.random.Generator, shape, low: float = -2.0, high: float = 2.0, avoid=()) -> np.ndarray:
    """float64 values uniform in [low, high], pushed at least MARGIN away from each point of ``avoid``."""
    values = np.asarray(rng.uniform(low, high, size=shape))
    for point in avoid:
        near = np.abs(values - point) < MARGIN
        values[near] = point + np.where(values[near] >= point, MARGIN, -MARGIN)
    return values


def _nonzero(rng: np.random.Generator, shape) -> np.ndarray:
    """Values with 0.5 ≤ |v| ≤ 2 and random signs (divisors)."""
    return _values(rng, shape, 0.5, 2.0) * rng.choice([-1.0, 1.0], size=shape)


def _positive(rng: np.random.Generator, shape) -> np.ndarray:
    """Values in [0.5, 2] (bases of powers)."""
    return _values(rng, shape, 0.5, 2.0)


def _distinct_values(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` values, every two at least MARGIN apart (no ties for max, maximum and minimum)."""
    jitter = rng.uniform(-MARGIN / 2, MARGIN / 2, size)
    return (rng.permutation(size) - size / 2) * 2 * MARGIN + jitter


def _axis(rng: np.random.Generator, ndim: int) -> int | tuple[int, ...] | None:
    """A reduction axis: None, one axis (maybe negative) or a tuple of distinct axes."""
    kind = rng.integers(3)
    if ndim == 0 or kind == 0:
        return None
    if kind == 1:
        return int(rng.integers(-ndim, ndim))
    return tuple(int(a) for a in rng.choice(ndim, size=_side(rng, 1, ndim), replace=False))


def _int_or_pair(pair: tuple[int, int]) -> int | tuple[int, int]:
    """A conv setting as an int when both sides agree, so both spellings get checked."""
    return pair[0] if pair[0] == pair[1] else pair


def _setting(rng: np.random.Generator, low: float, high: float) -> float:
    """A float setting (slope, β, p, a bound), rounded so that the table shows exactly what ran."""
    return round(float(rng.uniform(low, high)), 3)


def _reduction(rng: np.random.Generator) -> str:
    return str(rng.choice(["mean", "sum", "none"]))


def _leaf(values) -> Tensor:
    """An input to check: a float64 tensor on the active backend that requires grad."""
    return tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def _constant(values) -> Tensor:
    """A float64 tensor on the active backend that is not differentiated (noise, a fixed mask)."""
    return tensor(np.asarray(values, dtype=np.float64))


def _with_fixed_mask(fn: Callable[..., Tensor], seed: int) -> Callable[..., Tensor]:
    """``fn``, reseeding tinyae's generators before every call, so dropout draws the same mask each time."""

    def reseeded(*inputs):
        manual_seed(seed)
        return fn(*inputs)

    return reseeded


# Arithmetic and elementwise ops ----------------------------------------------------------------------------

def _register_binary(name: str, fn: Callable, covers: tuple, draw_a=_values, draw_b=_values) -> None:
    """A binary op, checked as tensor∘tensor with broadcasting, tensor∘scalar or scalar∘tensor."""

    def draw(rng: np.random.Generator) -> Case:
        a_shape, b_shape = _broadcast_shapes(rng)
        mode = rng.integers(3)
        if mode == 0:
            inputs = [_leaf(draw_a(rng, a_shape)), _leaf(draw_b(rng, b_shape))]
            return Case(f"a {a_shape}, b {b_shape}", fn, inputs)
        if mode == 1:
            b = round(float(draw_b(rng, ())), 3)  # rounded so that the table shows exactly what ran
            return Case(f"a {a_shape}, scalar b = {b}", lambda a: fn(a, b), [_leaf(draw_a(rng, a_shape))])
        a = round(float(draw_a(rng, ())), 3)
        return Case(f"scalar a = {a}, b {b_shape}", lambda b: fn(a, b), [_leaf(draw_b(rng, b_shape))])

    CATALOGUE.append(Entry(name, covers, draw))


_register_binary("add", operator.add, (arithmetic.Add,))
_register_binary("sub", operator.sub, (arithmetic.Sub,))
_register_binary("mul", operator.mul, (arithmetic.Mul,))
_register_binary("div", operator.truediv, (arithmetic.Div,), draw_b=_nonzero)
_register_binary("pow", operator.pow, (arithmetic.Pow,), draw_a=_positive)


def _register_unary(name: str, fn: Callable, covers: tuple, low: float = -2.0, high: float = 2.0,
                    avoid=()) -> None:
    """An elementwise function of one tensor of random shape, values in [low, high] away from ``avoid``."""

    def draw(rng: np.random.Generator) -> Case:
        x_shape = _shape(rng)
        return Case(f"x {x_shape}", fn, [_leaf(_values(rng, x_shape, low, high, avoid))])

    CATALOGUE.append(Entry(name, covers, draw))


_register_unary("neg", operator.neg, (arithmetic.Neg,))
_register_unary("exp", Tensor.exp, (elementwise.Exp,))
_register_unary("log", Tensor.log, (elementwise.Log,), 0.2, 3.0)
_register_unary("sqrt", Tensor.sqrt, (elementwise.Sqrt,), 0.2, 3.0)
_register_unary("abs", abs, (elementwise.Abs,), avoid=(0.0,))
_register_unary("relu", F.relu, (activation.ReLU, F.relu), avoid=(0.0,))
_register_unary("sigmoid", F.sigmoid, (activation.Sigmoid, F.sigmoid), -4.0, 4.0)
_register_unary("tanh", F.tanh, (activation.Tanh, F.tanh), -3.0, 3.0)


@_entry("clip", elementwise.Clip)
def _draw_clip(rng: np.random.Generator) -> Case:
    low, high = _setting(rng, -1.5, -0.5), _setting(rng, 0.5, 1.5)
    low, high = [(low, high), (low, None), (None, high)][rng.integers(3)]
    x_shape = _shape(rng)
    bounds = {side: bound for side, bound in (("min", low), ("max", high)) if bound is not None}
    x = _values(rng, x_shape, avoid=bounds.values())
    described = ", ".join(f"{side} {bound}" for side, bound in bounds.items())
    return Case(f"x {x_shape}, {described}", lambda x: x.clip(low, high), [_leaf(x)])


def _register_extremum(name: str, fn: Callable, covers: tuple) -> None:
    """maximum / minimum of two broadcast tensors whose values are all distinct (no ties)."""

    def draw(rng: np.random.Generator) -> Case:
        a_shape, b_shape = _broadcast_shapes(rng)
        a_size = math.prod(a_shape)
        values = _distinct_values(rng, a_size + math.prod(b_shape))
        a, b = values[:a_size].reshape(a_shape), values[a_size:].reshape(b_shape)
        return Case(f"a {a_shape}, b {b_shape}", fn, [_leaf(a), _leaf(b)])

    CATALOGUE.append(Entry(name, covers, draw))


_register_extremum("maximum", maximum, (elementwise.Maximum,))
_register_extremum("minimum", minimum, (elementwise.Minimum,))


@_entry("where", elementwise.Where)
def _draw_where(rng: np.random.Generator) -> Case:
    condition_shape, a_shape, b_shape = _broadcast_shapes(rng, 3)
    condition = tensor(rng.random(condition_shape) < 0.5, dtype=bool)
    return Case(
        f"condition {condition_shape}, a {a_shape}, b {b_shape}",
        lambda a, b: where(condition, a, b),
        [_leaf(_values(rng, a_shape)), _leaf(_values(rng, b_shape))],
    )


# Activations with settings ----------------------------------------------------------------------------------

@_entry("leaky_relu", activation.LeakyReLU, F.leaky_relu)
def _draw_leaky_relu(rng: np.random.Generator) -> Case:
    slope, x_shape = _setting(rng, 0.01, 0.5), _shape(rng)
    return Case(
        f"x {x_shape}, negative_slope {slope}",
        lambda x: F.leaky_relu(x, slope),
        [_leaf(_values(rng, x_shape, avoid=(0.0,)))],
    )


def _softplus_settings(rng: np.random.Generator) -> tuple[float, float]:
    """β and a threshold low enough that some inputs take the linear branch (βx > threshold)."""
    return _setting(rng, 0.5, 2.0), _setting(rng, 1.0, 3.0)


@_entry("softplus", activation.Softplus, F.softplus)
def _draw_softplus(rng: np.random.Generator) -> Case:
    (beta, threshold), x_shape = _softplus_settings(rng), _shape(rng)
    x = _values(rng, x_shape, -3.0, 3.0, avoid=(threshold / beta,))  # the branches meet, with a jump, there
    return Case(
        f"x {x_shape}, beta {beta}, threshold {threshold}",
        lambda x: F.softplus(x, beta, threshold),
        [_leaf(x)],
    )


# Reductions -------------------------------------------------------------------------------------------------

def _register_reduction(name: str, fn: Callable, covers: tuple, distinct: bool = False) -> None:
    """A reduction over a random axis (None, int or tuple) with or without keepdims."""

    def draw(rng: np.random.Generator) -> Case:
        x_shape = _shape(rng)
        axis, keepdims = _axis(rng, len(x_shape)), bool(rng.random() < 0.5)
        x = _distinct_values(rng, math.prod(x_shape)).reshape(x_shape) if distinct else _values(rng, x_shape)
        return Case(
            f"x {x_shape}, axis {axis}, keepdims {keepdims}",
            lambda x: fn(x, axis=axis, keepdims=keepdims),
            [_leaf(x)],
        )

    CATALOGUE.append(Entry(name, covers, draw))


_register_reduction("sum", Tensor.sum, (reduce.Sum,))
_register_reduction("mean", Tensor.mean, (reduce.Mean,))
_register_reduction("max", Tensor.max, (reduce.Max,), distinct=True)
_register_reduction("logsumexp", logsumexp, (reduce.LogSumExp,))


# Shape ops --------------------------------------------------------------------------------------------------

def _prime_factors(number: int) -> list[int]:
    factors, divisor = [], 2
    while number > 1:
        while number % divisor == 0:
            factors.append(divisor)
            number //= divisor
        divisor += 1
    return factors


@_entry("reshape", shape.Reshape)
def _draw_reshape(rng: np.random.Generator) -> Case:
    x_shape = _shape(rng)
    target = [1] * _side(rng, 1, 3)
    for factor in _prime_factors(math.prod(x_shape)):
        target[rng.integers(len(target))] *= factor
    if rng.random() < 0.5:
        target[rng.integers(len(target))] = -1
    target = tuple(target)
    return Case(f"x {x_shape} → {target}", lambda x: x.reshape(target), [_leaf(_values(rng, x_shape))])


@_entry("transpose", shape.Transpose)
def _draw_transpose(rng: np.random.Generator) -> Case:
    x_shape = _shape(rng, 1, 4, 3)
    axes = tuple(int(a) for a in rng.permutation(len(x_shape)))
    return Case(f"x {x_shape}, axes {axes}", lambda x: x.transpose(axes), [_leaf(_values(rng, x_shape))])


@_entry("broadcast_to", shape.BroadcastTo)
def _draw_broadcast_to(rng: np.random.Generator) -> Case:
    target = _shape(rng, 1, 3, 3)
    x_shape = _broadcastable_to(rng, target)
    return Case(f"x {x_shape} → {target}", lambda x: x.broadcast_to(target), [_leaf(_values(rng, x_shape))])


def _index_text(index) -> str:
    """An index as written between brackets: ``[1:, -2]``, ``[..., None, ::-1]``, ``[[0, 2, 2]]``."""

    def part_text(part) -> str:
        if isinstance(part, slice):
            bounds = ["" if bound is None else str(bound) for bound in (part.start, part.stop, part.step)]
            return ":".join(bounds if part.step is not None else bounds[:2])
        if part is Ellipsis:
            return "..."
        if isinstance(part, np.ndarray):
            return f"<bool mask {part.shape}>" if part.dtype == bool else str(part.tolist())
        return str(part)

    parts = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(map(part_text, parts)) + "]"


@_entry("getitem", shape.GetItem)
def _draw_getitem(rng: np.random.Generator) -> Case:
    rows, columns = _side(rng, 3, 5), _side(rng, 2, 4)
    repeated_rows = rng.integers(0, rows, size=_side(rng, 1, 5))  # repeats must add up in the backward
    mask = rng.random((rows, columns)) < 0.5
    mask.flat[rng.integers(mask.size)] = True
    index = [
        (slice(int(rng.integers(rows)), None, _side(rng, 1, 2)), int(rng.integers(-columns, columns))),
        (Ellipsis, None, slice(None, None, -1)),
        repeated_rows,
        (repeated_rows, slice(1, None)),
        mask,
    ][rng.integers(5)]
    x = _leaf(_values(rng, (rows, columns)))
    return Case(f"x {(rows, columns)}{_index_text(index)}", lambda x: x[index], [x])


@_entry("concatenate", shape.Concatenate)
def _draw_concatenate(rng: np.random.Generator) -> Case:
    base = list(_shape(rng, 1, 3, 3))
    axis = int(rng.integers(-len(base), len(base)))
    shapes = []
    for _ in range(_side(rng, 1, 3)):
        base[axis] = _side(rng)
        shapes.append(tuple(base))
    return Case(
        f"{', '.join(map(str, shapes))}, axis {axis}",
        lambda *xs: concatenate(xs, axis=axis),
        [_leaf(_values(rng, s)) for s in shapes],
    )


@_entry("stack", shape.Stack)
def _draw_stack(rng: np.random.Generator) -> Case:
    x_shape, count = _shape(rng, 0, 2, 3), _side(rng)
    axis = int(rng.integers(-len(x_shape) - 1, len(x_shape) + 1))
    return Case(
        f"{count} × {x_shape}, axis {axis}",
        lambda *xs: stack(xs, axis=axis),
        [_leaf(_values(rng, x_shape)) for _ in range(count)],
    )


@_entry("to_backend", ToBackend)
def _draw_to_backend(rng: np.random.Generator) -> Case:
    source = get_backend()
    target = "strict" if source == "numpy" else "numpy"
    x_shape = _shape(rng)
    return Case(f"x {x_shape}, {source} → {target}", lambda x: x.to(target), [_leaf(_values(rng, x_shape))])


# Matrix products -------------------------------------------------------------------------------------------

@_entry("matmul", matmul.MatMul)
def _draw_matmul(rng: np.random.Generator) -> Case:
    m, k, n = _side(rng, 1, 4), _side(rng, 1, 4), _side(rng, 1, 4)
    batch_a, batch_b = _broadcast_shapes(rng)
    a_shape, b_shape = [
        ((k,), (k,)),
        ((k,), (k, n)),
        ((m, k), (k,)),
        ((m, k), (k, n)),
        ((*batch_a, m, k), (*batch_b, k, n)),
        ((*batch_a, m, k), (k,)),
        ((k,), (*batch_b, k, n)),
    ][rng.integers(7)]
    inputs = [_leaf(_values(rng, a_shape)), _leaf(_values(rng, b_shape))]
    return Case(f"a {a_shape}, b {b_shape}", operator.matmul, inputs)


@_entry("linear", linear.Linear, F.linear)
def _draw_linear(rng: np.random.Generator) -> Case:
    x_shape = (*_shape(rng, 0, 2, 3), _side(rng, 1, 4))
    weight_shape = (_side(rng, 1, 4), x_shape[-1])
    inputs = [_leaf(_values(rng, x_shape)), _leaf(_values(rng, weight_shape))]
    if rng.random() < 0.7:
        inputs.append(_leaf(_values(rng, weight_shape[:1])))
    return Case(f"x {x_shape}, weight {weight_shape}, bias {len(inputs) == 3}", F.linear, inputs)


# Convolution and upsampling ------------------------------------------------------------------------------

def _conv2d_geometry(rng: np.random.Generator) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, input height and width), each a pair; the padded input holds the kernel."""
    kernel = (_side(rng), _side(rng))
    stride = (_side(rng, 1, 2), _side(rng, 1, 2))
    padding = (_side(rng, 0, 1), _side(rng, 0, 1))
    size = tuple(_side(rng, max(1, k - 2 * p), 5) for k, p in zip(kernel, padding))
    return kernel, stride, padding, size


def _conv_transpose2d_geometry(rng: np.random.Generator) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, output_padding, input height and width); the output is at least 1×1."""
    kernel = (_side(rng), _side(rng))
    stride = (_side(rng, 1, 2), _side(rng, 1, 2))
    output_padding = tuple(_side(rng, 0, s - 1) for s in stride)
    size = (_side(rng, 1, 4), _side(rng, 1, 4))
    padding = tuple(
        min(_side(rng, 0, 1), ((h - 1) * s + k + o - 1) // 2)
        for h, s, k, o in zip(size, stride, kernel, output_padding)
    )
    return kernel, stride, padding, output_padding, size


@_entry("conv2d", conv.Conv2d, F.conv2d)
def _draw_conv2d(rng: np.random.Generator) -> Case:
    kernel, stride, padding, size = _conv2d_geometry(rng)
    x_shape = (_side(rng, 1, 2), _side(rng), *size)
    weight_shape = (_side(rng), x_shape[1], *kernel)
    inputs = [_leaf(_values(rng, x_shape)), _leaf(_values(rng, weight_shape))]
    if rng.random() < 0.7:
        inputs.append(_leaf(_values(rng, weight_shape[:1])))
    stride, padding = _int_or_pair(stride), _int_or_pair(padding)
    return Case(
        f"x {x_shape}, weight {weight_shape}, bias {len(inputs) == 3}, stride {stride}, padding {padding}",
        lambda *operands: F.conv2d(*operands, stride=stride, padding=padding),
        inputs,
    )


@_entry("conv_transpose2d", conv.ConvTranspose2d, F.conv_transpose2d)
def _draw_conv_transpose2d(rng: np.random.Generator) -> Case:
    kernel, stride, padding, output_padding, size = _conv_transpose2d_geometry(rng)
    x_shape = (_side(rng, 1, 2), _side(rng), *size)
    weight_shape = (x_shape[1], _side(rng), *kernel)
    inputs = [_leaf(_values(rng, x_shape)), _leaf(_values(rng, weight_shape))]
    if rng.random() < 0.7:
        inputs.append(_leaf(_values(rng, weight_shape[1:2])))
    geometry = map(_int_or_pair, (stride, padding, output_padding))
    settings = dict(zip(("stride", "padding", "output_padding"), geometry))
    return Case(
        f"x {x_shape}, weight {weight_shape}, bias {len(inputs) == 3}, "
        + ", ".join(f"{name} {value}" for name, value in settings.items()),
        lambda *operands: F.conv_transpose2d(*operands, **settings),
        inputs,
    )


def _image_shape(rng: np.random.Generator) -> tuple[int, int, int, int]:
    return (_side(rng, 1, 2), _side(rng, 1, 2), _side(rng, 1, 3), _side(rng, 1, 3))


@_entry("upsample_nearest", conv.UpsampleNearest, F.upsample_nearest)
def _draw_upsample_nearest(rng: np.random.Generator) -> Case:
    x_shape, scale = _image_shape(rng), _int_or_pair((_side(rng), _side(rng)))
    return Case(
        f"x {x_shape}, scale_factor {scale}",
        lambda x: F.upsample_nearest(x, scale),
        [_leaf(_values(rng, x_shape))],
    )


# Losses -----------------------------------------------------------------------------------------------------

def _register_loss(name: str, fn: Callable, covers: tuple, draw_input: Callable, draw_target: Callable,
                   operands: str = "input and target") -> None:
    """A loss of two tensors of one shape, both differentiated, with a random reduction."""

    def draw(rng: np.random.Generator) -> Case:
        x_shape, reduction = _shape(rng, 1, 3), _reduction(rng)
        return Case(
            f"{operands} {x_shape}, reduction {reduction}",
            lambda x, t: fn(x, t, reduction=reduction),
            [_leaf(draw_input(rng, x_shape)), _leaf(draw_target(rng, x_shape))],
        )

    CATALOGUE.append(Entry(name, covers, draw))


def _probabilities(rng: np.random.Generator, shape) -> np.ndarray:
    """Values inside [0, 1] by more than EPS (the losses refuse anything outside)."""
    return _values(rng, shape, 0.05, 0.95)


_register_loss("mse_loss", F.mse_loss, (loss.MSELoss, F.mse_loss), _values, _values)
_register_loss(
    "binary_cross_entropy", F.binary_cross_entropy, (loss.BinaryCrossEntropy, F.binary_cross_entropy),
    _probabilities, _probabilities,
)
_register_loss(
    "binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
    (loss.BinaryCrossEntropyWithLogits, F.binary_cross_entropy_with_logits), _values, _probabilities,
)
_register_loss(
    "gaussian_kl", F.gaussian_kl, (loss.GaussianKL, F.gaussian_kl), _values, _values, "mu and logvar",
)


@_entry("l1_penalty", loss.L1Penalty, F.l1_penalty)
def _draw_l1_penalty(rng: np.random.Generator) -> Case:
    code_shape, reduction = _shape(rng, 1, 3), _reduction(rng)
    return Case(
        f"code {code_shape}, reduction {reduction}",
        lambda code: F.l1_penalty(code, reduction),
        [_leaf(_values(rng, code_shape, avoid=(0.0,)))],
    )


@_entry("kl_sparsity", loss.KLSparsity, F.kl_sparsity)
def _draw_kl_sparsity(rng: np.random.Generator) -> Case:
    rho, rho_hat_shape = _setting(rng, 0.02, 0.3), _shape(rng, 1, 2)
    return Case(
        f"rho {rho}, rho_hat {rho_hat_shape}",
        lambda rho_hat: F.kl_sparsity(rho, rho_hat),
        [_leaf(_probabilities(rng, rho_hat_shape))],
    )


# Random ops -------------------------------------------------------------------------------------------------

@_entry("reparameterize", sampling.Reparameterize, F.reparameterize)
def _draw_reparameterize(rng: np.random.Generator) -> Case:
    z_shape = _shape(rng, 1, 3)
    eps = _constant(rng.standard_normal(z_shape))
    return Case(
        f"mu, logvar and eps {z_shape}",
        lambda mu, logvar: F.reparameterize(mu, logvar, eps=eps),
        [_leaf(_values(rng, z_shape)), _leaf(_values(rng, z_shape))],
    )


@_entry("dropout", sampling.Dropout, F.dropout)
def _draw_dropout(rng: np.random.Generator) -> Case:
    p, x_shape, mask_seed = _setting(rng, 0.1, 0.8), _shape(rng, 1, 3), int(rng.integers(1000))
    return Case(
        f"x {x_shape}, p {p}, mask seed {mask_seed}",
        _with_fixed_mask(lambda x: F.dropout(x, p, training=True), mask_seed),
        [_leaf(_values(rng, x_shape))],
    )


# nn layers --------------------------------------------------------------------------------------------------

def _call_with_parameters(module: nn.Module, parameters: dict[str, Tensor], *args, method: str = "__call__"):
    """``module(*args)`` (or ``module.method(*args)``) with its parameters replaced, for this call, by the
    given tensors (by dotted name).

    gradcheck differentiates its own float64 copies of the inputs, so the module must compute with those
    (the idea of ``torch.func.functional_call``). The attributes are swapped past ``Module.__setattr__``,
    which accepts only Parameters, and the module's own Parameters are put back afterwards.
    """
    owners = dict(module.named_modules())
    swapped = []
    try:
        for name, value in parameters.items():
            owner_name, _, attribute = name.rpartition(".")
            owner = owners[owner_name]
            swapped.append((owner, attribute, getattr(owner, attribute)))
            object.__setattr__(owner, attribute, value)
        return getattr(module, method)(*args)
    finally:
        for owner, attribute, parameter in reversed(swapped):
            object.__setattr__(owner, attribute, parameter)


def _layer_case(rng: np.random.Generator, module: nn.Module, x_shape, settings: str, low: float = -2.0,
                high: float = 2.0, avoid=()) -> Case:
    """``module`` checked in its input and every parameter (redrawn uniform in [−1, 1])."""
    names = [name for name, _ in module.named_parameters()]
    parameters = [_leaf(_values(rng, parameter.shape, -1.0, 1.0)) for parameter in module.parameters()]

    def fn(x, *values):
        return _call_with_parameters(module, dict(zip(names, values)), x)

    described = f"x {tuple(x_shape)}" + (f", {settings}" if settings else "")
    return Case(described, fn, [_leaf(_values(rng, x_shape, low, high, avoid)), *parameters])


@_entry("nn.Linear", nn.Linear)
def _draw_linear_layer(rng: np.random.Generator) -> Case:
    in_features, out_features, bias = _side(rng, 1, 4), _side(rng, 1, 4), bool(rng.random() < 0.7)
    x_shape = (*_shape(rng, 0, 2, 3), in_features)
    layer = nn.Linear(in_features, out_features, bias=bias)
    return _layer_case(rng, layer, x_shape, f"Linear({in_features}, {out_features}, bias={bias})")


@_entry("nn.Conv2d", nn.Conv2d)
def _draw_conv2d_layer(rng: np.random.Generator) -> Case:
    kernel, stride, padding, size = _conv2d_geometry(rng)
    in_channels, out_channels, bias = _side(rng), _side(rng), bool(rng.random() < 0.7)
    stride, padding = _int_or_pair(stride), _int_or_pair(padding)
    layer = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias)
    return _layer_case(rng, layer, (_side(rng, 1, 2), in_channels, *size), repr(layer))


@_entry("nn.ConvTranspose2d", nn.ConvTranspose2d)
def _draw_conv_transpose2d_layer(rng: np.random.Generator) -> Case:
    kernel, stride, padding, output_padding, size = _conv_transpose2d_geometry(rng)
    in_channels, out_channels, bias = _side(rng), _side(rng), bool(rng.random() < 0.7)
    stride, padding, output_padding = map(_int_or_pair, (stride, padding, output_padding))
    layer = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, padding, output_padding, bias)
    return _layer_case(rng, layer, (_side(rng, 1, 2), in_channels, *size), repr(layer))


@_entry("nn.Upsample", nn.Upsample)
def _draw_upsample_layer(rng: np.random.Generator) -> Case:
    layer = nn.Upsample(_int_or_pair((_side(rng), _side(rng))))
    return _layer_case(rng, layer, _image_shape(rng), repr(layer))


@_entry("nn.ReLU", nn.ReLU)
def _draw_relu_layer(rng: np.random.Generator) -> Case:
    return _layer_case(rng, nn.ReLU(), _shape(rng), "", avoid=(0.0,))


@_entry("nn.LeakyReLU", nn.LeakyReLU)
def _draw_leaky_relu_layer(rng: np.random.Generator) -> Case:
    layer = nn.LeakyReLU(_setting(rng, 0.01, 0.5))
    return _layer_case(rng, layer, _shape(rng), repr(layer), avoid=(0.0,))


@_entry("nn.Sigmoid", nn.Sigmoid)
def _draw_sigmoid_layer(rng: np.random.Generator) -> Case:
    return _layer_case(rng, nn.Sigmoid(), _shape(rng), "", -4.0, 4.0)


@_entry("nn.Tanh", nn.Tanh)
def _draw_tanh_layer(rng: np.random.Generator) -> Case:
    return _layer_case(rng, nn.Tanh(), _shape(rng), "", -3.0, 3.0)


@_entry("nn.Softplus", nn.Softplus)
def _draw_softplus_layer(rng: np.random.Generator) -> Case:
    beta, threshold = _softplus_settings(rng)
    layer = nn.Softplus(beta, threshold)
    return _layer_case(rng, layer, _shape(rng), repr(layer), -3.0, 3.0, avoid=(threshold / beta,))


@_entry("nn.Flatten", nn.Flatten)
def _draw_flatten_layer(rng: np.random.Generator) -> Case:
    x_shape = _shape(rng, 2, 4, 3)
    start = int(rng.integers(len(x_shape)))
    end = int(rng.integers(start, len(x_shape)))
    if rng.random() < 0.5:
        end -= len(x_shape)  # the negative spelling
    layer = nn.Flatten(start, end)
    return _layer_case(rng, layer, x_shape, repr(layer))


@_entry("nn.Unflatten", nn.Unflatten)
def _draw_unflatten_layer(rng: np.random.Generator) -> Case:
    unflattened, lead, trail = _shape(rng, 1, 3, 3), _shape(rng, 0, 2, 3), _shape(rng, 0, 1, 3)
    dim = len(lead) if rng.random() < 0.5 else -len(trail) - 1  # the same axis, counted from the end
    layer = nn.Unflatten(dim, unflattened)
    return _layer_case(rng, layer, (*lead, math.prod(unflattened), *trail), repr(layer))


@_entry("nn.Dropout", nn.Dropout)
def _draw_dropout_layer(rng: np.random.Generator) -> Case:
    layer, mask_seed = nn.Dropout(_setting(rng, 0.1, 0.8)), int(rng.integers(1000))
    case = _layer_case(rng, layer.train(), _shape(rng, 1, 3), f"{layer!r}, training, mask seed {mask_seed}")
    return case._replace(fn=_with_fixed_mask(case.fn, mask_seed))


@_entry("nn.Sequential", nn.Sequential)
def _draw_sequential(rng: np.random.Generator) -> Case:
    """A small conv encoder: Conv2d (stride 2), a smooth activation, Flatten, Linear."""
    in_channels, hidden_channels, size = _side(rng, 1, 2), _side(rng), _side(rng, 3, 5)
    activation_layer = [nn.Tanh, nn.Sigmoid, nn.Softplus][rng.integers(3)]
    side = (size - 1) // 2 + 1  # the convolution's output side
    features, out_features = hidden_channels * side * side, _side(rng)
    model = nn.Sequential(
        nn.Conv2d(in_channels, hidden_channels, 3, stride=2, padding=1),
        activation_layer(),
        nn.Flatten(),
        nn.Linear(features, out_features),
    )
    layers = (f"Conv2d({in_channels}, {hidden_channels}, 3, stride=2, padding=1), "
              f"{activation_layer.__name__}(), Flatten(), Linear({features}, {out_features})")
    return _layer_case(rng, model, (_side(rng, 1, 2), in_channels, size, size), f"Sequential({layers})")


# Running the checks -----------------------------------------------------------------------------------------

def _max_errors(measured: list[tuple]) -> tuple[float, float]:
    """The largest |analytic − numeric|, and the largest of it relative to max(|numeric|, ATOL): a floor, so
    that gradients which are 0 up to rounding do not divide noise by noise. A NaN anywhere gives NaN."""
    abs_errors = [np.abs(analytic - numeric) for _, _, analytic, numeric in measured]
    rel_errors = [error / np.maximum(np.abs(m[3]), ATOL) for error, m in zip(abs_errors, measured)]
    return tuple(float(np.max([np.max(e, initial=0.0) for e in errors], initial=0.0))
                 for errors in (abs_errors, rel_errors))


def _check(entry: Entry, rng: np.random.Generator) -> Result:
    """Draw one case of ``entry`` and check it; any exception makes a failed row carrying its message."""
    settings = "(not drawn)"
    try:
        case = entry.draw(rng)
        settings = case.settings
        seed = int(rng.integers(2**31))
        def measure() -> list:
            if case.directional:
                return directional_gradients(case.fn, case.inputs, EPS, seed=seed)
            return gradients(case.fn, case.inputs, EPS, seed=seed)

        measured = case.runner(measure) if case.runner else measure()
    except GradcheckError as error:
        return Result(entry.name, settings, None, None, False, str(error))
    except Exception as error:  # noqa: BLE001 - a broken op or draw is a failed row, not a crash of the run
        return Result(entry.name, settings, None, None, False, f"{type(error).__name__}: {error}")
    max_abs, max_rel = _max_errors(measured)
    try:
        for position, x_shape, analytic, numeric in measured:
            compare(position, x_shape, analytic, numeric, ATOL, RTOL)
    except GradcheckError as error:
        return Result(entry.name, settings, max_abs, max_rel, False, str(error))
    return Result(entry.name, settings, max_abs, max_rel, True)


def select(only: str | None = None) -> list[Entry]:
    """The entries whose name contains ``only`` (case-insensitive), all when None; ValueError if none does."""
    if only is None:
        return list(CATALOGUE)
    chosen = [entry for entry in CATALOGUE if only.lower() in entry.name.lower()]
    if not chosen:
        names = ", ".join(entry.name for entry in CATALOGUE)
        raise ValueError(f"no gradient check matches {only!r}; the checks are: {names}")
    return chosen


def run(backend: str = "numpy", only: str | None = None, seed: int = 0,
        repeats: int = DEFAULT_REPEATS) -> list[Result]:
    """Check the selected entries (see ``select``) ``repeats`` times each, in float64 on ``backend``.

    Each entry draws from its own generator, seeded by ``seed`` and its name. The active backend and default
    dtype are restored afterwards; tinyae's random generators are reseeded (dropout's fixed masks).
    """
    entries = select(only)
    previous_backend, previous_dtype = get_backend(), get_default_dtype()
    set_backend(backend)
    set_default_dtype("float64")
    try:
        results = []
        for entry in entries:
            rng = np.random.default_rng([seed, zlib.crc32(entry.name.encode())])
            draws = repeats if entry.max_draws is None else min(repeats, entry.max_draws)
            results.extend(_check(entry, rng) for _ in range(draws))
        return results
    finally:
        set_backend(previous_backend)
        set_default_dtype(previous_dtype)


# The table and the command ----------------------------------------------------------------------------------

COLUMNS = ("check", "shapes and settings", "max abs error", "max rel error", "result")


def _error_text(error: float | None) -> str:
    return "n/a" if error is None else f"{error:.1e}"


def format_table(rows: Sequence[Result]) -> str:
    """A Markdown table of the results, the message of each failure, and the summary line."""
    cells = [
        (row.name, row.settings, _error_text(row.max_abs_error), _error_text(row.max_rel_error),
         "pass" if row.passed else "FAIL")
        for row in rows
    ]
    widths = [max(map(len, column)) for column in zip(COLUMNS, *cells)]
    numeric = (False, False, True, True, False)

    def line(values) -> str:
        padded = (value.rjust(width) if right else value.ljust(width)
                  for value, width, right in zip(values, widths, numeric))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (width + 1) + (":" if right else "-")
                          for width, right in zip(widths, numeric)) + "|"
    lines = [line(COLUMNS), rule, *map(line, cells)]
    failures = [row for row in rows if not row.passed]
    if failures:
        lines += ["", "Failures:", *(f"- {row.name} ({row.settings}): {row.message}" for row in failures)]
    checks = f"{len(rows)} check{'' if len(rows) == 1 else 's'}"
    lines += ["", f"{checks}, {len(rows) - len(failures)} passed, {len(failures)} failed"]
    return "\n".join(lines)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


DESCRIPTION = ("finite-difference gradient checks (float64) of every op, layer and loss on random shapes, "
               "of the tutorial models' losses, and of the fused kernels' compiled bodies")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tinyae gradcheck``."""
    parser.add_argument("--backend", choices=BACKENDS, default="numpy",
                        help="where the checks run (default numpy; cupy needs a GPU)")
    parser.add_argument("--only", metavar="NAME", help="only the checks whose name contains NAME (any case)")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="seed of the random shapes, settings and values (default 0)")
    parser.add_argument("--repeats", type=_positive_int, default=DEFAULT_REPEATS,
                        help=f"random draws per check (default {DEFAULT_REPEATS}; the model and kernel "
                        "checks draw at most a few times)")


def command(args: argparse.Namespace) -> int:
    """Run the checks the parsed options ask for and print the table. Exit status: 0 when every check
    passes, 1 when one fails, 2 when they cannot run (no check matches --only, the backend is unavailable)."""
    try:
        rows = run(args.backend, args.only, args.seed, args.repeats)
    except (ValueError, RuntimeError) as error:
        print(f"tinyae gradcheck: error: {error}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0 if all(row.passed for row in rows) else 1


def main(argv: list[str] | None = None) -> int:
    """``tinyae gradcheck [--backend numpy|cupy|strict] [--only NAME] [--seed S] [--repeats R]``."""
    parser = argparse.ArgumentParser(prog="tinyae gradcheck", description=DESCRIPTION)
    add_arguments(parser)
    return command(parser.parse_args(argv))


from . import catalog_kernels, catalog_models  # noqa: E402, F401 (they register their entries)

if __name__ == "__main__":  # (run as a script, this is not the module the other entries registered in)
    from tinyae.testing import catalog

    sys.exit(catalog.main())

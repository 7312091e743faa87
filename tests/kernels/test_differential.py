"""Differential tests of every fused kernel: its compiled C loop (``kernel.cpu_loop``), its NumPy twin, the
strict path and the textbook formula written out below agree as ``tinyae.kernels``' docstring says (the
contract), whatever the size (0, 1, around ``min_compiled_size``), the dtype, the layout of each argument (C,
Fortran, transposed, rolled axes, step-sliced, broadcast, negative strides, misaligned, 0-d, NumPy and Python
scalars; each argument its own), outputs passed in (aliasing inputs too), ``foreach`` over lists and flat
arrays, and special values; and every path warns or raises alike under every ``np.errstate``.

Hypothesis draws the structure of a call (kernel, dtype, shape, layouts, outputs) and a seed; the seed draws
the values, with special values (±0, ±inf, NaN, huge, tiny, subnormal) sprinkled where the op's domain has
them, and the scalars.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyae as ta
from tinyae import functional as F
from tinyae import kernels
from tinyae.backend.strict import StrictArray
from tests.conftest import BACKEND, to_numpy

KERNELS = kernels.all_kernels()
NAMES = sorted(KERNELS)
MATH_NAMES = [name for name in NAMES if KERNELS[name].cpu_loop.math_calls]  # the bodies calling exp or log
DTYPES = (np.float32, np.float64)
numpy_only = pytest.mark.skipif(BACKEND != "numpy", reason="the compiled loop is backend-independent: "
                                                           "tested once, in the numpy run")


# The textbook formulas, as the ops' docstrings read ---------------------------------------------------------
#
# Each is evaluated in a wider precision (float64 for float32 inputs, the 80-bit long double for float64 ones)
# for the reference value, and at the same time, through ``Rounded``, bounds the error of evaluating it in the
# inputs' dtype (a first-order running error analysis): each operation correctly rounded, off by half an ulp
# of its result; each exp, expm1, log1p off by 4 ulp (NumPy's accuracy tests allow at most 4 ulp in float32
# and float64; glibc documents libmvec within 4 ulp). An ulp is at most eps·|value|, or the subnormal step.

class Rounded:
    """A value of a formula (computed in a wider precision) and a bound on the error of the same formula
    computed in ``dtype``, every operation rounded."""

    __array_ufunc__ = None  # (NumPy arrays on the left defer to the reflected operators below)

    def __init__(self, value, error, dtype):
        self.value, self.error, self.dtype = value, error, np.dtype(dtype)

    def rounded(self, value, error, ulps=0.5) -> Rounded:
        """``value``, carrying ``error`` from its operands, plus its own rounding (``ulps``)."""
        info = np.finfo(self.dtype)
        return Rounded(value, error + ulps * (info.eps * abs(value) + info.smallest_subnormal), self.dtype)

    def _lift(self, other) -> Rounded:
        return other if isinstance(other, Rounded) else Rounded(other, 0 * self.value, self.dtype)

    def __add__(self, other):
        other = self._lift(other)
        return self.rounded(self.value + other.value, self.error + other.error)

    def __sub__(self, other):
        other = self._lift(other)
        return self.rounded(self.value - other.value, self.error + other.error)

    def __mul__(self, other):
        other = self._lift(other)
        return self.rounded(self.value * other.value, abs(other.value) * self.error
                            + abs(self.value) * other.error + self.error * other.error)

    def __truediv__(self, other):
        other = self._lift(other)
        value = self.value / other.value
        return self.rounded(value, (self.error + abs(value) * other.error) / abs(other.value))

    __radd__, __rmul__ = __add__, __mul__

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def __neg__(self):
        return Rounded(-self.value, self.error, self.dtype)

    def __abs__(self):
        return Rounded(abs(self.value), self.error, self.dtype)


def _library(function, derivative, ulps=4):
    """A library function of a Rounded value: the operand's error through the derivative, plus ``ulps``."""
    def apply(x: Rounded) -> Rounded:
        value = function(x.value)
        return x.rounded(value, abs(derivative(x.value, value)) * x.error, ulps)
    return apply


exp = _library(np.exp, lambda x, y: y)
expm1 = _library(np.expm1, lambda x, y: y + 1)
log1p = _library(np.log1p, lambda x, y: 1 / (1 + x))
sqrt = _library(np.sqrt, lambda x, y: 0.5 / np.where(y > 0, y, np.inf), ulps=0.5)  # correctly rounded


def maximum(x: Rounded, floor) -> Rounded:
    return Rounded(np.maximum(x.value, floor), x.error, x.dtype)


def where(condition, a, b) -> Rounded:
    """a where condition, else b (a select: no arithmetic, so inf·0 never happens)."""
    dtype = (a if isinstance(a, Rounded) else b).dtype
    a, b = (v if isinstance(v, Rounded) else Rounded(v, 0, dtype) for v in (a, b))
    return Rounded(np.where(condition, a.value, b.value), np.where(condition, a.error, b.error), dtype)


def sigmoid(x):
    return 1 / (1 + exp(-x))


def adam(grad, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps, weight_decay,
         decoupled_decay, param, exp_avg, exp_avg_sq):
    """adam.py's docstring, with the kernel's scalars (γλ and λ where used, else 1 and 0):
    θ ← θ(1 − γλ); g ← g + λθ; m ← m + (1 − β₁)(g − m); v ← β₂v + (1 − β₂)g²;
    θ ← θ − (γ/(1 − β₁ᵗ))·m/(√v/√(1 − β₂ᵗ) + ε)."""
    param = param * decoupled_decay
    g = grad + weight_decay * param if weight_decay.value != 0 else grad
    m = exp_avg + one_minus_beta1 * (g - exp_avg)
    v = beta2 * exp_avg_sq + one_minus_beta2 * g * g
    return param - step_size * m / (sqrt(v) / bias_correction2_sqrt + eps), m, v


TEXTBOOK: dict[str, Callable] = {  # kernel → (its inputs, as Rounded) → its outputs
    "relu_forward": lambda x: (maximum(x, 0),),
    "relu_backward": lambda grad, out: (where(out.value > 0, grad, 0),),  # ∂L/∂y · [y > 0]
    "leaky_relu_backward": lambda grad, positive, slope: (where(positive.value, grad, grad * slope),),
    "sigmoid_backward": lambda grad, out: (grad * (out * (1 - out)),),  # ∂L/∂y · y(1 − y)
    "tanh_backward": lambda grad, out: (grad * (1 - out * out),),  # ∂L/∂y · (1 − y²)
    "softplus_backward": lambda grad, e, linear: (where(linear.value, grad, grad * (e / (e + 1))),),
    "bce_with_logits": lambda x, t: (maximum(x, 0) - x * t + log1p(exp(-abs(x))), sigmoid(x) - t),
    "gaussian_kl_terms": lambda mu, lv: (0.5 * (mu * mu + exp(lv) - lv - 1), 0.5 * (exp(lv) - 1)),
    "reparameterize_terms": lambda mu, lv, eps: (mu + exp(lv / 2) * eps, 0.5 * exp(lv / 2) * eps),
    "adam_update": adam,
}


def textbook(name: str, values: list, dtype) -> list[Rounded]:
    """The outputs of kernel ``name`` by its textbook formula, from the values it reads (scalars rounded to
    ``dtype``, as the kernel takes them)."""
    wide = np.float64 if np.dtype(dtype) == np.float32 else np.longdouble

    def exact(value):
        value = np.asarray(value)
        return Rounded(value if value.dtype == bool else value.astype(dtype).astype(wide), 0.0, dtype)

    with np.errstate(all="ignore"):
        return list(TEXTBOOK[name](*map(exact, values)))


# What each input holds ------------------------------------------------------------------------------------

class Domain(NamedTuple):
    """One input of a kernel: its ordinary values, the special values the op may give it, and the largest
    magnitude at which nothing overflows inside the formula (for the comparison with the textbook)."""
    draw: Callable  # (rng, shape) → float64 (or bool) values
    specials: tuple[str, ...]
    cap: Callable = lambda info: info.max / 8


def _normal(rng, shape):  # magnitudes from 2⁻⁸ to 2⁸
    return rng.standard_normal(shape) * 2.0 ** rng.integers(-8, 9, shape)


def _sqrt_range(info):  # x² stays finite
    return 2.0 ** (info.maxexp // 2 - 2)


def _log_range(info):  # e^x stays far from overflow
    return 0.6 * np.log(info.max)


REAL = Domain(_normal, ("0", "-0", "inf", "-inf", "nan", "huge", "-huge", "tiny", "subnormal", "-subnormal"))
UNIT = Domain(lambda rng, shape: rng.random(shape), ("0", "1", "below_one", "nan", "tiny", "subnormal"))
SIGNED_UNIT = Domain(lambda rng, shape: rng.uniform(-1, 1, shape), ("0", "-0", "1", "-1", "nan", "subnormal"))
NONNEGATIVE = Domain(lambda rng, shape: np.abs(_normal(rng, shape)),
                     ("0", "inf", "nan", "huge", "tiny", "subnormal"))
EXP_SCALED = Domain(lambda rng, shape: np.exp(np.minimum(4 * rng.standard_normal(shape), 20.0)),  # softplus'
                    ("0", "nan", "tiny", "subnormal", "e20"), cap=lambda info: np.exp(20.0))  # e^min(βx, 20)
BOOL = Domain(lambda rng, shape: rng.random(shape) < 0.5, ())
MODERATE = REAL._replace(cap=lambda info: 2.0 ** (info.maxexp // 4))  # Adam's: m/ε stays finite

INPUTS: dict[str, tuple] = {  # kernel → the domain of each input (None: a scalar, drawn by ``scalars``)
    "relu_forward": (REAL,),
    "relu_backward": (REAL, REAL),
    "leaky_relu_backward": (REAL, BOOL, None),
    "sigmoid_backward": (REAL, UNIT),
    "tanh_backward": (REAL, SIGNED_UNIT),
    "softplus_backward": (REAL, EXP_SCALED, BOOL),
    "bce_with_logits": (REAL, UNIT),
    "gaussian_kl_terms": (REAL._replace(cap=_sqrt_range), REAL._replace(cap=_log_range)),
    "reparameterize_terms": (REAL, REAL._replace(cap=_log_range), REAL._replace(cap=_sqrt_range)),
    "adam_update": (MODERATE,) + (None,) * 8 + (MODERATE, MODERATE, NONNEGATIVE._replace(cap=_sqrt_range)),
}


def scalars(name: str, rng) -> list:
    """The scalar arguments of a call: leaky_relu's slope, or what Adam._fused_step gives adam_update for
    some hyperparameters."""
    if name != "adam_update":
        return [rng.choice([0.01, 0.2, -0.5, 1.0, 0.0])]
    lr, eps = rng.choice([1e-3, 0.1]), rng.choice([1e-8, 1e-3])
    beta1, beta2 = rng.choice([0.9, 0.6]), rng.choice([0.999, 0.9])
    step, weight_decay, decoupled = rng.choice([1, 7, 1000]), rng.choice([0.0, 0.01]), rng.random() < 0.5
    return [1.0 - beta1, beta2, 1.0 - beta2, lr / (1.0 - beta1**step), (1.0 - beta2**step) ** 0.5, eps,
            0.0 if decoupled else weight_decay, 1.0 - lr * weight_decay if decoupled else 1.0]


def special_value(name: str, dtype, cap: float) -> float:
    info = np.finfo(dtype)
    return {"0": 0.0, "-0": -0.0, "inf": np.inf, "-inf": -np.inf, "nan": np.nan, "1": 1.0, "-1": -1.0,
            "huge": float(info.max), "-huge": -float(info.max), "tiny": float(info.smallest_normal),
            "subnormal": 3 * float(info.smallest_subnormal),
            "-subnormal": -3 * float(info.smallest_subnormal),
            "below_one": 1 - float(info.epsneg), "e20": float(dtype(np.exp(20.0))),
            "cap": cap, "-cap": -cap}[name]


FINITE = {"inf": "cap", "-inf": "-cap", "huge": "cap", "-huge": "-cap", "nan": None}  # for ``finite`` draws


def draw_values(domain: Domain, shape, dtype, rng, finite: bool) -> np.ndarray:
    """Ordinary values of the domain in ``dtype``, about half its special values each at about 1/12 of the
    places; ``finite``: every magnitude within the domain's cap."""
    values = np.asarray(domain.draw(rng, shape))
    if values.dtype == bool:
        return values
    cap = float(domain.cap(np.finfo(dtype)))
    if finite:
        values = np.clip(values, -cap, cap)
    for name in domain.specials:
        name = FINITE.get(name, name) if finite else name
        if name is not None and rng.random() < 0.5:
            values = np.where(rng.random(shape) < 1 / 12, special_value(name, dtype, cap), values)
    return np.asarray(values, dtype)


# Layouts ----------------------------------------------------------------------------------------------------

DENSE = ("C", "F", "T", "rolled")  # memory without gaps, walked in some axis order: the compiled loop's
WRITABLE = DENSE + ("step", "negative", "misaligned")
SCALAR_LAYOUTS = ("numpy_scalar", "python_scalar", "0d")  # an array argument as a scalar: broadcast
LAYOUTS = WRITABLE + ("broadcast",) + SCALAR_LAYOUTS


def build(values: np.ndarray, layout: str) -> np.ndarray:
    """A new array holding ``values`` in ``layout``: C order; Fortran; transposed (C memory of the reversed
    shape, seen through .T); rolled (C memory with the first axis last, as the convolutions' (N, C, H, W)
    views of (C, H, W, N) memory); every other element of a wider buffer; negative strides; broadcast
    (stride 0 along the first axis: every row holds the first one's values); one byte off alignment; or, for
    the kernel to broadcast, the first value as a NumPy scalar (what NumPy makes of 0-d results), a Python
    scalar or a 0-d array."""
    ndim = values.ndim
    if layout in SCALAR_LAYOUTS:
        first = values.reshape(-1)[:1] if values.size else np.zeros(1, values.dtype)
        return {"numpy_scalar": first[0], "python_scalar": first[0].item(), "0d": first.reshape(())}[layout]
    if layout == "F" and ndim:
        return np.array(values, order="F")
    if layout == "T":
        return np.array(values.T, order="C").T
    if layout == "rolled" and ndim:
        axes = (ndim - 1,) + tuple(range(ndim - 1))
        return np.array(values.transpose(np.argsort(axes)), order="C").transpose(axes)
    if layout == "step" and ndim:
        wide = np.zeros(values.shape[:-1] + (2 * values.shape[-1],), values.dtype)
        wide[..., ::2] = values
        return wide[..., ::2]
    if layout == "negative" and ndim:
        flip = (slice(None, None, -1),) * ndim
        return np.array(values[flip], order="C")[flip]
    if layout == "broadcast" and ndim and values.shape[0]:
        return np.broadcast_to(values[:1], values.shape)
    if layout == "misaligned" and values.dtype != bool:
        buffer = np.zeros(values.nbytes + 1, np.uint8)[1:].view(values.dtype).reshape(values.shape)
        buffer[...] = values
        return buffer
    return np.array(values, order="C")


# A call: each argument's values and layout ------------------------------------------------------------------

SMALL_SHAPES = [(), (0,), (2, 0), (1,), (7,), (3, 5), (2, 3, 5)]
THRESHOLD_SHAPES = [(33, 31), (32, 1, 32), (41, 25), (1031,), (3, 7, 49)]  # 1023, 1024, 1025, 1031, 1029
SCALAR_KINDS = (float, np.float64, np.float32)  # a Python float, or a NumPy scalar of either dtype


class Call(NamedTuple):
    name: str
    dtype: type
    values: list  # one per argument: an array's values (C order), or a scalar
    layouts: list  # one per argument: the array's layout, None for a scalar

    @property
    def kernel(self) -> kernels.Kernel:
        return KERNELS[self.name]

    @property
    def outputs_given(self) -> bool:
        return len(self.values) > len(self.kernel.inputs)

    def arguments(self) -> list:
        """The arguments, each array built anew in its layout (every path gets its own outputs)."""
        return [v if layout is None else build(v, layout) for v, layout in zip(self.values, self.layouts)]

    def read(self) -> list:
        """What the kernel reads: its inputs' values (a broadcast one's as broadcast), and the outputs an
        in-place kernel updates."""
        count = len(self.values) if self.kernel.in_place else len(self.kernel.inputs)
        return [v if layout is None else np.array(np.broadcast_to(build(v, layout), np.shape(v)))
                for v, layout in zip(self.values[:count], self.layouts)]


@st.composite
def calls(draw, name: str, shapes=SMALL_SHAPES + THRESHOLD_SHAPES, layouts=LAYOUTS, output_layouts=WRITABLE,
          outputs=None, finite=False, dtype=None) -> Call:
    """A call of kernel ``name``: dtype, shape and each argument's layout drawn; values (with special
    values; ``finite`` ones only if so) and scalars from a drawn seed; outputs passed in if ``outputs`` (or
    Hypothesis) says so, always for an in-place kernel."""
    kernel = KERNELS[name]
    dtype = dtype or draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from(shapes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    with_outputs = kernel.in_place or (draw(st.booleans()) if outputs is None else outputs)
    domains = INPUTS[name] + ((REAL,) * len(kernel.outputs) if with_outputs and not kernel.in_place else ())
    scalar_values = scalars(name, rng)
    values, chosen = [], []
    for index, domain in enumerate(domains):
        if domain is None:
            values.append(SCALAR_KINDS[rng.integers(len(SCALAR_KINDS))](scalar_values.pop(0)))
            chosen.append(None)
        else:
            values.append(draw_values(domain, shape, dtype, rng, finite))
            allowed = output_layouts if index >= len(kernel.inputs) else layouts
            if index == 0:  # first, a NumPy scalar is a 0-d array (0-d values only); a Python one is refused
                refused = ("python_scalar",) + (("numpy_scalar", "0d") if shape else ())
                allowed = [layout for layout in allowed if layout not in refused]
            chosen.append(draw(st.sampled_from(allowed)))
    return Call(name, dtype, values, chosen)


# The paths --------------------------------------------------------------------------------------------------

def outputs_of(call: Call, arguments: list, result) -> tuple:
    """A call's outputs as NumPy arrays: those passed in (updated), else those returned."""
    if call.outputs_given:
        result = arguments[len(call.kernel.inputs):]
    result = result if isinstance(result, (tuple, list)) else (result,)
    return tuple(np.array(r._array if isinstance(r, StrictArray) else r) for r in result)


def run_twin(call: Call) -> tuple:
    """The twin as the kernel runs it: its scalars cast to their parameters' dtypes and its outputs at the
    call's shape (as CuPy casts and broadcasts); an in-place twin updates the outputs passed in."""
    declared = call.kernel.inputs + call.kernel.outputs
    arguments = [value if type(value) is np.ndarray else
                 (np.bool_ if type_name == "bool" else call.dtype)(value)
                 for (type_name, _), value in zip(declared, call.arguments())]
    if call.kernel.in_place:
        return outputs_of(call, arguments, call.kernel.twin(*arguments))
    computed = call.kernel.twin(*arguments[:len(call.kernel.inputs)])
    return tuple(np.array(np.broadcast_to(r, np.shape(call.values[0])))
                 for r in (computed if isinstance(computed, tuple) else (computed,)))


def run_compiled(call: Call, outputs: bool = True):
    """The compiled loop's outputs (those passed in, updated; or, if not ``outputs``, fresh ones), or
    NotImplemented where it refuses the arguments."""
    if not outputs:
        call = call._replace(values=call.values[:len(call.kernel.inputs)])
    arguments = call.arguments()
    result = call.kernel.cpu_loop(*arguments)
    return result if result is NotImplemented else outputs_of(call, arguments, result)


def run_strict(call: Call) -> tuple:
    """The kernel called with strict arrays (a NumPy scalar, as CuPy takes it, is a scalar argument)."""
    arguments = [StrictArray(np.asarray(a)) if isinstance(a, np.ndarray) or index == 0 else a
                 for index, a in enumerate(call.arguments())]
    return outputs_of(call, arguments, kernels.strict_call(call.kernel, tuple(arguments)))


def run_public(call: Call) -> tuple:
    """The kernel called with NumPy arrays, which picks the path: it returns arrays (0-d ones for 0-d or
    NumPy-scalar arguments), the outputs passed in where given."""
    arguments = call.arguments()
    result = call.kernel(*arguments)
    returned = result if isinstance(result, tuple) else (result,)
    assert all(type(output) is np.ndarray for output in returned)
    if call.outputs_given:
        assert all(output is given for output, given in zip(returned, arguments[len(call.kernel.inputs):]))
    return outputs_of(call, arguments, result)


# Comparisons ------------------------------------------------------------------------------------------------

def assert_same_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Equal values, NaN where NaN (any payload), the same sign of zero."""
    assert (got.dtype, got.shape) == (want.dtype, want.shape), f"{what}: {got.dtype}{got.shape}, {want.dtype}"
    nan = np.isnan(want)
    bad = (np.isnan(got) != nan) | (~nan & ((got != want) | (np.signbit(got) != np.signbit(want))))
    assert not bad.any(), f"{what}: at {np.argwhere(bad)[:3].tolist()}: {got[bad][:3]} vs {want[bad][:3]}"


def call_terms(call: Call) -> list:
    """Per output, |the term of the formula that holds the library call| (exactly, in long double): what
    the two libraries' differences scale with."""
    read = [np.asarray(v, np.longdouble) if np.asarray(v).dtype != bool else v for v in call.read()]
    with np.errstate(all="ignore"):
        if call.name == "bce_with_logits":
            e = np.exp(-abs(read[0]))
            return [np.log1p(e), np.where(read[0] >= 0, 1 / (1 + e), e / (1 + e))]  # log1p(e^−|x|), σ(x)
        if call.name == "gaussian_kl_terms":
            return [abs(0.5 * np.expm1(read[1]))] * 2  # ½·expm1(lv)
        if call.name == "reparameterize_terms":
            std_eps = abs(np.exp(read[1] / 2) * read[2])  # e^(lv/2)·ε
            return [std_eps, std_eps / 2]
    raise AssertionError(f"{call.name} calls no library function")


def assert_within_contract(call: Call, got: tuple, want: tuple, what: str) -> None:
    """The compiled loop's results against the twin's: bit for bit where the body is arithmetic; where it
    calls exp, expm1 or log1p, within 16·eps·|c| + eps·|result| + 16 subnormal steps, c the term holding the
    call (8 ulp between the libraries, carried through what follows) and the last two roundings (which may go
    opposite ways)."""
    assert len(got) == len(want)
    if not call.kernel.cpu_loop.math_calls:
        for index, (a, b) in enumerate(zip(got, want)):
            assert_same_bits(a, b, f"{what}, output {index}")
        return
    info = np.finfo(call.dtype)
    for index, (a, b, term) in enumerate(zip(got, want, call_terms(call))):
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        with np.errstate(all="ignore"):
            bound = (16 * info.eps * np.asarray(term, np.float64) + info.eps * np.maximum(abs(a), abs(b))
                     + 16 * info.smallest_subnormal)
            close = np.isfinite(a) & np.isfinite(b) & (abs(a.astype(np.float64) - b) <= bound)
        bad = ~(close | (a == b) | (np.isnan(a) & np.isnan(b)))
        assert not bad.any(), (f"{what}, output {index}: at {np.argwhere(bad)[:3].tolist()}: {a[bad][:3]} vs "
                               f"{b[bad][:3]} (reading {[np.asarray(v)[bad][:3] for v in call.read()]})")


def assert_near_textbook(call: Call, got: tuple, what: str) -> None:
    """Within twice the textbook formula's error bound of its value: the kernels compute stable
    rearrangements of it (BCE's (1 − t)·x for max(x, 0) − x·t), whose own bounds are at most twice as
    large."""
    for index, (result, reference) in enumerate(zip(got, textbook(call.name, call.read(), call.dtype))):
        want = np.broadcast_to(reference.value, result.shape)
        bound = np.broadcast_to(2 * reference.error, result.shape)
        with np.errstate(all="ignore"):
            bad = ~((result == want.astype(call.dtype)) | (abs(result.astype(want.dtype) - want) <= bound))
        assert not bad.any(), (f"{what}, output {index}: at {np.argwhere(bad)[:3].tolist()}: "
                               f"{result[bad][:3]}, textbook {want[bad][:3]} ± {bound[bad][:3]}")


def loop_must_run(call: Call) -> bool:
    """Whether the compiled loop must take a call's arguments: a dense first argument, every output passed in
    laid out as it, no input misaligned (an input laid out otherwise is copied into the first's layout)."""
    first, inputs = call.layouts[0], len(call.kernel.inputs)
    return (first in DENSE and not {"misaligned", "0d"} & set(call.layouts[:inputs])
            and all(layout == first for layout in call.layouts[inputs:]))


# The paths agree --------------------------------------------------------------------------------------------

def test_every_kernel_is_covered():
    assert set(TEXTBOOK) == set(INPUTS) == set(KERNELS)


@numpy_only
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_compiled_loop_twin_and_public_call_agree(name, data):
    """Any size, layout, dtype and special value: the compiled loop (outputs passed in, or fresh) agrees with
    the twin within the contract, or refuses where it must not run; the public call gives what the path it
    picks gives: the compiled loop from min_compiled_size on where it takes the arguments (in place only for
    an in-place kernel: the others run it into fresh outputs, copied), else the twin."""
    call = data.draw(calls(name))
    with np.errstate(all="ignore"):
        twin = run_twin(call)
        compiled = run_compiled(call)
        fresh = compiled if call.kernel.in_place else run_compiled(call, outputs=False)
        public = run_public(call)
    assert all(output.dtype == call.dtype and output.shape == np.shape(call.values[0]) for output in twin)
    for result in (compiled, fresh):
        if result is NotImplemented:
            assert not loop_must_run(call), f"the compiled loop refused {call.layouts}"
        else:
            assert_within_contract(call, result, twin, "compiled loop vs twin")
    chosen = fresh if np.size(call.values[0]) >= call.kernel.min_compiled_size else NotImplemented
    for got, want in zip(public, twin if chosen is NotImplemented else chosen):
        assert_same_bits(got, want, "public call vs the path it picked")


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_the_strict_path_is_the_twin(name, data):
    call = data.draw(calls(name, shapes=SMALL_SHAPES))
    with np.errstate(all="ignore"):
        twin, strict = run_twin(call), run_strict(call)
    for got, want in zip(strict, twin):
        assert_same_bits(got, want, "strict vs twin")


@pytest.mark.parametrize("path", ["twin and strict", pytest.param("compiled", marks=numpy_only)])
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_every_path_is_the_textbook_formula(name, path, data):
    """Finite values where nothing inside the formula overflows (each domain's cap), 0, −0, tiny, subnormal
    and huge ones included: within the contract's bound of the textbook formula."""
    call = data.draw(calls(name, shapes=SMALL_SHAPES + [(37,)], layouts=("C",), output_layouts=("C",),
                           finite=True))
    with np.errstate(all="ignore"):
        runs = {"compiled": run_compiled(call)} if path == "compiled" else {"twin": run_twin(call),
                                                                            "strict": run_strict(call)}
    for run, got in runs.items():
        assert got is not NotImplemented
        assert_near_textbook(call, got, run)


@numpy_only
@pytest.mark.parametrize("name", MATH_NAMES)
@given(data=st.data())
def test_where_the_library_calls_are_exact_compiled_loop_and_twin_agree_bit_for_bit(name, data):
    """Where exp, expm1 and log1p return the same values in both libraries (expm1(x) = x and e^(x/2) = 1 for
    |x| < 2^−(mantissa bits + 3), where x²/2 and x/2 fall below half an ulp; e^(−|x|) = 0 past underflow),
    the arithmetic around the calls must round as the twin's does: a body computing in double (a bare 0.5 in
    exp(0.5 * logvar)) or rearranged would differ in last bits."""
    call = data.draw(calls(name, shapes=THRESHOLD_SHAPES, layouts=("C",)))
    call = call._replace(values=call.values[:len(call.kernel.inputs)])
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    info, values, shape = np.finfo(call.dtype), list(call.values), call.values[0].shape
    if name == "bce_with_logits":  # |x| past 2⁷ (float32) or 2¹⁰ (float64): e^(−|x|) underflows to 0
        underflow = np.log2(-np.log(float(info.smallest_subnormal))) + 1
        values[0] = rng.choice([-1, 1], shape) * 2.0 ** rng.uniform(underflow, info.maxexp - 2, shape)
    else:  # logvar tiny, and the KL's μ² of its size at half the places (the two terms then round together)
        values[1] = rng.choice([-1, 1], shape) * 2.0 ** rng.integers(info.minexp, -info.nmant - 3, shape)
        if name == "gaussian_kl_terms":
            small = np.sqrt(abs(values[1])) * rng.uniform(0.5, 2, shape) * rng.choice([-1, 1], shape)
            values[0] = np.where(rng.random(shape) < 0.5, small, values[0])
    call = call._replace(values=[np.asarray(v, call.dtype) for v in values])
    with np.errstate(all="ignore"):
        twin, compiled = run_twin(call), run_compiled(call)
    for got, want in zip(compiled, twin):
        assert_same_bits(got, want, "compiled loop vs twin")


# Warnings and errors ----------------------------------------------------------------------------------------

FP_KINDS = ("divide by zero", "overflow", "underflow", "invalid value")


class Reported(list):
    """The kinds of exception np.errstate's "call" and "log" modes report: by calls of it ("overflow", and a
    status that a single C loop can't split as the twin's ufuncs do), by lines written to it."""

    def __call__(self, words: str, status: int) -> None:
        assert words in FP_KINDS and 0 < status < 16
        self.append(words)

    def write(self, line: str) -> None:
        self.append(next(kind for kind in FP_KINDS if line.startswith(f"Warning: {kind} encountered in ")))


def behaviour(run: Callable, call: Call, mode: str):
    """What a path does under ``np.errstate(all=mode)``: "raises" (FloatingPointError), or the set of kinds
    of floating-point exception it warned about (RuntimeWarnings), called about or logged."""
    reported = Reported()
    with warnings.catch_warnings(record=True) as caught, np.errstate(all=mode, call=reported):
        warnings.simplefilter("always")
        try:
            run(call)
        except FloatingPointError:
            return "raises"
    assert all(issubclass(warning.category, RuntimeWarning) for warning in caught), caught
    warned = {kind for warning in caught for kind in FP_KINDS if str(warning.message).startswith(kind)}
    return set(reported) | warned


@pytest.mark.parametrize("path", ["strict", pytest.param("public", marks=numpy_only)])
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_every_path_warns_and_raises_alike(name, path, data):
    """Under np.errstate 'warn', 'raise', 'call', 'log' and 'ignore' each path does what the twin does (what
    NumPy does): the public call at 1,024 elements runs the compiled loop, which leaves a call that raised an
    exception NumPy would act on to the twin (or, updating its outputs in place, reports it itself, as NumPy
    would); the strict path runs the twin."""
    call = data.draw(calls(name, shapes=THRESHOLD_SHAPES[:2] + SMALL_SHAPES[3:5]))
    for mode in ("warn", "raise", "call", "log", "ignore"):
        twin = behaviour(run_twin, call, mode)
        assert behaviour(run_strict if path == "strict" else run_public, call, mode) == twin, mode
        assert mode != "ignore" or twin == set()


@numpy_only
@pytest.mark.parametrize("mode", ["warn", "raise", "call", "log"])
def test_an_in_place_compiled_call_reports_as_numpy_reports_a_ufunc(mode):
    """adam_update's compiled loop updates in place, so it reports its exceptions itself, as NumPy does the
    twin's: the warning, the error, the errcall function called with ("overflow", 2) (NumPy's status bits:
    divide 1, over 2, under 4, invalid 8), the line logged; the message names the kernel."""
    grad = np.full(1024, 3e38, np.float32)  # g² overflows
    state = [np.ones(1024, np.float32) for _ in range(3)]
    seen = {}
    for path, update in ("compiled", KERNELS["adam_update"].cpu_loop), ("twin", KERNELS["adam_update"].twin):
        reported = []
        logged = type("Log", (), {"write": lambda self, line: reported.append(line)})()
        with warnings.catch_warnings(record=True) as caught, np.errstate(
                all=mode, call=logged if mode == "log" else lambda *args: reported.append(args)):
            warnings.simplefilter("always")
            try:
                update(grad, 0.1, 0.999, 0.001, 1e-3, 0.5, 1e-8, 0.0, 1.0, *(a.copy() for a in state))
            except FloatingPointError as error:
                reported.append(str(error))
        seen[path] = reported + [str(warning.message) for warning in caught]
    assert len(seen["compiled"]) == len(seen["twin"]) == 1
    compiled, twin = seen["compiled"][0], seen["twin"][0]
    if mode == "call":
        assert compiled == twin == ("overflow", 2)
    else:
        assert compiled == twin.replace("multiply", "adam_update") and "overflow encountered in" in compiled


# Outputs passed in, aliasing inputs -------------------------------------------------------------------------

def on_backend(values: list) -> list:
    """The arrays on the backend under test (each NumPy array wrapped once: an alias stays one)."""
    if BACKEND == "numpy":
        return values
    wrapped: dict[int, StrictArray] = {}
    return [[StrictArray(a) for a in v] if isinstance(v, list) else
            wrapped.setdefault(id(v), StrictArray(v)) if isinstance(v, np.ndarray) else v for v in values]


@pytest.mark.parametrize("path", ["public", pytest.param("compiled", marks=numpy_only)])
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_outputs_passed_in_are_updated_even_where_they_alias_an_input(name, path, data):
    """An output passed in may be an input itself, or a view of its memory: every element's inputs are read
    before its outputs are written, on every path (the compiled loop's in place too), as in CuPy's loop."""
    call = data.draw(calls(name, shapes=THRESHOLD_SHAPES[1:3] + SMALL_SHAPES[3:6], outputs=True,
                           layouts=WRITABLE[:-1]))
    kernel, arguments, inputs = call.kernel, call.arguments(), len(call.kernel.inputs)
    with np.errstate(all="ignore"):
        expected = run_twin(call)
    candidates = [index for index in range(inputs)
                  if isinstance(arguments[index], np.ndarray) and arguments[index].dtype == call.dtype]
    for output in range(inputs, len(arguments)):
        alias = data.draw(st.sampled_from([None] + candidates))
        if alias is None or (kernel.in_place and output > inputs):
            continue  # (adam_update: its param may be its grad; its moments are its state)
        candidates.remove(alias)  # (two outputs in one array: the last one written wins)
        arguments[output] = arguments[alias] if data.draw(st.booleans()) else arguments[alias][...]
        if kernel.in_place:  # the state it updates starts from the aliased input's values
            with np.errstate(all="ignore"):
                expected = run_twin(call._replace(
                    values=call.values[:output] + [np.array(arguments[alias])] + call.values[output + 1:],
                    layouts=call.layouts[:output] + ["C"] + call.layouts[output + 1:]))
    passed = on_backend(arguments)
    with np.errstate(all="ignore"):
        returned = kernel(*passed) if path == "public" else kernel.cpu_loop(*passed)
    if returned is NotImplemented:
        return
    assert all(got is given for got, given in zip(returned if isinstance(returned, tuple) else (returned,),
                                                  passed[inputs:]))
    assert_within_contract(call, tuple(np.array(a) for a in arguments[inputs:]), expected, "passed in")


# foreach: many tensors in one call --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["public", pytest.param("compiled", marks=numpy_only)])
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_foreach_computes_what_a_call_per_tensor_computes(name, path, data):
    """Each array argument a list of tensors, each in its own layout, or a flat array holding them back to
    back (in a layout of its own); scalars shared: ``kernel.foreach`` (or the compiled loop's, which may
    refuse) updates the outputs as a call per tensor would."""
    kernel = KERNELS[name]
    layouts = WRITABLE + ("broadcast",)
    first = data.draw(calls(name, shapes=SMALL_SHAPES + THRESHOLD_SHAPES[1:2], layouts=layouts, outputs=True))
    tensors = [first] + [data.draw(calls(name, shapes=SMALL_SHAPES, layouts=layouts, outputs=True,
                                         dtype=first.dtype)) for _ in range(data.draw(st.integers(0, 2)))]
    tensors = [call._replace(values=[mine if layout else shared for mine, shared, layout
                                     in zip(call.values, first.values, call.layouts)]) for call in tensors]
    flat_inputs, flat_outputs = data.draw(st.booleans()), data.draw(st.booleans())
    arguments, flat = [], []
    for index, layout in enumerate(first.layouts):
        if layout is None:
            arguments.append(first.values[index])
        elif index and (flat_outputs if index >= len(kernel.inputs) else flat_inputs):
            values = np.concatenate([np.array(build(call.values[index], call.layouts[index])).reshape(-1)
                                     for call in tensors])
            arguments.append(build(values, data.draw(st.sampled_from(("C", "step", "negative")))))
            flat.append(index)
        else:
            arguments.append([build(call.values[index], call.layouts[index]) for call in tensors])
    with np.errstate(all="ignore"):
        expected = [run_twin(call) for call in tensors]
        if path == "public":
            kernel.foreach(*on_backend(arguments))
        elif kernel.cpu_loop.foreach(*arguments) is NotImplemented:
            return
    offset = 0
    for tensor, (call, want) in enumerate(zip(tensors, expected)):
        shape = np.shape(call.values[0])
        got = tuple(np.array(arguments[index][offset: offset + int(np.prod(shape))]).reshape(shape)
                    if index in flat else np.array(arguments[index][tensor])
                    for index in range(len(kernel.inputs), len(arguments)))
        offset += int(np.prod(shape))
        assert_within_contract(call, got, want, f"tensor {tensor}")


# Arguments --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_numpy_scalars_are_taken_as_0d_arrays_and_give_0d_arrays(name, dtype):
    """What NumPy makes of 0-d results (``x.sum()``) reaches kernels: first, a NumPy scalar is a 0-d array of
    the numpy backend; elsewhere, a scalar cast to its parameter's dtype, as CuPy casts scalars (a float64
    one leaves a float32 kernel float32)."""
    kernel = KERNELS[name]
    inputs = [np.bool_(True) if type_name == "bool" else np.float64(0.25 + index / 8)
              for index, (type_name, _) in enumerate(kernel.inputs)]
    inputs[0] = dtype(0.5)
    outputs = [np.full((), 0.75 + index / 8, dtype) for index in range(len(kernel.outputs) * kernel.in_place)]
    as_arrays = [np.asarray(value, bool if isinstance(value, np.bool_) else dtype) for value in inputs]
    expected = kernel(*as_arrays, *[output.copy() for output in outputs])
    result = kernel(*inputs, *outputs)
    for got, want in zip(*(r if isinstance(r, tuple) else (r,) for r in (result, expected))):
        assert type(got) is np.ndarray and got.shape == () and got.dtype == dtype
        assert_same_bits(got, want, "NumPy scalars vs 0-d arrays")


def test_calls_cupy_would_refuse_fail_on_every_path(xp):
    """An in-place kernel without its outputs, foreach without outputs, an output of another shape than the
    arguments' (strict, as CuPy), a twin that takes neither the inputs nor all the arguments."""
    grad = xp.asarray(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="adam_update updates its outputs in place: pass them"):
        KERNELS["adam_update"](grad, 0.1, 0.999, 0.001, 1e-3, 0.5, 1e-8, 0.0, 1.0)
    with pytest.raises(TypeError, match="foreach takes a list of arrays first, and all 3 arguments"):
        KERNELS["relu_backward"].foreach([grad], [grad])
    KERNELS["relu_backward"].foreach([], [], [])  # no tensors: nothing to do
    strict_grad = StrictArray(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"output 'grad_x' has shape \(1,\), expected \(3,\)"):
        kernels.strict_call(KERNELS["relu_backward"], (strict_grad, strict_grad, strict_grad[:1]))
    with pytest.raises(TypeError, match="output 'grad_x' is a float"):
        kernels.strict_call(KERNELS["relu_backward"], (strict_grad, strict_grad, 1.0))
    with pytest.raises(ValueError, match="the twin takes 1 arguments"):
        kernels.Kernel("pair", "T x, T w", "T y", "y = x * w", lambda x: x)


def test_parameters_may_have_the_names_the_compiled_foreach_uses_inside():
    """The generated foreach walks tensors with locals of its own; they must not shadow parameters (a
    parameter ``t`` once turned the loop counter into an address: a segfault)."""
    if BACKEND != "numpy":
        pytest.skip("the compiled loop: checked once, in the numpy run")
    names = ("t", "count", "sizes", "offset", "flags")
    kernel = kernels.Kernel("many_names", "T x, " + ", ".join(f"T {n}" for n in names), "T y",
                            "y = x + " + " + ".join(names),
                            lambda x, t, count, sizes, offset, flags: x + t + count + sizes + offset + flags)
    xs = [np.arange(5, dtype=np.float64), np.arange(3, dtype=np.float64)]
    flat = [np.full(8, float(k + 1)) for k in range(len(names))]
    out = np.zeros(8)
    assert kernel.cpu_loop.foreach(xs, *flat, out) is None  # the compiled call ran
    np.testing.assert_array_equal(out, np.concatenate(xs) + sum(range(1, len(names) + 1)))


# Regressions: each failed before commit dde9e4f -------------------------------------------------------------

def test_inputs_laid_out_unlike_the_first_argument_are_read():
    """The compiled loop copies such an input into the first argument's layout; it used to pass the address
    of a copy already freed: z came out as mu + exp(eps/2)·eps."""
    r = np.random.default_rng(0)
    mu = ta.tensor(r.standard_normal((32, 45))).T  # (45, 32), Fortran order
    logvar = ta.tensor(r.standard_normal((45, 32)))
    eps = r.standard_normal((45, 32))
    z = F.reparameterize(mu, logvar, eps=ta.tensor(eps))
    np.testing.assert_allclose(to_numpy(z), to_numpy(mu) + np.exp(to_numpy(logvar) / 2) * eps, rtol=1e-13)


def test_a_gradient_laid_out_unlike_the_saved_output_is_read():
    """softplus' backward got the gradient transposed, unlike its saved e^x: values like 1e-310 came out,
    read from freed memory."""
    r = np.random.default_rng(0)
    x = ta.tensor(r.standard_normal((45, 32)), requires_grad=True)
    grad = r.standard_normal((32, 45))
    F.softplus(x).T.backward(ta.tensor(grad))
    np.testing.assert_allclose(to_numpy(x.grad), grad.T / (1 + np.exp(-to_numpy(x))), rtol=1e-13)


@pytest.mark.parametrize("op, derivative", [("sigmoid", lambda y: y * (1 - y)), ("tanh", lambda y: 1 - y * y),
                                            ("relu", lambda y: 1.0)])
def test_a_0d_result_backpropagates_through_a_kernel(op, derivative):
    """x.sum() is a NumPy scalar on the numpy backend; reaching a kernel, it went to CuPy
    (ModuleNotFoundError: cupy)."""
    x = ta.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    y = getattr(x.sum(), op)()
    (y * y).backward()
    y = float(to_numpy(y))
    np.testing.assert_allclose(to_numpy(x.grad), np.full(3, 2 * y * derivative(y)), rtol=1e-15)


def test_gaussian_kl_warns_alike_at_any_size_and_its_paths_agree():
    """logvar = 100 overflows e^logvar in float32: the twin (16 elements) warned, the compiled loop (4,096)
    did not. And its values agree with the twin's within the contract (through the public op: one call on
    4,096 elements, compiled, against calls on 16, each the twin)."""
    for size in (16, 4096):
        mu, logvar = np.zeros(size, np.float32), np.full(size, 100.0, np.float32)
        if BACKEND == "cupy":  # CuPy never warns (kernels/__init__.py's contract)
            kl = F.gaussian_kl(ta.tensor(mu), ta.tensor(logvar))
        else:
            with pytest.warns(RuntimeWarning, match="overflow"):
                kl = F.gaussian_kl(ta.tensor(mu), ta.tensor(logvar))
        assert np.isposinf(to_numpy(kl))
    r = np.random.default_rng(3)
    mu, logvar = (r.standard_normal(4096).astype(np.float32) * 3 for _ in range(2))
    whole = to_numpy(F.gaussian_kl(ta.tensor(mu), ta.tensor(logvar), reduction="none"))
    parts = np.concatenate([to_numpy(F.gaussian_kl(ta.tensor(m), ta.tensor(v), reduction="none"))
                            for m, v in zip(mu.reshape(-1, 16), logvar.reshape(-1, 16))])
    eps = np.finfo(np.float32).eps
    bound = 16 * eps * np.abs(0.5 * np.expm1(logvar.astype(np.float64))) + eps * np.abs(parts)
    assert np.all(np.abs(whole.astype(np.float64) - parts) <= bound)

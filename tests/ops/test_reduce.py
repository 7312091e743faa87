"""Gradient checks for the reductions sum, mean, max and logsumexp, over every kind of ``axis`` (None, an
int, a negative int, a tuple) with and without ``keepdims``; max without ties, plus its tie rule (the
gradient is split evenly among tied maxima); logsumexp at large values, where a naive exp would overflow."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyae
from tests.ops.helpers import check_op
from tests.conftest import to_numpy
from tinyae.testing.strategies import arrays, shapes


AXIS_KINDS = {
    "None": lambda ndim: st.none(),
    "int": lambda ndim: st.integers(0, ndim - 1),
    "negative-int": lambda ndim: st.integers(-ndim, -1),
    "tuple": lambda ndim: hnp.valid_tuple_axes(ndim, min_size=1),  # may hold negative axes too
}
every_axis_kind = pytest.mark.parametrize("axis_kind", AXIS_KINDS)
with_and_without_keepdims = pytest.mark.parametrize("keepdims", [False, True], ids=["drop", "keepdims"])


@st.composite
def well_separated_array(draw, shape):
    """An array whose values are all at least 0.05 apart: shuffled ranks on a 0.1 grid plus a jitter below
    0.05. (``arrays(distinct=True)`` can return ties.)"""
    ranks = np.array(draw(st.permutations(range(math.prod(shape)))), dtype=np.float64)
    values = 0.1 * (ranks - ranks.size / 2) + draw(arrays(ranks.shape, low=0.0, high=0.05))
    return values.reshape(shape)


@st.composite
def array_and_axis(draw, axis_kind, separated=False):
    """An array and an ``axis`` of the given kind for it; ``separated`` keeps the values apart (no ties)."""
    shape = draw(shapes(min_dims=0 if axis_kind == "None" else 1))
    axis = draw(AXIS_KINDS[axis_kind](len(shape)))
    return draw(well_separated_array(shape) if separated else arrays(shape)), axis


def reduction(method, axis, keepdims):
    """``x.method(axis=axis, keepdims=keepdims)``: the same call on a Tensor and on a NumPy array."""
    return lambda x: getattr(x, method)(axis=axis, keepdims=keepdims)


@every_axis_kind
@with_and_without_keepdims
@pytest.mark.parametrize("method", ["sum", "mean"])
@given(data=st.data())
def test_sum_and_mean(method, axis_kind, keepdims, data):
    x, axis = data.draw(array_and_axis(axis_kind))
    check_op(reduction(method, axis, keepdims), reduction(method, axis, keepdims), x)
    function = getattr(tinyae, method)
    check_op(lambda t: function(t, axis=axis, keepdims=keepdims), reduction(method, axis, keepdims), x)


@every_axis_kind
@with_and_without_keepdims
@given(data=st.data())
def test_max_without_ties(axis_kind, keepdims, data):
    x, axis = data.draw(array_and_axis(axis_kind, separated=True))
    check_op(reduction("max", axis, keepdims), reduction("max", axis, keepdims), x)
    check_op(lambda t: tinyae.max(t, axis=axis, keepdims=keepdims), reduction("max", axis, keepdims), x)


@pytest.mark.parametrize(
    "x, axis, grad_out, expected_grad",
    [
        # Row 0 has two maxima (3), row 1 three (2): each gets an equal share of its row's gradient.
        ([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], 1, [6.0, 3.0], [[0.0, 3.0, 3.0], [1.0, 1.0, 1.0]]),
        ([[4.0, 1.0], [4.0, 4.0]], None, 6.0, [[2.0, 0.0], [2.0, 2.0]]),
        ([[5.0, -1.0], [5.0, 0.0]], 0, [4.0, 8.0], [[2.0, 0.0], [2.0, 8.0]]),
    ],
    ids=["axis-1", "axis-None", "axis-0"],
)
def test_max_splits_gradient_evenly_among_ties(x, axis, grad_out, expected_grad):
    x = tinyae.tensor(np.array(x), requires_grad=True)
    x.max(axis=axis).backward(tinyae.tensor(np.array(grad_out)))
    np.testing.assert_array_equal(to_numpy(x.grad), expected_grad)


def numpy_logsumexp(axis, keepdims):
    """log Σ eˣ by NumPy's pairwise, overflow-free ``logaddexp``."""
    return lambda a: np.logaddexp.reduce(a, axis=axis, keepdims=keepdims)


@every_axis_kind
@with_and_without_keepdims
@given(data=st.data())
def test_logsumexp(axis_kind, keepdims, data):
    x, axis = data.draw(array_and_axis(axis_kind))
    check_op(lambda t: tinyae.logsumexp(t, axis=axis, keepdims=keepdims), numpy_logsumexp(axis, keepdims), x)


@pytest.mark.parametrize("offset", [1000.0, -1000.0])
@given(data=st.data())
def test_logsumexp_of_large_values(offset, data):
    x, axis = data.draw(array_and_axis("tuple"))
    check_op(lambda t: tinyae.logsumexp(t, axis=axis), numpy_logsumexp(axis, False), x + offset)

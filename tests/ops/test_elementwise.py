"""Gradient checks for exp, log, sqrt, abs, clip, maximum, minimum and where, each on its own domain
(positive for log and sqrt, away from kinks for abs and clip, without ties for maximum and minimum),
plus the tie rule of maximum and minimum: the gradient is split half and half."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyae
from tests.ops.helpers import check_op
from tests.conftest import to_numpy
from tinyae.testing.strategies import arrays, broadcastable_shapes, shapes


def arrays_of_any_shape(**options):
    return shapes().flatmap(lambda shape: arrays(shape, **options))


def arrays_of_shapes(shapes_):
    return st.tuples(*(arrays(shape) for shape in shapes_))


@st.composite
def well_separated_arrays(draw, shapes_):
    """Arrays of the given shapes whose values are all at least 0.05 apart, across the arrays too: shuffled
    ranks on a 0.1 grid plus a jitter below 0.05. (``arrays(distinct=True)`` can return ties.)"""
    sizes = [math.prod(shape) for shape in shapes_]
    ranks = np.array(draw(st.permutations(range(sum(sizes)))), dtype=np.float64)
    values = 0.1 * (ranks - ranks.size / 2) + draw(arrays(ranks.shape, low=0.0, high=0.05))
    parts = np.split(values, np.cumsum(sizes)[:-1])
    return [part.reshape(shape) for part, shape in zip(parts, shapes_, strict=True)]


UNARY = {
    "exp": (np.exp, {}),
    "log": (np.log, {"low": 0.1}),
    "sqrt": (np.sqrt, {"low": 0.1}),
    "abs": (np.abs, {"avoid": (0.0,)}),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_function_and_method(name, data):
    reference, domain = UNARY[name]
    x = data.draw(arrays_of_any_shape(**domain))
    check_op(getattr(tinyae, name), reference, x)
    check_op(lambda t: getattr(t, name)(), reference, x)


@given(x=arrays_of_any_shape(avoid=(0.0,)))
def test_builtin_abs(x):
    check_op(abs, np.abs, x)


@pytest.mark.parametrize("low, high", [(-1.0, 1.5), (-1.0, None), (None, 0.5)], ids=["both", "min", "max"])
@given(data=st.data())
def test_clip(low, high, data):
    bounds = tuple(bound for bound in (low, high) if bound is not None)
    x = data.draw(arrays_of_any_shape(avoid=bounds))
    check_op(lambda t: t.clip(low, high), lambda a: np.clip(a, low, high), x)
    check_op(lambda t: tinyae.clip(t, min=low, max=high), lambda a: np.clip(a, low, high), x)


maximum_and_minimum = pytest.mark.parametrize(
    "op, reference", [(tinyae.maximum, np.maximum), (tinyae.minimum, np.minimum)], ids=["maximum", "minimum"]
)


@maximum_and_minimum
@given(pair=broadcastable_shapes().flatmap(well_separated_arrays))
def test_maximum_minimum_broadcast_without_ties(op, reference, pair):
    check_op(op, reference, *pair)


@maximum_and_minimum
@given(x=arrays_of_any_shape(avoid=(0.5,)))
def test_maximum_minimum_with_scalar(op, reference, x):
    check_op(lambda t: op(t, 0.5), lambda a: reference(a, 0.5), x)
    check_op(lambda t: op(0.5, t), lambda a: reference(0.5, a), x)


TIED_A, TIED_B = [1.0, 2.0, 3.0, -1.0], [1.0, 0.0, 3.0, 4.0]  # ties at positions 0 and 2


@pytest.mark.parametrize(
    "op, a, b, expected_grad_a, expected_grad_b",
    [
        # grad_out = [2, 4, 8, 16]; at the ties each side gets half.
        (tinyae.maximum, TIED_A, TIED_B, [1.0, 4.0, 4.0, 0.0], [1.0, 0.0, 4.0, 16.0]),
        (tinyae.minimum, TIED_A, TIED_B, [1.0, 0.0, 4.0, 16.0], [1.0, 4.0, 4.0, 0.0]),
        # grad_out = [2, 4, 8]; b = 2 is broadcast and ties with a at positions 0 and 1.
        (tinyae.maximum, [2.0, 2.0, 1.0], 2.0, [1.0, 2.0, 0.0], 1.0 + 2.0 + 8.0),
        (tinyae.minimum, [2.0, 2.0, 1.0], 2.0, [1.0, 2.0, 8.0], 1.0 + 2.0),
    ],
    ids=["maximum", "minimum", "maximum-broadcast", "minimum-broadcast"],
)
def test_maximum_minimum_split_gradient_at_ties(op, a, b, expected_grad_a, expected_grad_b):
    a = tinyae.tensor(np.array(a), requires_grad=True)
    b = tinyae.tensor(np.array(b), requires_grad=True)
    grad_out = 2.0 ** np.arange(1, a.size + 1)
    op(a, b).backward(tinyae.tensor(grad_out))
    np.testing.assert_array_equal(to_numpy(a.grad), expected_grad_a)
    np.testing.assert_array_equal(to_numpy(b.grad), expected_grad_b)


@given(triple=broadcastable_shapes(num_shapes=3).flatmap(arrays_of_shapes))
def test_where_broadcast(triple):
    selector, a, b = triple
    condition = tinyae.tensor(selector) > 0
    check_op(lambda x, y: tinyae.where(condition, x, y), lambda x, y: np.where(selector > 0, x, y), a, b)


@given(pair=broadcastable_shapes().flatmap(arrays_of_shapes))
def test_where_with_scalar_branch(pair):
    selector, a = pair
    condition = tinyae.tensor(selector) > 0
    check_op(lambda x: tinyae.where(condition, x, 0.5), lambda x: np.where(selector > 0, x, 0.5), a)
    check_op(lambda x: tinyae.where(condition, 0.5, x), lambda x: np.where(selector > 0, 0.5, x), a)

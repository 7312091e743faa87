"""Gradient checks for + − × ÷ ** and unary −: tensor/tensor with broadcasting, tensor/scalar and the
reflected scalar/tensor forms, plus a negative control showing that gradcheck catches a wrong backward."""

import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyae
from tests.ops.helpers import check_op
from tinyae.autograd import Function
from tinyae.testing.strategies import arrays, broadcastable_shapes, shapes


def broadcast_pair(left=None, right=None):
    """Two arrays of mutually broadcastable shapes; ``left`` and ``right`` are options for ``arrays``."""
    return broadcastable_shapes().flatmap(
        lambda pair: st.tuples(arrays(pair[0], **(left or {})), arrays(pair[1], **(right or {})))
    )


def arrays_of_any_shape(**options):
    return shapes().flatmap(lambda shape: arrays(shape, **options))


POSITIVE = {"low": 0.5, "high": 3.0}
AWAY_FROM_ZERO = {"avoid": (0.0,), "margin": 0.5}
nonzero_scalars = st.one_of(st.floats(-4.0, -0.25), st.floats(0.25, 4.0))
add_sub_mul = pytest.mark.parametrize(
    "op", [operator.add, operator.sub, operator.mul], ids=["add", "sub", "mul"]
)


@add_sub_mul
@given(pair=broadcast_pair())
def test_add_sub_mul_broadcast(op, pair):
    check_op(op, op, *pair)


@given(pair=broadcast_pair(right=AWAY_FROM_ZERO))
def test_div_broadcast(pair):
    check_op(operator.truediv, operator.truediv, *pair)


@given(pair=broadcast_pair(left=POSITIVE, right={"low": -2.0, "high": 2.0}))
def test_pow_with_tensor_exponent_broadcast(pair):
    check_op(operator.pow, operator.pow, *pair)


@pytest.mark.parametrize(
    "op", [operator.add, operator.sub, operator.mul, operator.truediv], ids=["add", "sub", "mul", "div"]
)
@given(x=arrays_of_any_shape(), scalar=nonzero_scalars)
def test_tensor_with_scalar(op, x, scalar):
    check_op(lambda t: op(t, scalar), lambda a: op(a, scalar), x)


@add_sub_mul
@given(x=arrays_of_any_shape(), scalar=nonzero_scalars)
def test_scalar_with_tensor_reflected(op, x, scalar):
    check_op(lambda t: op(scalar, t), lambda a: op(scalar, a), x)


@given(x=arrays_of_any_shape(**AWAY_FROM_ZERO), scalar=nonzero_scalars)
def test_scalar_divided_by_tensor_reflected(x, scalar):
    check_op(lambda t: scalar / t, lambda a: scalar / a, x)


@given(x=arrays_of_any_shape(**POSITIVE), exponent=st.floats(-3.0, 3.0))
def test_tensor_to_scalar_power(x, exponent):
    check_op(lambda t: t**exponent, lambda a: a**exponent, x)


@given(x=arrays_of_any_shape(), exponent=st.sampled_from([2, 3]))
def test_tensor_to_integer_power_any_sign(x, exponent):
    check_op(lambda t: t**exponent, lambda a: a**exponent, x)


@given(x=arrays_of_any_shape(), base=st.floats(0.25, 4.0))
def test_scalar_to_tensor_power_reflected(x, base):
    check_op(lambda t: base**t, lambda a: base**a, x)


@given(x=arrays_of_any_shape())
def test_negation(x):
    check_op(operator.neg, operator.neg, x)


class MulWithoutFactor(Function):
    """y = a ⊙ b with a deliberately wrong backward: ∂L/∂a = ∂L/∂y, the factor b is dropped."""

    def forward(self, a, b):
        self.a = a
        return a * b

    def backward(self, grad_out):
        return grad_out, grad_out * self.a


@given(pair=shapes().flatmap(lambda shape: st.tuples(arrays(shape), arrays(shape, avoid=(1.0,), margin=0.5))))
def test_gradcheck_rejects_wrong_backward(pair):
    a, b = (tinyae.tensor(array, requires_grad=True) for array in pair)
    tinyae.gradcheck(operator.mul, [a, b])  # the correct product passes on the same inputs
    with pytest.raises(tinyae.GradcheckError):
        tinyae.gradcheck(MulWithoutFactor.apply, [a, b])

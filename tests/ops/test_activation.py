"""Gradient checks for the activations (relu, leaky_relu, sigmoid, tanh, softplus) as Tensor methods and in
``tinyae.functional``, plus their behaviour far in the tails, where naive formulas overflow."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyae
from tests.ops.helpers import check_op
from tests.conftest import BACKEND, to_numpy
from tinyae import functional
from tinyae.testing.strategies import arrays, shapes


def arrays_of_any_shape(**options):
    return shapes().flatmap(lambda shape: arrays(shape, **options))


def numpy_relu(x):
    return np.maximum(x, 0.0)


def numpy_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_softplus(x, beta=1.0, threshold=20.0):
    """PyTorch's definition: (1/β)·log(1 + e^(βx)), and x itself where βx > threshold."""
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


ACTIVATIONS = {
    "relu-method": (lambda t: t.relu(), numpy_relu),
    "relu": (functional.relu, numpy_relu),
    "leaky_relu-default-slope": (functional.leaky_relu, lambda a: np.where(a > 0, a, 0.01 * a)),
    "sigmoid-method": (lambda t: t.sigmoid(), numpy_sigmoid),
    "sigmoid": (functional.sigmoid, numpy_sigmoid),
    "tanh-method": (lambda t: t.tanh(), np.tanh),
    "tanh": (functional.tanh, np.tanh),
    "softplus": (functional.softplus, numpy_softplus),
}


@pytest.mark.parametrize("op, reference", ACTIVATIONS.values(), ids=ACTIVATIONS)
@given(x=arrays_of_any_shape(avoid=(0.0,)))  # away from the kink of (leaky) relu at 0
def test_activation(op, reference, x):
    check_op(op, reference, x)


@given(x=arrays_of_any_shape(avoid=(0.0,)), negative_slope=st.floats(0.0, 1.0))
def test_leaky_relu(x, negative_slope):
    check_op(
        lambda t: functional.leaky_relu(t, negative_slope=negative_slope),
        lambda a: np.where(a > 0, a, negative_slope * a),
        x,
    )


@given(data=st.data(), beta=st.floats(0.5, 3.0), threshold=st.floats(0.5, 5.0))
def test_softplus_with_beta_and_threshold(data, beta, threshold):
    x = data.draw(arrays_of_any_shape(avoid=(threshold / beta,)))  # the switch to linear is a jump
    check_op(
        lambda t: functional.softplus(t, beta=beta, threshold=threshold),
        lambda a: numpy_softplus(a, beta, threshold),
        x,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "op, expected_out, expected_grad",
    [
        # σ(−1e4) = e^(−1e4)/(1 + e^(−1e4)) underflows to 0; σ(1e4) rounds to 1; σ′ = σ(1 − σ) → 0.
        (functional.sigmoid, [0.0, 1.0], [0.0, 0.0]),
        # softplus(−1e4) = log(1 + e^(−1e4)) underflows to 0, softplus(1e4) = 1e4; softplus′ = σ.
        (functional.softplus, [0.0, 1e4], [0.0, 1.0]),
        (lambda t: functional.softplus(t, beta=0.5, threshold=5.0), [0.0, 1e4], [0.0, 1.0]),
    ],
    ids=["sigmoid", "softplus", "softplus-beta"],
)
def test_far_tails_are_finite_without_warnings(op, expected_out, expected_grad, dtype):
    x = tinyae.tensor(np.array([-1e4, 1e4], dtype=dtype), requires_grad=True)
    out = op(x)
    out.backward(tinyae.tensor(np.ones(2, dtype=dtype)))
    assert out.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), np.array(expected_out, dtype=dtype))
    np.testing.assert_array_equal(to_numpy(x.grad), np.array(expected_grad, dtype=dtype))


@pytest.mark.skipif(BACKEND != "numpy", reason="memory layouts: NumPy's")
def test_relu_backward_lays_the_gradient_out_as_its_output():
    """After a flatten the gradient comes (N, C, H, W)-contiguous to a ReLU whose output is a convolution's
    (C, H, W, N) memory: ∂L/∂x comes out in that memory order (the compiled loop runs, the convolution's
    backward copies nothing), with the values of the formula."""
    from tinyae.ops.activation import ReLU

    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5, 4, 3)).astype(np.float32).transpose(3, 0, 1, 2)  # (N, C, H, W) of CHWN
    grad_out = rng.standard_normal(x.shape).astype(np.float32)  # C-contiguous
    relu = ReLU()
    out = relu.forward(x)
    grad_x = relu.backward(grad_out)
    assert grad_x.strides == out.strides == x.strides
    np.testing.assert_array_equal(grad_x, np.where(x > 0, grad_out, 0))

"""Linear, Flatten, Unflatten, activation modules, Sequential and the default initialization."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyae as ta
from tinyae import functional as F
from tinyae import nn
from tinyae.testing.strategies import arrays
from tests.conftest import to_numpy


@given(st.data(), st.integers(0, 2), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_linear_gradients(data, leading_axes, in_features, out_features, with_bias):
    x = data.draw(arrays((2,) * leading_axes + (in_features,)))
    w = data.draw(arrays((out_features, in_features)))
    b = data.draw(arrays((out_features,)))
    inputs = [ta.tensor(v, requires_grad=True) for v in (x, w, b)]
    if with_bias:
        assert ta.gradcheck(F.linear, inputs)
    else:
        assert ta.gradcheck(F.linear, inputs[:2])
    expected = x @ w.T + (b if with_bias else 0)
    np.testing.assert_allclose(to_numpy(F.linear(*inputs[: 2 + with_bias])), expected, rtol=1e-12)


def test_linear_layer_layout_and_forward():
    layer = nn.Linear(5, 3)
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    expected = x @ to_numpy(layer.weight).T + to_numpy(layer.bias)
    out = layer(ta.tensor(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-5)
    assert nn.Linear(5, 3, bias=False).bias is None
    assert [name for name, _ in nn.Linear(5, 3, bias=False).named_parameters()] == ["weight"]


def test_default_init_is_uniform_within_pytorch_bounds():
    ta.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    weight = to_numpy(layer.weight)
    assert np.abs(weight).max() <= bound and np.abs(to_numpy(layer.bias)).max() <= bound
    assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # the std of U(−b, b)
    assert abs(weight.mean()) < 0.01 * bound


def test_manual_seed_makes_init_repeat():
    ta.manual_seed(3)
    first = to_numpy(nn.Linear(4, 4).weight)
    ta.manual_seed(3)
    assert np.array_equal(first, to_numpy(nn.Linear(4, 4).weight))


def test_linear_rejects_wrong_input_features():
    with pytest.raises(ValueError) as error:
        nn.Linear(784, 400)(ta.tensor(np.zeros((2, 700))))
    assert "Linear" in str(error.value) and "784" in str(error.value) and "(2, 700)" in str(error.value)


@pytest.mark.parametrize("sizes", [(0, 3), (3, 0), (-1, 2), (2.5, 3)])
def test_linear_refuses_non_positive_sizes(sizes):
    with pytest.raises(ValueError, match="Linear"):
        nn.Linear(*sizes)


def test_flatten_and_unflatten_are_inverse_reshapes():
    x = ta.tensor(np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5), requires_grad=True)
    flat = nn.Flatten()(x)
    assert flat.shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    back = nn.Unflatten(1, (3, 4, 5))(flat)
    np.testing.assert_array_equal(to_numpy(back), to_numpy(x))
    (back * 2.0).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), np.full(x.shape, 2.0))
    with pytest.raises(ValueError, match="Unflatten"):
        nn.Unflatten(1, (7, 7))(flat)


@pytest.mark.parametrize(
    "module, function",
    [
        (nn.ReLU(), F.relu),
        (nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)),
        (nn.Sigmoid(), F.sigmoid),
        (nn.Tanh(), F.tanh),
        (nn.Softplus(beta=2.0, threshold=3.0), lambda x: F.softplus(x, 2.0, 3.0)),
    ],
)
def test_activation_modules_match_functions(module, function):
    x = ta.tensor(np.linspace(-4, 4, 17))
    np.testing.assert_array_equal(to_numpy(module(x)), to_numpy(function(x)))


def test_sequential_indexing_and_errors():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    assert len(model) == 3 and isinstance(model[1], nn.Tanh) and isinstance(model[-1], nn.Linear)
    assert [type(m).__name__ for m in model] == ["Linear", "Tanh", "Linear"]
    with pytest.raises(TypeError, match="argument 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)

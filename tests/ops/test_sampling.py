"""reparameterize and dropout: gradients with fixed noise, seeded draws that repeat, dropout's statistics
and PyTorch's semantics, dtypes, and bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyae as ta
from tinyae import random
from tinyae.ops.sampling import dropout, reparameterize
from tinyae.testing import strategies
from tests.conftest import to_numpy


@st.composite
def gaussian_parameters(draw):
    """Host arrays (mu, logvar, eps) of one shape."""
    shape = draw(strategies.shapes(max_dims=3, max_side=4))
    mu = draw(strategies.arrays(shape, -3, 3))
    logvar = draw(strategies.arrays(shape, -4, 2))
    eps = draw(strategies.arrays(shape, -3, 3))
    return mu, logvar, eps


# reparameterize ------------------------------------------------------------------------------------------

@given(gaussian_parameters())
def test_reparameterize_gradcheck_with_fixed_eps(arrays):
    mu, logvar, eps = arrays
    eps_tensor = ta.tensor(eps)
    inputs = [ta.tensor(mu, requires_grad=True), ta.tensor(logvar, requires_grad=True)]
    assert ta.gradcheck(lambda mu, logvar: reparameterize(mu, logvar, eps=eps_tensor), inputs)


@given(gaussian_parameters())
def test_reparameterize_matches_numpy_and_autograd_through_primitive_ops(arrays):
    mu, logvar, eps = arrays
    fused_inputs = [ta.tensor(mu, requires_grad=True), ta.tensor(logvar, requires_grad=True)]
    composed_inputs = [ta.tensor(mu, requires_grad=True), ta.tensor(logvar, requires_grad=True)]
    fused = reparameterize(*fused_inputs, eps=ta.tensor(eps))
    composed_mu, composed_logvar = composed_inputs
    composed = composed_mu + (composed_logvar * 0.5).exp() * ta.tensor(eps)
    np.testing.assert_allclose(to_numpy(fused), mu + np.exp(0.5 * logvar) * eps, rtol=1e-12, atol=1e-14)
    grad_out = np.random.default_rng(0).standard_normal(np.shape(mu))
    fused.backward(ta.tensor(grad_out))
    composed.backward(ta.tensor(grad_out))
    for a, b in zip(fused_inputs, composed_inputs):
        np.testing.assert_allclose(to_numpy(a.grad), to_numpy(b.grad), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(to_numpy(fused_inputs[0].grad), grad_out)  # ∂z/∂mu = 1


def test_reparameterize_does_not_differentiate_eps(xp):
    mu, logvar = ta.tensor(np.zeros(3), requires_grad=True), ta.tensor(np.zeros(3), requires_grad=True)
    eps = ta.tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    reparameterize(mu, logvar, eps=eps).sum().backward()
    assert eps.grad is None
    np.testing.assert_allclose(to_numpy(logvar.grad), [0.5, -1.0, 0.25])
    out = reparameterize(mu, logvar, eps=xp.asarray(np.array([1.0, -2.0, 0.5])))  # a raw backend array
    np.testing.assert_allclose(to_numpy(out), [1.0, -2.0, 0.5])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reparameterize_draws_repeat_under_manual_seed(dtype):
    mu = ta.tensor(np.linspace(-1, 1, 12).reshape(3, 4), dtype=dtype, requires_grad=True)
    logvar = ta.tensor(np.linspace(-2, 1, 12).reshape(3, 4), dtype=dtype, requires_grad=True)
    ta.manual_seed(7)
    first = to_numpy(reparameterize(mu, logvar))
    ta.manual_seed(7)
    second = reparameterize(mu, logvar)
    np.testing.assert_array_equal(to_numpy(second), first)
    assert second.dtype == np.dtype(dtype)
    ta.manual_seed(7)  # the noise is the backend generator's standard normal, in mu's dtype
    eps = random.standard_normal((3, 4), dtype=dtype, backend_name=mu.backend)
    np.testing.assert_array_equal(first, to_numpy(reparameterize(mu, logvar, eps=eps)))
    ta.manual_seed(8)
    assert not np.array_equal(to_numpy(reparameterize(mu, logvar)), first)


def test_reparameterize_keeps_float32_with_float64_eps():
    mu = ta.tensor(np.zeros(2, np.float32), requires_grad=True)
    logvar = ta.tensor(np.zeros(2, np.float32), requires_grad=True)
    out = reparameterize(mu, logvar, eps=ta.tensor(np.array([1.0, 2.0])))
    out.sum().backward()
    assert out.dtype == mu.grad.dtype == logvar.grad.dtype == np.float32


def test_reparameterize_shape_errors():
    mu = ta.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"mu has shape \(2, 3\) but logvar has shape \(3,\)"):
        reparameterize(mu, ta.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match=r"eps has shape \(2, 1\) but mu has shape \(2, 3\)"):
        reparameterize(mu, ta.tensor(np.zeros((2, 3))), eps=ta.tensor(np.zeros((2, 1))))


# dropout ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    ta.manual_seed(0)
    x = ta.tensor(np.ones(200_000), dtype="float32")
    out = to_numpy(dropout(x, p))
    assert set(np.unique(out).tolist()) == {0.0, np.float32(1 / (1 - p)).item()}
    standard_error = np.sqrt(p / ((1 - p) * out.size))  # of the mean of x·m/(1 − p), m ~ Bernoulli(1 − p)
    assert abs(out.mean() - 1.0) < 5 * standard_error
    assert abs((out == 0).mean() - p) < 5 * np.sqrt(p * (1 - p) / out.size)


def test_dropout_gradient_is_the_scaled_mask():
    ta.manual_seed(1)
    values = np.random.default_rng(1).uniform(0.5, 2.0, (40, 30))  # no zeros: the mask is visible in y
    x = ta.tensor(values, requires_grad=True)
    out = dropout(x, 0.3)
    grad_out = np.random.default_rng(2).standard_normal(values.shape)
    out.backward(ta.tensor(grad_out))
    kept = to_numpy(out) != 0
    np.testing.assert_allclose(to_numpy(out), np.where(kept, values / 0.7, 0.0), rtol=1e-15)
    np.testing.assert_allclose(to_numpy(x.grad), np.where(kept, grad_out / 0.7, 0.0), rtol=1e-15)


@given(st.data())
def test_dropout_gradcheck_with_a_reseeded_mask(data):
    shape = data.draw(strategies.shapes(max_dims=3, max_side=4))
    x = ta.tensor(data.draw(strategies.arrays(shape)), requires_grad=True)
    p = data.draw(st.sampled_from([0.2, 0.5]))

    def seeded_dropout(x):
        ta.manual_seed(3)  # the same mask on every call, so finite differences see one linear map
        return dropout(x, p)

    assert ta.gradcheck(seeded_dropout, [x])


def test_dropout_repeats_under_manual_seed():
    x = ta.tensor(np.ones((8, 8)))
    ta.manual_seed(5)
    first = to_numpy(dropout(x))
    ta.manual_seed(5)
    np.testing.assert_array_equal(to_numpy(dropout(x)), first)


def test_dropout_is_the_identity_when_not_training_or_p_is_zero():
    x = ta.tensor(np.arange(6.0), requires_grad=True)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert dropout(x, 1.0, training=False) is x


def test_dropout_with_p_one_gives_zeros_and_zero_gradient():
    x = ta.tensor(np.arange(1.0, 7.0), requires_grad=True)
    out = dropout(x, 1.0)
    out.sum().backward()
    assert to_numpy(out).tolist() == [0.0] * 6 and to_numpy(x.grad).tolist() == [0.0] * 6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_keeps_dtype(dtype):
    x = ta.tensor(np.ones((4, 5)), dtype=dtype, requires_grad=True)
    out = dropout(x, 0.25)
    out.sum().backward()
    assert out.dtype == x.grad.dtype == np.dtype(dtype)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.5", None, True])
def test_dropout_rejects_bad_probabilities(p):
    with pytest.raises(ValueError, match="between 0 and 1"):
        dropout(ta.tensor(np.ones(3)), p)

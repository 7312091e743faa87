"""Edge cases found by the property tests, kept as regressions."""

import numpy as np
import pytest

import tinyae as ta
from tinyae.testing.strategies import arrays
from tests.conftest import to_numpy
from hypothesis import given


def test_power_zero_has_zero_gradient_everywhere():
    x = ta.tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**0).sum().backward()
    assert to_numpy(x.grad).tolist() == [0.0, 0.0]
    base = ta.tensor(np.array([0.0, 2.0]), requires_grad=True)
    exponent = ta.tensor(np.array([0.0, 1.0]), requires_grad=True)
    (base**exponent).sum().backward()
    np.testing.assert_allclose(to_numpy(base.grad), [0.0, 1.0])
    np.testing.assert_allclose(to_numpy(exponent.grad), [0.0, 2 * np.log(2.0)])


def test_a_zero_base_and_a_negative_exponent_give_nan_in_b_silently_whether_the_base_is_a_number_or_not():
    """∂(aᵇ)/∂b = aᵇ ln a at a = 0, b = −1 is ∞ · (−∞): NaN, with no warning (the suite turns warnings into
    errors), for a Python number as for a tensor as the base."""
    for base in (0.0, ta.tensor(np.array([0.0]))):
        exponent = ta.tensor(np.array([-1.0]), requires_grad=True)
        with np.errstate(divide="ignore"):  # (the forward's 0^(−1) = inf warns as NumPy's does)
            (base**exponent).sum().backward()
        assert np.isnan(to_numpy(exponent.grad)).all()


def test_logsumexp_of_infinities_is_infinite_without_warnings():
    assert to_numpy(ta.logsumexp(ta.tensor([-np.inf, -np.inf]))) == -np.inf
    x = ta.tensor([np.inf, 1000.0], requires_grad=True)
    assert to_numpy(ta.logsumexp(x)) == np.inf


def test_where_with_two_numbers_uses_the_default_dtype():
    condition = ta.tensor([1.0, -1.0]) > 0
    result = ta.where(condition, 1.0, 0.0)
    assert result.dtype == np.float32 and to_numpy(result).tolist() == [1.0, 0.0]


def test_index_array_changed_after_the_forward_does_not_change_the_gradient():
    x = ta.tensor(np.zeros(3), requires_grad=True)
    index = np.array([0, 0])
    y = x[index]
    index[:] = 2
    y.sum().backward()
    assert to_numpy(x.grad).tolist() == [2.0, 0.0, 0.0]


def test_split_accepts_numpy_integers_and_clip_accepts_tensor_bounds():
    parts = ta.tensor([1.0, 2.0, 3.0, 4.0]).split(np.int64(2))
    assert [to_numpy(p).tolist() for p in parts] == [[1.0, 2.0], [3.0, 4.0]]
    assert to_numpy(ta.tensor([1.0, 5.0]).clip(ta.tensor(2.0), 4)).tolist() == [2.0, 4.0]


@given(arrays((6,), distinct=True))
def test_distinct_arrays_are_really_distinct(values):
    assert np.diff(np.sort(values)).min() >= 2e-2 - 1e-12


@pytest.mark.parametrize("bad", [lambda: ta.split(ta.tensor([1.0, 2.0, 3.0]), 2), lambda: ta.tensor(1.0).split(1)])
def test_split_errors(bad):
    with pytest.raises(ValueError):
        bad()

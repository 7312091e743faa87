"""The gradient checker itself: it passes correct gradients and catches wrong ones."""

import numpy as np
import pytest

import tinyae as ta
from tinyae.autograd import Function


class WrongSquare(Function):
    """y = x², with a backward that forgets the factor 2 (a negative control)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad_out):
        return grad_out * self.x


def random_leaf(shape, seed=0, dtype="float64"):
    values = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return ta.tensor(values, requires_grad=True)


def test_correct_gradient_passes():
    assert ta.gradcheck(lambda a, b: (a @ b).tanh(), [random_leaf((3, 4)), random_leaf((4, 2), 1)]) is True


def test_wrong_backward_is_caught_and_named():
    with pytest.raises(ta.GradcheckError) as error:
        ta.gradcheck(lambda x: WrongSquare.apply(x), [random_leaf((2, 3))])
    message = str(error.value)
    for part in ("input 0", "element (", "analytic", "numeric", "max abs error", "max rel error"):
        assert part in message


def test_float32_inputs_are_checked_in_float64():
    x = random_leaf((3,), dtype="float32")
    assert ta.gradcheck(lambda x: x.exp() * 3.0, [x])
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensor is untouched


def test_only_inputs_that_require_grad_are_checked():
    constant = ta.tensor(np.ones((2, 2)))
    assert ta.gradcheck(lambda x, c: x * c, [random_leaf((2, 2)), constant])
    with pytest.raises(ValueError, match="nothing to check"):
        ta.gradcheck(lambda c: c * 2.0, [constant])


def test_tuple_outputs_are_checked_together():
    assert ta.gradcheck(lambda x: (x.exp(), x.sum(axis=0)), [random_leaf((2, 3))])


def test_downcasting_function_is_refused():
    with pytest.raises(ta.GradcheckError, match="float64"):
        ta.gradcheck(lambda x: ta.tensor(x.numpy().astype(np.float32), requires_grad=True), [random_leaf((2,))])


def test_gradient_that_is_missing_counts_as_zero_and_fails():
    x = random_leaf((2,))
    with pytest.raises(ta.GradcheckError):
        ta.gradcheck(lambda x: x.detach() * 2.0 + x * 0.0, [x])


def test_an_input_that_fn_ignores_is_reported_not_passed():
    used, ignored = random_leaf((3,)), random_leaf((2,), seed=1)
    with pytest.raises(ta.GradcheckError, match="does not influence"):
        ta.gradcheck(lambda x, w: x * 2.0, [used, ignored])

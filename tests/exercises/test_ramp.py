"""The ramp's checkers pass on the reference solutions and fail on plausible wrong answers."""

import pytest

import tinyae
from tinyae.backend import array_module
from tinyae.exercises import ramp

from . import solutions_ramp as solutions


def test_numerical_derivative_passes_on_the_central_difference(capsys):
    ramp.check_numerical_derivative(solutions.numerical_derivative)
    assert "✓" in capsys.readouterr().out


def test_numerical_derivative_fails_on_the_one_sided_difference():
    with pytest.raises(AssertionError, match="central difference"):
        ramp.check_numerical_derivative(lambda f, x, h=1e-5: (f(x + h) - f(x)) / h)


def test_softplus_passes_on_the_reference(capsys):
    ramp.check_softplus_function(solutions.Softplus)
    assert "gradcheck certifies" in capsys.readouterr().out


class SoftplusWithoutGradOut(solutions.Softplus):
    """The derivative, but not multiplied by the gradient that flows in."""

    def backward(self, grad_out):
        return self.sigmoid + 0 * grad_out


class SoftplusWithExpDerivative(solutions.Softplus):
    """eˣ instead of σ(x)."""

    def backward(self, grad_out):
        return grad_out * self.sigmoid / (1 - self.sigmoid)


class SoftplusWrongForward(tinyae.Function):
    def forward(self, x):
        return array_module(x).log(1 + x * x)

    def backward(self, grad_out):
        return grad_out


@pytest.mark.parametrize("wrong", [SoftplusWithoutGradOut, SoftplusWithExpDerivative])
def test_softplus_fails_on_a_wrong_backward(wrong):
    with pytest.raises(AssertionError, match="disagrees with finite differences"):
        ramp.check_softplus_function(wrong)


def test_softplus_fails_on_a_wrong_forward_or_a_non_function():
    with pytest.raises(AssertionError, match="forward is not"):
        ramp.check_softplus_function(SoftplusWrongForward)
    with pytest.raises(AssertionError, match="subclass of tinyae.Function"):
        ramp.check_softplus_function(lambda x: x)


def test_an_unanswered_exercise_is_reported_not_failed(capsys):
    def numerical_derivative(f, x):
        raise NotImplementedError

    class MySoftplus(tinyae.Function):  # forward and backward not written yet
        pass

    assert ramp.check_numerical_derivative(numerical_derivative) is None
    assert ramp.check_softplus_function(MySoftplus) is None
    out = capsys.readouterr().out
    assert out.count("not answered yet") == 2 and "✓" not in out

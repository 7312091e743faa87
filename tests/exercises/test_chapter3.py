"""The chapter 3 checkers pass the reference solutions and fail plausible wrong answers, with a hint."""

import numpy as np
import pytest

import tinyae
from tinyae.backend import array_module
from tinyae.exercises import chapter3

from . import solutions_chapter3 as solutions


def test_decoder_jacobian_reference_passes(capsys):
    chapter3.check_decoder_jacobian(solutions.decoder_jacobian)
    assert "Exercise 3.1: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda W, b, z: W, "you returned W"),
    (lambda W, b, z: solutions.decoder_jacobian(W, b, z).T, "transposed"),
    (lambda W, b, z: (0.5 * np.tanh(0.5 * (W @ z + b)) + 0.5)[:, None] * W, "not x̂ or 1 − x̂ alone"),
    (lambda W, b, z: solutions.decoder_jacobian(W, b, z) * 2, "diag(x̂ ⊙ (1 − x̂)) W"),
])
def test_decoder_jacobian_wrong_answers_fail(wrong, hint):
    with pytest.raises(AssertionError, match="Exercise 3.1") as failure:
        chapter3.check_decoder_jacobian(wrong)
    assert hint in str(failure.value)


def test_decoder_jacobian_open_exercise_is_reported(capsys):
    def stub(W, b, z):
        raise NotImplementedError("your answer")

    chapter3.check_decoder_jacobian(stub)
    assert "not answered yet" in capsys.readouterr().out


def test_reparameterize_reference_passes(capsys):
    chapter3.check_reparameterize(solutions.Reparameterize)
    assert "Exercise 3.2: correct" in capsys.readouterr().out


class ForgetsTheHalf(solutions.Reparameterize):
    """∂z/∂logvar written as exp(½ logvar)·ε: the chain rule's ½ from the exponent is missing."""

    def backward(self, grad_out):
        grad_mu, grad_logvar, _ = super().backward(grad_out)
        return grad_mu, None if grad_logvar is None else 2 * grad_logvar, None


class StdIsExpLogvar(tinyae.Function):
    """σ taken as exp(logvar) (the variance's exponent forgotten), forward and backward consistent."""

    def forward(self, mu, logvar, eps):
        self.std_eps = array_module(logvar).exp(logvar) * eps
        return mu + self.std_eps

    def backward(self, grad_out):
        return grad_out, grad_out * self.std_eps, None


class NoGradientForMu(solutions.Reparameterize):
    def backward(self, grad_out):
        _, grad_logvar, _ = super().backward(grad_out)
        return None, grad_logvar, None


@pytest.mark.parametrize("wrong, message", [
    (ForgetsTheHalf, "finite differences"),
    (StdIsExpLogvar, "forward differs"),
    (NoGradientForMu, "finite differences"),
])
def test_reparameterize_wrong_answers_fail(wrong, message):
    with pytest.raises(AssertionError, match=message):
        chapter3.check_reparameterize(wrong)


def test_reparameterize_rejects_an_instance():
    with pytest.raises(AssertionError, match="pass your class itself"):
        chapter3.check_reparameterize(solutions.Reparameterize())


def test_reparameterize_open_exercise_is_reported(capsys):
    class Stub(tinyae.Function):
        def forward(self, mu, logvar, eps):
            raise NotImplementedError("your answer")

    chapter3.check_reparameterize(Stub)
    assert "not answered yet" in capsys.readouterr().out

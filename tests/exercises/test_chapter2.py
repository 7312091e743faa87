"""Chapter 2's checkers pass on the reference solutions and fail on plausible wrong answers."""

import pytest

import tinyae
import tinyae.functional as F
from tinyae.exercises import chapter2

from . import solutions_chapter2 as solutions


def test_tutorial_mse_passes_on_the_reference(capsys):
    chapter2.check_tutorial_mse(solutions.tutorial_mse)
    assert "✓" in capsys.readouterr().out


def test_tutorial_mse_fails_on_pytorchs_default_mean():
    with pytest.raises(AssertionError, match="reduction='mean'"):
        chapter2.check_tutorial_mse(lambda x, x_hat: F.mse_loss(x_hat, x))


def test_tutorial_mse_fails_on_the_plain_sum():
    with pytest.raises(AssertionError, match="divide the sum by the batch size"):
        chapter2.check_tutorial_mse(lambda x, x_hat: F.mse_loss(x_hat, x, reduction="sum"))


def test_tutorial_mse_fails_off_the_graph():
    with pytest.raises(AssertionError, match="does not depend on x_hat"):
        chapter2.check_tutorial_mse(lambda x, x_hat: tinyae.tensor(solutions.tutorial_mse(x, x_hat).numpy()))


def test_tutorial_mse_fails_with_the_right_value_but_no_gradient():
    def constant(x, x_hat):
        return tinyae.tensor(solutions.tutorial_mse(x, x_hat).item(), dtype=x.dtype) + 0 * x_hat.sum()

    with pytest.raises(AssertionError, match="gradient in x_hat is not"):
        chapter2.check_tutorial_mse(constant)


def test_reparameterize_passes_on_the_reference(capsys):
    chapter2.check_reparameterize(solutions.reparameterize)
    assert "gradcheck certifies" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda mu, logvar, eps: mu + logvar.exp() * eps, "σ² as the standard deviation"),
    (lambda mu, logvar, eps: mu + logvar * eps, "logvar as σ itself"),
])
def test_reparameterize_fails_on_a_wrong_sigma(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        chapter2.check_reparameterize(wrong)


def test_reparameterize_fails_off_the_graph():
    def detached(mu, logvar, eps):
        return mu + tinyae.tensor(solutions.reparameterize(mu, logvar, eps).numpy() - mu.numpy())

    with pytest.raises(AssertionError, match="wrong gradient"):
        chapter2.check_reparameterize(detached)


def test_an_unanswered_exercise_is_reported_not_failed(capsys):
    def unanswered(*args):
        raise NotImplementedError

    chapter2.check_tutorial_mse(unanswered)
    chapter2.check_reparameterize(unanswered)
    assert capsys.readouterr().out.count("not answered yet") == 2

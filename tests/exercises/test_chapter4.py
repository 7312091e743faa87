"""The chapter 4 checkers pass the reference solutions and fail plausible wrong answers, with a hint."""

import math

import numpy as np
import pytest

from tinyae.exercises import chapter4

from . import solutions_chapter4 as solutions


def test_gaussian_kl_reference_passes(capsys):
    chapter4.check_gaussian_kl(solutions.kl_diag_gaussians)
    assert "Exercise 4.1: correct" in capsys.readouterr().out


def swapped(mu_q, logvar_q, mu_p, logvar_p):
    return solutions.kl_diag_gaussians(mu_p, logvar_p, mu_q, logvar_q)


def variance_ratio_forgotten(mu_q, logvar_q, mu_p, logvar_p):
    """(μ_q − μ_p)² not divided by σ_p²."""
    return 0.5 * (logvar_p - logvar_q + np.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 - 1).sum(axis=-1)


@pytest.mark.parametrize("wrong, hint", [
    (swapped, "that is KL(p ‖ q)"),
    (variance_ratio_forgotten, "Monte-Carlo estimate"),
    (lambda *args: solutions.kl_diag_gaussians(*args).sum(), "shape (N,)"),
    (lambda mu_q, logvar_q, mu_p, logvar_p: solutions.kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p) + 0.5,
     "KL(q ‖ q) must be 0"),
])
def test_gaussian_kl_wrong_answers_fail(wrong, hint):
    with pytest.raises(AssertionError, match="Exercise 4.1") as failure:
        chapter4.check_gaussian_kl(wrong)
    assert hint in str(failure.value)


def test_gaussian_kl_open_exercise_is_reported(capsys):
    def stub(*args):
        raise NotImplementedError("your answer")

    chapter4.check_gaussian_kl(stub)
    assert "not answered yet" in capsys.readouterr().out


def test_elbo_reference_passes(capsys):
    chapter4.check_elbo(solutions.elbo)
    out = capsys.readouterr().out
    assert "Exercise 4.2: correct" in out


def without_decoder_variance(x, m, log_v, w, b, s):
    """E_q[(x − w z − b)²] taken as (x − w m − b)²: the w² v term forgotten."""
    return solutions.elbo(x, m, log_v, w, b, s) + w * w * math.exp(log_v) / (2 * s * s)


def kl_added(x, m, log_v, w, b, s):
    v = math.exp(log_v)
    return solutions.elbo(x, m, log_v, w, b, s) + (m * m + v - log_v - 1)


@pytest.mark.parametrize("wrong, message", [
    (without_decoder_variance, "exceeds log p"),
    (kl_added, "exceeds log p"),
    (lambda x, m, log_v, w, b, s: solutions.elbo(x, m, log_v, w, b, s) - 0.1, "KL\\(q ‖ p\\(z\\|x\\)\\)"),
])
def test_elbo_wrong_answers_fail(wrong, message):
    with pytest.raises(AssertionError, match=message):
        chapter4.check_elbo(wrong)


def test_elbo_open_exercise_is_reported(capsys):
    def stub(*args):
        raise NotImplementedError("your answer")

    chapter4.check_elbo(stub)
    assert "not answered yet" in capsys.readouterr().out

"""Chapter 1's checkers pass on the reference solutions and fail on plausible wrong answers."""

import pytest

from tinyae.exercises import chapter1

from . import solutions_chapter1 as solutions


def test_conv_output_size_passes_on_the_reference(capsys):
    chapter1.check_conv_output_size(solutions.conv_output_size)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda n, k, s, p: (n - k) // s + 1,                 # padding forgotten
    lambda n, k, s, p: round((n + 2 * p - k) / s) + 1,   # rounded instead of floored
    lambda n, k, s, p: (n + 2 * p - k) / s + 1,          # a float
])
def test_conv_output_size_fails_on_a_wrong_formula(wrong):
    with pytest.raises(AssertionError):
        chapter1.check_conv_output_size(wrong)


def test_conv_transpose_output_size_passes_on_the_reference(capsys):
    chapter1.check_conv_transpose_output_size(solutions.conv_transpose_output_size)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda n, k, s, p: n * s,                         # "stride 2 doubles the size"
    lambda n, k, s, p: (n - 1) * s + k + 2 * p,       # padding added, not removed
])
def test_conv_transpose_output_size_fails_on_a_wrong_formula(wrong):
    with pytest.raises(AssertionError, match="conv_transpose2d makes"):
        chapter1.check_conv_transpose_output_size(wrong)


def test_an_unanswered_exercise_is_reported_not_failed(capsys):
    def unanswered(n, kernel, stride, padding):
        raise NotImplementedError

    chapter1.check_conv_output_size(unanswered)
    chapter1.check_conv_transpose_output_size(unanswered)
    assert capsys.readouterr().out.count("not answered yet") == 2

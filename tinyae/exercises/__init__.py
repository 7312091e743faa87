"""Checkers for the exercises at the end of each page of the tutorial walkthrough (docs/tutorial/).

One module per chapter: ``ramp`` (00, derivatives by hand and by the engine), ``chapter1`` (01, the
structure), ``chapter2`` (02, losses and regularization), ``chapter3`` (03, forward, backward and VAE
training) and ``chapter4`` (04, the mathematics and the worked example). A checker is a function you call
with your answer, e.g. ``from tinyae.exercises import ramp; ramp.check_numerical_derivative(my_derivative)``:
it prints a verdict and raises AssertionError with a hint when the answer is wrong.
"""

from __future__ import annotations

import functools


def checker(check):
    """Make ``check(answer)`` a checker: an answer not written yet (a stub that raises NotImplementedError
    when called, like ``tinyae.Function``'s own ``forward``) prints that it is unanswered instead of failing,
    so a page runs from top to bottom before the reader has done its exercises."""

    @functools.wraps(check)
    def run(answer, *args, **kwargs):
        try:
            return check(answer, *args, **kwargs)
        except NotImplementedError:
            print(f"… {check.__name__}: not answered yet (the answer raises NotImplementedError): write it, "
                  "then run the check again")
            return None

    return run

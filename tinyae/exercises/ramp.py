"""Checkers for the exercises of the ramp (docs/tutorial/00-ramp.md): the numerical derivative, and a
backward of your own certified by the engine.

    from tinyae.exercises import ramp
    ramp.check_numerical_derivative(numerical_derivative)   # numerical_derivative(f, x) -> float
    ramp.check_softplus_function(MySoftplus)                 # a tinyae.Function subclass
"""

from __future__ import annotations

import math

import numpy as np

import tinyae
from tinyae.exercises import checker


@checker
def check_numerical_derivative(numerical_derivative) -> None:
    """``numerical_derivative(f, x)`` must return f'(x) for a smooth f: R → R, to a relative error below
    1e-6 (the central difference (f(x+h) − f(x−h))/2h with h ≈ 1e-5 does it; the one-sided
    (f(x+h) − f(x))/h is off by about h·f''(x)/2 and does not)."""
    cases = [  # (name, f, x, f'(x))
        ("x²", lambda x: x * x, 3.0, 6.0),
        ("sin", math.sin, 0.5, math.cos(0.5)),
        ("exp", math.exp, 1.0, math.e),
        ("1/x", lambda x: 1 / x, 2.0, -0.25),
        ("x³ − 2x", lambda x: x**3 - 2 * x, -1.5, 3 * 1.5**2 - 2),
    ]
    for name, f, x, expected in cases:
        got = numerical_derivative(f, x)
        assert isinstance(got, (float, np.floating)), (
            f"numerical_derivative({name}, {x}) returned {type(got).__name__}; expected a float")
        error = abs(got - expected) / max(abs(expected), 1.0)
        assert error < 1e-6, (
            f"numerical_derivative({name}, {x}) = {got!r}, but the derivative is {expected!r} (relative "
            f"error {error:.1e}, more than 1e-6). A one-sided difference is off by about h·f''(x)/2: use the "
            "central difference (f(x + h) − f(x − h)) / 2h, with h about 1e-5")
    print(f"✓ numerical_derivative is correct on {len(cases)} functions (relative error < 1e-6)")


@checker
def check_softplus_function(softplus_function) -> None:
    """``softplus_function`` must be a ``tinyae.Function`` subclass computing y = log(1 + eˣ) elementwise
    (forward on raw arrays) with the backward ∂L/∂x = ∂L/∂y ⊙ σ(x); certified by ``tinyae.gradcheck``."""
    assert isinstance(softplus_function, type) and issubclass(softplus_function, tinyae.Function), (
        f"expected a subclass of tinyae.Function, got {softplus_function!r}")
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 4)) * 3
    x = tinyae.tensor(values, requires_grad=True)
    y = softplus_function.apply(x)
    assert isinstance(y, tinyae.Tensor) and y.shape == x.shape, (
        f"{softplus_function.__name__}.apply(x) must return a Tensor of x's shape {x.shape}, got "
        f"{getattr(y, 'shape', type(y).__name__)}")
    expected = np.log1p(np.exp(values))
    assert np.allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12), (
        f"the forward is not log(1 + eˣ): at x = {values.flat[0]:.4f} it gives {y.numpy().flat[0]:.6f}, "
        f"expected {expected.flat[0]:.6f}")
    try:
        tinyae.gradcheck(softplus_function.apply, [x])
    except tinyae.GradcheckError as error:
        raise AssertionError(
            f"the backward disagrees with finite differences: {error}. The derivative of log(1 + eˣ) is "
            "eˣ/(1 + eˣ) = σ(x), and the backward must multiply it by grad_out") from None
    print(f"✓ {softplus_function.__name__}: the forward is log(1 + eˣ) and tinyae.gradcheck certifies the "
          "backward")

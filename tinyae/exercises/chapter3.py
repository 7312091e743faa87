"""Checkers for the exercises of chapter 3 of the walkthrough:
docs/tutorial/03-forward-backward-vae-training.md.

Each checker takes your answer and prints a verdict; a wrong answer raises AssertionError with a hint, and
an answer that still raises NotImplementedError is reported as open. Self-contained: it needs only NumPy
and tinyae.

Exercise 3.1  ``decoder_jacobian(W, b, z)``: ∂x̂/∂z of x̂ = sigmoid(W z + b), shape (D, d).
Exercise 3.2  a ``tinyae.Function`` computing z = μ + exp(½ logvar) ⊙ ε with its backward.
"""

from __future__ import annotations

import numpy as np

import tinyae
from tinyae.backend import to_backend
from tinyae.testing.gradcheck import GradcheckError


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * a) + 0.5


def _open(exercise: str, error: NotImplementedError) -> None:
    print(f"{exercise}: not answered yet ({error}). "
          "Write your answer in place of `raise NotImplementedError`.")


def check_decoder_jacobian(decoder_jacobian) -> None:
    """Exercise 3.1: ``decoder_jacobian(W, b, z)`` against central differences of sigmoid(W z + b) in z.

    Shapes: W (D, d), b (D,), z (d,); the answer must be (D, d), entry [i, k] = ∂x̂_i/∂z_k. Checked on
    decoders of several sizes (d = 1 included), to 1e-6.
    """
    rng = np.random.default_rng(31)
    h = 1e-6
    for pixels, latent in ((4, 2), (6, 3), (3, 1), (1, 1), (7, 5)):
        W = rng.standard_normal((pixels, latent))
        b, z = rng.standard_normal(pixels), rng.standard_normal(latent)
        try:
            answer = decoder_jacobian(W.copy(), b.copy(), z.copy())
        except NotImplementedError as error:
            return _open("Exercise 3.1", error)
        answer = np.asarray(answer, dtype=np.float64)
        expected = np.stack([(_sigmoid(W @ (z + h * e) + b) - _sigmoid(W @ (z - h * e) + b)) / (2 * h)
                             for e in np.eye(latent)], axis=1)
        where = f"for D = {pixels} pixels and d = {latent} code units"
        if answer.shape != expected.shape:
            hint = " (transposed? one row per pixel x̂_i, one column per code unit z_k)" \
                if answer.shape == expected.shape[::-1] else ""
            raise AssertionError(f"Exercise 3.1: ∂x̂/∂z must have shape (D, d) = {expected.shape} {where}, "
                                 f"got {answer.shape}{hint}")
        if not np.allclose(answer, expected, rtol=1e-5, atol=1e-6):
            row, col = np.unravel_index(np.argmax(np.abs(answer - expected)), expected.shape)
            x_hat = _sigmoid(W @ z + b)
            if np.allclose(answer, W):
                hint = "you returned W: the sigmoid's slope x̂(1 − x̂) multiplies each row"
            elif np.allclose(answer, x_hat[:, None] * W) or np.allclose(answer, (1 - x_hat)[:, None] * W):
                hint = "sigmoid′(a) = x̂(1 − x̂), not x̂ or 1 − x̂ alone"
            else:
                hint = "∂x̂_i/∂z_k = x̂_i(1 − x̂_i)·W_ik, i.e. diag(x̂ ⊙ (1 − x̂)) W"
            raise AssertionError(f"Exercise 3.1: wrong Jacobian {where}: entry [{row}, {col}] is "
                                 f"{answer[row, col]:.8f}, finite differences give {expected[row, col]:.8f}. "
                                 f"Hint: {hint}")
    print("Exercise 3.1: correct. ∂x̂/∂z = diag(x̂ ⊙ (1 − x̂)) W matches finite differences on 5 decoders.")


def check_reparameterize(function_class) -> None:
    """Exercise 3.2: a ``tinyae.Function`` subclass whose ``apply(mu, logvar, eps)`` is
    z = mu + exp(½ logvar) ⊙ eps, with backward (∂L/∂μ, ∂L/∂logvar, None).

    Checks, in float64 on the current backend: the forward against ``tinyae.reparameterize``; the backward
    with ``tinyae.gradcheck`` (central differences, every element, reentrancy, inputs that need no
    gradient); and the gradients against tinyae's own for one upstream gradient.
    """
    if not (isinstance(function_class, type) and issubclass(function_class, tinyae.Function)):
        raise AssertionError(f"Exercise 3.2: pass your class itself (a subclass of tinyae.Function), got "
                             f"{function_class!r}")
    rng = np.random.default_rng(32)
    for shape in ((5,), (3, 4)):
        mu = tinyae.tensor(rng.standard_normal(shape), requires_grad=True, dtype=np.float64)
        logvar = tinyae.tensor(rng.uniform(-2.0, 1.0, shape), requires_grad=True, dtype=np.float64)
        eps = tinyae.tensor(rng.standard_normal(shape), dtype=np.float64)
        try:
            z = function_class.apply(mu, logvar, eps)
        except NotImplementedError as error:
            return _open("Exercise 3.2", error)
        expected = tinyae.reparameterize(mu, logvar, eps)
        if not isinstance(z, tinyae.Tensor) or tuple(z.shape) != shape:
            raise AssertionError(f"Exercise 3.2: forward must return an array of the inputs' shape {shape}, "
                                 f"got {getattr(z, 'shape', type(z).__name__)}")
        if not np.allclose(z.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12):
            raise AssertionError("Exercise 3.2: forward differs from μ + exp(½ logvar) ⊙ ε: "
                                 f"got {z.numpy().ravel()[:3]}…, expected {expected.numpy().ravel()[:3]}…. "
                                 "Hint: σ = exp(½ logvar), not exp(logvar)")
        try:
            tinyae.gradcheck(lambda m, lv: function_class.apply(m, lv, eps), [mu, logvar])
        except NotImplementedError as error:
            return _open("Exercise 3.2", error)
        except GradcheckError as error:
            raise AssertionError(f"Exercise 3.2: your backward disagrees with finite differences: {error}. "
                                 "Hint: ∂z/∂μ = 1 and ∂z/∂logvar = ½·exp(½ logvar)·ε, each times grad_out"
                                 ) from None
        upstream = rng.standard_normal(shape)
        grads = []
        for op in (function_class.apply, tinyae.reparameterize):
            mu.grad = logvar.grad = None
            (op(mu, logvar, eps) * tinyae.tensor(upstream, dtype=np.float64)).sum().backward()
            grads.append((to_backend(mu.grad, "numpy"), to_backend(logvar.grad, "numpy")))
        for name, mine, theirs in zip(("μ", "logvar"), grads[0], grads[1]):
            if not np.allclose(mine, theirs, rtol=1e-10, atol=1e-12):
                raise AssertionError(f"Exercise 3.2: ∂L/∂{name} differs from tinyae.reparameterize's: "
                                     f"{mine.ravel()[:3]}… against {theirs.ravel()[:3]}…")
    print("Exercise 3.2: correct. Your op passes tinyae.gradcheck and equals tinyae.reparameterize "
          "(forward and both gradients).")

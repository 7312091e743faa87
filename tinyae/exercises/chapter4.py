"""Checkers for the exercises of chapter 4 of the walkthrough (docs/tutorial/04-math-and-worked-example.md).

Each checker takes your answer and prints a verdict; a wrong answer raises AssertionError with a hint, and
an answer that still raises NotImplementedError is reported as open. Self-contained: NumPy and tinyae.

Exercise 4.1  ``kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p)``:
              KL(N(μ_q, diag e^λ_q) ‖ N(μ_p, diag e^λ_p)) per row, checked against a Monte-Carlo estimate
              and against tinyae's ``gaussian_kl``.
Exercise 4.2  ``elbo(x, m, log_v, w, b, s)``: the ELBO of the linear-Gaussian model p(z) = N(0, 1),
              p(x|z) = N(w z + b, s²) with q(z|x) = N(m, v), checked against the exact log p(x).
"""

from __future__ import annotations

import math

import numpy as np

import tinyae
from tinyae import functional as F


def _open(exercise: str, error: NotImplementedError) -> None:
    print(f"{exercise}: not answered yet ({error}). "
          "Write your answer in place of `raise NotImplementedError`.")


def _reference_kl(mu_q, logvar_q, mu_p, logvar_p):
    """½ Σ_j [λ_p − λ_q + (e^λ_q + (μ_q − μ_p)²) e^−λ_p − 1] over the last axis."""
    squared_distance = np.exp(logvar_q) + (mu_q - mu_p) ** 2
    return 0.5 * (logvar_p - logvar_q + squared_distance * np.exp(-logvar_p) - 1).sum(-1)


def _monte_carlo_kl(mu_q, logvar_q, mu_p, logvar_p, samples: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error) of log q(z) − log p(z) over z ~ q, per row (the log 2π terms cancel)."""
    z = mu_q + np.exp(0.5 * logvar_q) * rng.standard_normal((samples, *mu_q.shape))

    def log_density(mu, logvar):
        return -0.5 * (logvar + (z - mu) ** 2 * np.exp(-logvar)).sum(-1)

    log_ratio = log_density(mu_q, logvar_q) - log_density(mu_p, logvar_p)
    return log_ratio.mean(0), log_ratio.std(0) / math.sqrt(samples)


def check_gaussian_kl(kl_diag_gaussians) -> None:
    """Exercise 4.1: ``kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p)`` → KL per row, shape (N,).

    Inputs are NumPy arrays of shape (N, d); logvar = log σ². Checked: the shape, KL(q ‖ q) = 0, agreement
    with a Monte-Carlo estimate E_q[log q(z) − log p(z)] (200,000 draws, within 5 standard errors + 1e-3),
    with the closed form to 1e-8, and with ``tinyae.functional.gaussian_kl`` when p = N(0, I).
    """
    rng = np.random.default_rng(41)
    mu_q, mu_p = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    logvar_q, logvar_p = rng.uniform(-1.5, 1.0, (4, 3)), rng.uniform(-1.0, 1.0, (4, 3))
    try:
        answer = kl_diag_gaussians(mu_q.copy(), logvar_q.copy(), mu_p.copy(), logvar_p.copy())
    except NotImplementedError as error:
        return _open("Exercise 4.1", error)
    answer = np.asarray(answer, dtype=np.float64)
    if answer.shape != (4,):
        raise AssertionError("Exercise 4.1: return one KL per row, shape (N,) = (4,) for inputs of shape "
                             f"(4, 3); got {answer.shape} (sum over the latent axis, the last one)")
    same = np.asarray(kl_diag_gaussians(mu_q, logvar_q, mu_q, logvar_q), dtype=np.float64)
    if not np.allclose(same, 0, atol=1e-10):
        raise AssertionError(f"Exercise 4.1: KL(q ‖ q) must be 0, got {same}")
    estimate, error = _monte_carlo_kl(mu_q, logvar_q, mu_p, logvar_p, 200_000, rng)
    far = np.abs(answer - estimate) > 5 * error + 1e-3
    if far.any():
        row = int(np.argmax(far))
        swapped = _reference_kl(mu_p, logvar_p, mu_q, logvar_q)
        hint = ("that is KL(p ‖ q): the KL is not symmetric, the expectation is under q"
                if np.allclose(answer, swapped)
                else "KL(q ‖ p) = ½ Σ [log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²)/σ_p² − 1]")
        raise AssertionError(f"Exercise 4.1: row {row}: your KL is {answer[row]:.5f}, a Monte-Carlo "
                             f"estimate E_q[log q(z) − log p(z)] gives {estimate[row]:.5f} "
                             f"± {error[row]:.5f}. Hint: {hint}")
    closed_form = _reference_kl(mu_q, logvar_q, mu_p, logvar_p)
    if not np.allclose(answer, closed_form, rtol=1e-8, atol=1e-10):
        raise AssertionError("Exercise 4.1: close to the Monte-Carlo estimate but not equal to the closed "
                             f"form to 1e-8: {answer} against {closed_form}")
    standard = np.zeros_like(mu_q)
    to_standard = np.asarray(kl_diag_gaussians(mu_q, logvar_q, standard, standard))
    tinyae_kl = F.gaussian_kl(tinyae.tensor(mu_q, dtype=np.float64),
                              tinyae.tensor(logvar_q, dtype=np.float64), reduction="none").sum(axis=1).numpy()
    if not np.allclose(to_standard, tinyae_kl, rtol=1e-8, atol=1e-10):
        raise AssertionError(f"Exercise 4.1: with p = N(0, I) your KL {to_standard} differs from "
                             f"tinyae.functional.gaussian_kl's {tinyae_kl}")
    print("Exercise 4.1: correct. Monte Carlo (200,000 draws) against your closed form, per row:")
    for row in range(4):
        print(f"  {estimate[row]:.5f} ± {error[row]:.5f}   vs   {answer[row]:.5f}")
    print("  and with p = N(0, I) it equals tinyae.functional.gaussian_kl (the VAE's KL term).")


def _log_evidence(x, w, b, s):
    """log p(x) = log N(x; b, w² + s²), the marginal of z ~ N(0, 1), x | z ~ N(w z + b, s²)."""
    variance = w * w + s * s
    return -0.5 * (math.log(2 * math.pi * variance) + (x - b) ** 2 / variance)


def _posterior(x, w, b, s):
    """(mean, variance) of p(z|x), Gaussian: mean w(x − b)/(w² + s²), variance s²/(w² + s²)."""
    variance = w * w + s * s
    return w * (x - b) / variance, s * s / variance


def check_elbo(elbo) -> None:
    """Exercise 4.2: ``elbo(x, m, log_v, w, b, s)`` for p(z) = N(0, 1), p(x|z) = N(w z + b, s²) and
    q(z|x) = N(m, v), v = e^log_v (all Python floats; return a float).

    Checked on several models and several q: ELBO ≤ log p(x) = log N(x; b, w² + s²); equality when q is the
    exact posterior; and log p(x) − ELBO = KL(q ‖ p(z|x)) (the identity of section 4.2), to 1e-8.
    """
    rng = np.random.default_rng(42)
    rows = []
    for _ in range(6):
        x, w, b = (float(v) for v in rng.standard_normal(3) * (2.0, 1.5, 1.0))
        s = float(rng.uniform(0.3, 1.5))
        post_mean, post_var = _posterior(x, w, b, s)
        trials = [(post_mean, math.log(post_var))]  # the exact posterior first, then three other q
        trials += [(float(rng.normal(post_mean, 1.0)), float(rng.uniform(-2, 1))) for _ in range(3)]
        for m, log_v in trials:
            try:
                value = elbo(x, m, log_v, w, b, s)
            except NotImplementedError as error:
                return _open("Exercise 4.2", error)
            value = float(value)
            log_px = _log_evidence(x, w, b, s)
            v = math.exp(log_v)
            gap = 0.5 * (math.log(post_var / v) + (v + (m - post_mean) ** 2) / post_var - 1)  # KL(q ‖ p(z|x))
            where = f"x = {x:.3f}, w = {w:.3f}, b = {b:.3f}, s = {s:.3f}, q = N({m:.3f}, e^{log_v:.3f})"
            if value > log_px + 1e-9:
                raise AssertionError(f"Exercise 4.2: ELBO {value:.6f} exceeds log p(x) = {log_px:.6f} at "
                                     f"{where}: a lower bound cannot. "
                                     "Hint: E_q[(x − w z − b)²] = (x − w m − b)² + w² v")
            if abs((log_px - value) - gap) > 1e-8:
                raise AssertionError(f"Exercise 4.2: at {where}, log p(x) − ELBO = {log_px - value:.8f} but "
                                     f"KL(q ‖ p(z|x)) = {gap:.8f}. Hint: ELBO = E_q[log N(x; w z + b, s²)] − "
                                     "KL(N(m, v) ‖ N(0, 1)), both in closed form")
            rows.append((log_px, value, log_px - value, gap))
    print("Exercise 4.2: correct. log p(x) = ELBO + KL(q ‖ p(z|x)) on 6 models × 4 choices of q "
          "(the first q of each model is the exact posterior):")
    print(f"  {'log p(x)':>10} {'ELBO':>10} {'log p(x) − ELBO':>16} {'KL(q ‖ p(z|x))':>15}")
    for row in rows[:8]:
        print(f"  {row[0]:10.5f} {row[1]:10.5f} {row[2]:16.8f} {row[3]:15.8f}")

"""Reference solutions of the chapter 4 exercises (docs/tutorial/04-math-and-worked-example.md)."""

import math

import numpy as np


def kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(μ_q, diag σ_q²) ‖ N(μ_p, diag σ_p²))
    = ½ Σ_j [log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²)/σ_p² − 1], per row."""
    ratio = (np.exp(logvar_q) + (mu_q - mu_p) ** 2) / np.exp(logvar_p)
    return 0.5 * (logvar_p - logvar_q + ratio - 1).sum(axis=-1)


def elbo(x, m, log_v, w, b, s):
    """E_q[log N(x; w z + b, s²)] − KL(N(m, v) ‖ N(0, 1)) with E_q[(x − w z − b)²] = (x − w m − b)² + w² v."""
    v = math.exp(log_v)
    expected_squared_error = (x - w * m - b) ** 2 + w * w * v
    expected_log_likelihood = -0.5 * math.log(2 * math.pi * s * s) - expected_squared_error / (2 * s * s)
    kl = 0.5 * (m * m + v - log_v - 1)
    return expected_log_likelihood - kl

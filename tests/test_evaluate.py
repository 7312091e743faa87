"""tinyae.app.evaluate: the importance-weighted log-likelihood on a linear-Gaussian model whose exact
log-likelihood is known, KL per dimension and active units by hand, and eval of a tiny trained VAE."""

import math

import numpy as np
import pytest

import tinyae
from tinyae.app import evaluate
from tinyae.data import Batches
from tinyae.models import VAE
from tests.conftest import to_numpy

LATENT, OBSERVED, NOISE_STD = 2, 3, 0.5


class LinearGaussian:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, σ²I): exactly log p(x) = log N(x; b, WWᵀ + σ²I).

    The exact posterior is N(m, S) with S = (I + WᵀW/σ²)⁻¹ and m = S Wᵀ(x − b)/σ². ``encode`` returns a
    diagonal q = N(m + shift, variance_scale·diag S): by default deliberately imperfect, off by about one
    posterior standard deviation and too narrow, as VAE posteriors tend to be. With orthogonal
    columns of W (``diagonal_posterior``) S is diagonal, and shift 0, scale 1 make q the exact posterior.
    """

    def __init__(self, shift=0.5, variance_scale=0.8, diagonal_posterior=False, seed=0):
        rng = np.random.default_rng(seed)
        self.weight = rng.normal(size=(OBSERVED, LATENT))
        if diagonal_posterior:
            self.weight = np.linalg.qr(self.weight)[0] * [2.0, 0.7]
        self.bias = rng.normal(size=OBSERVED)
        covariance = np.linalg.inv(np.eye(LATENT) + self.weight.T @ self.weight / NOISE_STD**2)
        self.posterior_map = covariance @ self.weight.T / NOISE_STD**2  # m = posterior_map @ (x − b)
        self.q_logvar = np.log(variance_scale * np.diag(covariance))
        self.shift = shift

    def sample(self, n, seed=1):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, LATENT))
        return z @ self.weight.T + self.bias + NOISE_STD * rng.normal(size=(n, OBSERVED))

    def exact_log_likelihood(self, x):
        covariance = self.weight @ self.weight.T + NOISE_STD**2 * np.eye(OBSERVED)
        centered = x - self.bias
        mahalanobis = np.einsum("ni,ni->n", centered, np.linalg.solve(covariance, centered.T).T)
        return -0.5 * (mahalanobis + np.linalg.slogdet(covariance)[1] + OBSERVED * math.log(2 * math.pi))

    def encode(self, x):
        posterior_map = tinyae.tensor(self.posterior_map.T, dtype="float64")
        mu = (x - tinyae.tensor(self.bias, dtype="float64")) @ posterior_map
        logvar = tinyae.tensor(np.broadcast_to(self.q_logvar, mu.shape), dtype="float64")
        return mu + self.shift, logvar

    def log_likelihood(self, x, z):
        mean = z @ tinyae.tensor(self.weight.T, dtype="float64") + tinyae.tensor(self.bias, dtype="float64")
        squared = ((x - mean) ** 2).sum(axis=1)
        return squared * (-0.5 / NOISE_STD**2) - 0.5 * OBSERVED * math.log(2 * math.pi * NOISE_STD**2)


def iwae(model, x, k, max_rows=evaluate.MAX_ROWS, seed=0):
    tinyae.manual_seed(seed)
    estimate = evaluate.importance_weighted_log_likelihood(x, model.encode, model.log_likelihood, k, max_rows)
    return to_numpy(estimate)


def test_importance_weighted_estimate_approaches_the_exact_log_likelihood():
    model = LinearGaussian()
    host_x = model.sample(256)
    x = tinyae.tensor(host_x, dtype="float64")
    exact = model.exact_log_likelihood(host_x)
    # mean over the images of L_k(x) − log p(x): about −0.52, −0.20, −0.05, −0.008 for k = 1, 10, 100, 1000
    gaps = [float(np.mean(iwae(model, x, k) - exact)) for k in (1, 10, 100, 1000)]
    assert gaps == sorted(gaps), f"the bound should grow with k: {gaps}"
    assert gaps[-1] <= 0.005  # a lower bound on average, up to noise
    assert gaps[0] < -0.3 and abs(gaps[-1]) < abs(gaps[0]) / 20, gaps


def test_importance_weighted_estimate_is_the_same_whatever_the_chunking():
    model = LinearGaussian()
    x = tinyae.tensor(model.sample(5), dtype="float64")
    whole = iwae(model, x, 10)
    for max_rows in (1, 7, 20, 33):  # one image in chunks of samples; several images per chunk
        np.testing.assert_allclose(iwae(model, x, 10, max_rows), whole, rtol=0, atol=1e-12)


def test_importance_weighted_estimate_of_a_perfect_posterior_is_exact_for_any_k():
    """With q(z|x) = p(z|x) every weight equals p(x): even L_1 is exact (a zero-variance estimator)."""
    model = LinearGaussian(shift=0.0, variance_scale=1.0, diagonal_posterior=True)
    host_x = model.sample(8)
    np.testing.assert_allclose(iwae(model, tinyae.tensor(host_x, dtype="float64"), 3),
                               model.exact_log_likelihood(host_x), atol=1e-9)


def test_kl_per_dimension_and_active_units_by_hand():
    mu = tinyae.tensor([[1.0, 0.0, 0.1], [-1.0, 0.0, 0.1], [1.0, 0.0, 0.3], [-1.0, 0.0, 0.3]])
    logvar = tinyae.tensor([[0.0, math.log(2), 0.0]] * 4)
    # KL_d = mean_n ½(μ² + σ² − log σ² − 1): d0 ½·1, d1 ½(2 − log 2 − 1), d2 ½·mean(0.01, 0.09)
    np.testing.assert_allclose(to_numpy(evaluate.kl_per_dimension(mu, logvar)),
                               [0.5, 0.5 * (1 - math.log(2)), 0.025], rtol=1e-6)
    variances = to_numpy(evaluate.posterior_mean_variance(mu))
    np.testing.assert_allclose(variances, [1.0, 0.0, 0.01], atol=1e-7)  # d2: exactly at the threshold
    assert int((variances > evaluate.ACTIVE_THRESHOLD + 1e-6).sum()) == 1


def test_the_decoder_log_likelihood_matches_the_training_reconstruction_loss():
    for likelihood in ("bernoulli", "gaussian"):
        tinyae.manual_seed(0)
        model = VAE(input_dim=6, hidden=5, latent_dim=2, likelihood=likelihood)
        x = tinyae.tensor(np.random.default_rng(0).uniform(size=(4, 6)))
        z = tinyae.tensor(np.random.default_rng(1).normal(size=(4, 2)))
        per_row = evaluate.decoder_log_likelihood(model)(x, z)
        assert per_row.shape == (4,)
        reconstruction_loss = float(model.reconstruction_loss(model.decode(z), x))
        np.testing.assert_allclose(-float(per_row.mean()), reconstruction_loss, rtol=1e-5)


def test_evaluate_vae_reports_consistent_numbers():
    tinyae.manual_seed(0)
    model = VAE(input_dim=16, hidden=8, latent_dim=3)
    batches = Batches(np.random.default_rng(0).uniform(size=(30, 4, 4)), batch_size=12)
    seen = []
    report = evaluate.evaluate_vae(model, batches, num_samples=20, max_rows=50, on_batch=seen.append)
    assert seen == [12, 24, 30]
    assert report["negative_elbo"] == pytest.approx(report["reconstruction"] + report["kl"])
    assert report["kl"] == pytest.approx(sum(report["kl_per_dimension"]))
    assert report["negative_log_likelihood"] < report["negative_elbo"]  # IWAE is the tighter bound
    assert len(report["posterior_mean_variance"]) == 3 and 0 <= report["active_units"] <= 3

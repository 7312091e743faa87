"""Evaluation on the test set (``tinyae eval``): the negative ELBO and its parts, an importance-weighted
estimate of log p(x), the KL per latent dimension and the number of active units; for a conditional VAE
also how often its samples show the digit asked for (``tinyae.app.classifier``, ``generated_digit_lines``).

Importance weighting (Burda, Grosse & Salakhutdinov 2016): with z_1..z_k drawn from q(z|x),

    log p(x) ≈ L_k(x) = logsumexp_i [log p(x|z_i) + log p(z_i) − log q(z_i|x)] − log k.

E[L_1] is the ELBO; E[L_k] ≤ log p(x) and increases with k, reaching log p(x) as k → ∞ when the weights
p(x, z)/q(z|x) are bounded. Everything is computed on the model's backend and read back once at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .. import functional as F
from .. import random
from . import train
from ..autograd import no_grad
from ..data import Batches
from ..functions import concatenate, logsumexp, stack
from ..models import Autoencoder
from ..tensor import Tensor

MAX_ROWS = 10_000  # decoder rows (images × samples) at once: ~300 MB for MNIST; larger is no faster on CPU
ACTIVE_THRESHOLD = 0.01  # a latent dimension is active when Var_x[μ_d(x)] exceeds it (Burda et al.)

Encoder = Callable[[Tensor], tuple[Tensor, Tensor]]  # x (N, ...) → (μ, log σ²), each (N, D)
# (x rows (R, ...), z rows (R, D), *condition rows) → log p(x|z), (R,)
LogLikelihood = Callable[..., Tensor]


def importance_weighted_log_likelihood(x: Tensor, encode: Encoder, log_likelihood: LogLikelihood,
                                       num_samples: int, max_rows: int = MAX_ROWS,
                                       condition: tuple[Tensor, ...] = ()) -> Tensor:
    """L_k(x) for each image: a Tensor (N,) on x's backend (no graph is recorded, nothing read back).

    q(z|x) = N(μ, diag σ²) from ``encode``; p(z) = N(0, I); p(x|z) from ``log_likelihood``, which pairs
    x rows with z rows. z = μ + σ ⊙ ε with ε ~ N(0, I) from ``tinyae.random`` (``manual_seed`` repeats it).
    The log 2π terms cancel: log p(z) − log q(z|x) = ½ Σ_d (log σ²_d + ε_d² − z_d²).
    At most ``max_rows`` rows reach the decoder at once: ⌊max_rows/k⌋ images with all k samples each, or,
    when k > max_rows, one image at a time in chunks of samples merged by a running logsumexp.
    ``condition``: a conditional model's extra inputs (its labels, (N,)), given to ``encode`` and, repeated
    as x is, to ``log_likelihood``: then every p and q above is conditioned on them, and L_k estimates
    log p(x|y).
    """
    if num_samples < 1 or max_rows < 1:
        raise ValueError(f"need num_samples >= 1 and max_rows >= 1, got {num_samples} and {max_rows}")
    with no_grad():
        mu, logvar = encode(x, *condition)
        images_per_chunk = max(1, max_rows // num_samples)
        estimates = []
        for start in range(0, len(x), images_per_chunk):
            rows = slice(start, start + images_per_chunk)
            estimates.append(_log_mean_weight(x[rows], mu[rows], logvar[rows], log_likelihood, num_samples,
                                              max_rows, tuple(inputs[rows] for inputs in condition)))
    return estimates[0] if len(estimates) == 1 else concatenate(estimates)


def repeat_rows(x: Tensor, samples: int) -> Tensor:
    """(images, ...) → (images·samples, ...): each row repeated ``samples`` times in a row."""
    images, shape = x.shape[0], x.shape[1:]
    return x.reshape(images, 1, *shape).broadcast_to((images, samples, *shape)).reshape(images * samples, *shape)


def _log_mean_weight(x: Tensor, mu: Tensor, logvar: Tensor, log_likelihood: LogLikelihood,
                     num_samples: int, max_rows: int, condition: tuple[Tensor, ...]) -> Tensor:
    """log (1/k) Σ_i w_i for a chunk of images, drawing the k samples in chunks of ≤ max_rows rows."""
    images, dims = mu.shape
    mu, logvar = mu.reshape(images, 1, dims), logvar.reshape(images, 1, dims)
    std = (logvar * 0.5).exp()
    samples_per_chunk = min(num_samples, max_rows // images)
    log_sum = None
    for start in range(0, num_samples, samples_per_chunk):
        samples = min(samples_per_chunk, num_samples - start)
        eps = Tensor(random.standard_normal((images, samples, dims), dtype=mu.dtype, backend_name=mu.backend))
        z = mu + std * eps
        log_prior_over_posterior = ((logvar + eps * eps - z * z) * 0.5).sum(axis=2)
        log_weights = log_likelihood(repeat_rows(x, samples), z.reshape(images * samples, dims),
                                     *(repeat_rows(inputs, samples) for inputs in condition))
        chunk = logsumexp(log_weights.reshape(images, samples) + log_prior_over_posterior, axis=1)
        log_sum = chunk if log_sum is None else logsumexp(stack([log_sum, chunk], axis=1), axis=1)
    return log_sum - math.log(num_samples)


def decoder_log_likelihood(model: Autoencoder) -> LogLikelihood:
    """log p_φ(x|z) per row for a VAE, the negative of its reconstruction loss before the batch sum:
    Bernoulli: −Σ_pixels BCE(g_φ(z), x);  Gaussian with std s: −½ Σ (x − σ(g_φ(z)))²/s² − ½·D·log(2π s²)."""
    likelihood, std = model.config["likelihood"], model.config["likelihood_std"]

    def log_likelihood(x: Tensor, z: Tensor, *condition: Tensor) -> Tensor:
        logits = model.decode(z, *condition)
        rows, pixels = x.shape[0], math.prod(x.shape[1:])
        if likelihood == "bernoulli":
            cross_entropy = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
            return -cross_entropy.reshape(rows, pixels).sum(axis=1)
        squared = F.mse_loss(logits.sigmoid(), x, reduction="none").reshape(rows, pixels).sum(axis=1)
        return squared * (-0.5 / std**2) - 0.5 * pixels * math.log(2 * math.pi * std**2)

    return log_likelihood


def condition_of(model: Autoencoder, labels) -> tuple:
    """The extra inputs of ``model``'s encode and decode: (labels,) for a conditional model (int labels
    (N,) or rows (N, classes), as ``ConditionalMixin.one_hot`` takes them), () for the others."""
    if not model.is_conditional:
        return ()
    if labels is None:
        raise ValueError(f"a conditional model ({type(model).__name__}) needs the digits' labels")
    return (labels,)


def latent_means(model: Autoencoder, x: Tensor, labels=None) -> Tensor:
    """The code of each image: μ(x) for a VAE (μ(x, y) for a conditional one, given the ``labels``),
    f_θ(x) for the other autoencoders (N, D)."""
    code = model.encode(x, *condition_of(model, labels))
    return code[0] if model.is_variational else code


def kl_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    """(1/N) Σ_n ½(μ_nd² + σ_nd² − log σ_nd² − 1) for each latent dimension d: (D,); sums to the KL term."""
    return F.gaussian_kl(mu, logvar, reduction="none").mean(axis=0)


def posterior_mean_variance(mu: Tensor) -> Tensor:
    """Var_n[μ_nd] = (1/N) Σ_n (μ_nd − μ̄_d)² for each dimension d (two-pass, no cancellation): (D,)."""
    centered = mu - mu.mean(axis=0)
    return (centered * centered).mean(axis=0)


def evaluate_vae(model: Autoencoder, batches: Batches, num_samples: int, max_rows: int = MAX_ROWS,
                 on_batch: Callable[[int], None] | None = None, seed: int = 0) -> dict:
    """The test-set report of a VAE, in nats per image, in eval mode; ``seed`` is the run's seed.

    negative_elbo = reconstruction + kl: −log p(x|z) for one posterior sample z per image, plus the
    analytic KL(q(z|x) ‖ N(0, I)), computed as training computes its test loss, with the same samples
    (``train.evaluate`` seeded by ``train.evaluation_seed(seed)``): on the same test images it is the
    training log's test loss, bit for bit. negative_log_likelihood = −mean L_k(x) with k = ``num_samples``;
    kl_per_dimension and posterior_mean_variance per latent dimension; active_units counts the
    dimensions whose variance exceeds ACTIVE_THRESHOLD. ``on_batch(images_done)`` is called after each
    batch; before its first call the first batch's results are read back, so timing it is honest on a GPU.
    """
    elbo = train.evaluate(model, batches, train.evaluation_seed(seed))
    model.eval()
    random.manual_seed(seed)
    log_likelihood = decoder_log_likelihood(model)
    log_likelihood_sum = 0.0
    means, logvars = [], []
    done = 0
    with no_grad():
        for batch in batches:
            x, *condition = train.model_inputs(batch)
            mu, logvar = model.encode(x, *condition)
            means.append(mu)
            logvars.append(logvar)
            log_likelihood_sum = log_likelihood_sum + importance_weighted_log_likelihood(
                x, model.encode, log_likelihood, num_samples, max_rows, tuple(condition)).sum()
            done += len(x)
            if on_batch is not None:
                if done == len(x):
                    log_likelihood_sum.item()  # wait for the first batch (GPU kernels run asynchronously)
                on_batch(done)
        mu, logvar = concatenate(means), concatenate(logvars)
        kl_dims = kl_per_dimension(mu, logvar).numpy()
        variances = posterior_mean_variance(mu).numpy()
    return {
        "negative_elbo": elbo["loss"], "reconstruction": elbo["recon"], "kl": elbo["kl"],
        "importance_samples": num_samples, "negative_log_likelihood": -log_likelihood_sum.item() / done,
        "kl_per_dimension": kl_dims.tolist(), "posterior_mean_variance": variances.tolist(),
        "active_units": int((variances > ACTIVE_THRESHOLD).sum()), "active_threshold": ACTIVE_THRESHOLD,
    }


def evaluate_autoencoder(model: Autoencoder, batches: Batches) -> dict:
    """The test-set report of an autoencoder without a likelihood: its reconstruction loss per image
    ("reconstruction") and the training objective with its other parts ("loss", "sparsity", ...)."""
    values = train.evaluate(model, batches)
    return {"reconstruction": values.pop("recon"), **values}


def format_report(report: dict) -> str:
    """The readable form of a report written by ``tinyae eval`` (the dict also saved as eval.json)."""
    lines = [f"{report['run']}: {report['model']} after {report['epoch']} epochs, on {report['test_images']} "
             f"{report['dataset']} test images, {report['data']}"]
    if "negative_elbo" not in report:
        lines.append(f"  {report['note']}")
        lines.append(f"  reconstruction loss    {report['reconstruction']:10.3f} per image")
        if "sparsity" in report:  # the objective differs from the reconstruction loss only by this penalty
            lines += [f"  sparsity penalty       {report['sparsity']:10.3f}",
                      f"  training objective     {report['loss']:10.3f}"]
        return "\n".join(lines)
    if "conditional" in report:
        lines.append(f"  conditional VAE: {report['conditional']}")
    if report["data"].startswith("continuous") and report["likelihood"] == "bernoulli":
        lines.append("  (a Bernoulli likelihood of grey levels: not comparable with binarized MNIST's)")
    lines += [
        f"  negative ELBO          {report['negative_elbo']:10.3f} nats per image  = reconstruction "
        f"{report['reconstruction']:.3f} + KL {report['kl']:.3f}",
        "  (the training log's test loss, with the same posterior samples: equal on the same test images)",
        f"  −log p({'x|y' if 'conditional' in report else 'x'}), IWAE k={report['importance_samples']:<5}"
        f"{report['negative_log_likelihood']:9.3f} "
        f"nats per image  (ELBO gap {report['negative_elbo'] - report['negative_log_likelihood']:.3f})",
        f"  active units           {report['active_units']} of {len(report['kl_per_dimension'])} "
        f"(Var_x[μ_d(x)] > {report['active_threshold']})",
    ]
    if "generated_digit_accuracy" in report:
        lines += generated_digit_lines(report)
    lines += ["  dim   KL (nats)   Var[μ]"]
    dimensions = zip(report["kl_per_dimension"], report["posterior_mean_variance"])
    lines += [f"  {d:3d} {kl:11.4f} {variance:8.4f}{'  active' if variance > report['active_threshold'] else ''}"
              for d, (kl, variance) in enumerate(dimensions)]
    return "\n".join(lines)


def generated_digit_lines(report: dict) -> list[str]:
    """The report's lines on a conditional model's generated digits and the judge that classified them."""
    per_digit = "  ".join(f"{digit}: {value:.0%}"
                          for digit, value in enumerate(report["generated_digit_accuracy_per_digit"]))
    return [f"  generated digits       {report['generated_digit_accuracy']:.1%} of {report['generated_digits']} "
            "classified as the digit asked for",
            f"    per digit            {per_digit}",
            f"    judged by            {report['judge']}: {report['judge_test_accuracy']:.1%} of "
            f"{report['judge_test_images']} test images right ({report['judge_seconds']:.0f} s)"]

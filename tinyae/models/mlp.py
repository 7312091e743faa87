"""The MLP autoencoders of the tutorial: plain, sparse, denoising, and the VAE (β-VAE through β).

All map flat images (N, 784) in [0, 1] to reconstruction logits (N, 784).
"""

from __future__ import annotations

import math

from .. import functional as F
from .. import nn, random
from ..tensor import Tensor
from .base import Autoencoder


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class AE(Autoencoder):
    """x → f_θ(x) = z (a ``latent_dim`` code) → g_φ(z) = logits. Loss: BCE (or MSE) per image."""

    def __init__(self, input_dim: int = 784, hidden: int = 400, latent_dim: int = 20, reconstruction: str = "bce", **extra):
        if reconstruction not in ("bce", "mse"):
            raise ValueError(f"{type(self).__name__}: reconstruction must be 'bce' or 'mse', got {reconstruction!r}")
        super().__init__(input_dim=input_dim, hidden=hidden, latent_dim=latent_dim, reconstruction=reconstruction, **extra)
        self.encoder = mlp([input_dim, hidden, latent_dim])
        self.decoder = mlp([latent_dim, hidden, input_dim])


class SparseAE(AE):
    """An AE whose code is pushed towards sparsity.

    penalty "l1":  loss = recon + λ·Σ|z| / N  (most code units exactly or nearly 0 for each image);
    penalty "kl":  the code is squashed by a sigmoid, ρ̂ⱼ = mean activation of unit j over the batch, and
                   loss = recon + λ·Σⱼ KL(ρ ‖ ρ̂ⱼ), the classic sparse-AE penalty (each unit rarely active).
    """

    def __init__(self, input_dim: int = 784, hidden: int = 400, latent_dim: int = 64, sparsity: float = 1.0,
                 penalty: str = "l1", rho: float = 0.05, reconstruction: str = "bce"):
        if penalty not in ("l1", "kl"):
            raise ValueError(f"SparseAE: penalty must be 'l1' or 'kl', got {penalty!r}")
        if sparsity < 0:
            raise ValueError(f"SparseAE: sparsity weight must be >= 0, got {sparsity}")
        super().__init__(input_dim, hidden, latent_dim, reconstruction, sparsity=sparsity, penalty=penalty, rho=rho)

    def encode(self, x: Tensor) -> Tensor:
        code = self.encoder(x)
        return code.sigmoid() if self.config["penalty"] == "kl" else code

    def loss(self, x: Tensor):
        code = self.encode(x)
        logits = self.decode(code)
        recon = self.reconstruction_loss(logits, x)
        if self.config["penalty"] == "l1":
            penalty = F.l1_penalty(code, reduction="sum") / x.shape[0]
        else:
            penalty = F.kl_sparsity(self.config["rho"], code.mean(axis=0))
        loss = recon + self.config["sparsity"] * penalty
        self.name_tensors(x=x, z=code, logits=logits, recon=recon, sparsity=penalty, loss=loss)
        return loss, {"recon": recon, "sparsity": penalty}


class DenoisingAE(AE):
    """An AE trained to undo corruption: the encoder sees x̃, the loss compares g_φ(f_θ(x̃)) with the clean x.

    noise "gaussian": x̃ = x + σ·ε, ε ~ N(0, I);   noise "mask": each pixel zeroed with probability p.
    ``noise_level`` is σ or p. Corruption is applied only in training mode.
    """

    def __init__(self, input_dim: int = 784, hidden: int = 400, latent_dim: int = 20, noise: str = "gaussian",
                 noise_level: float = 0.3, reconstruction: str = "bce"):
        if noise not in ("gaussian", "mask"):
            raise ValueError(f"DenoisingAE: noise must be 'gaussian' or 'mask', got {noise!r}")
        if noise_level < 0 or (noise == "mask" and noise_level > 1):
            raise ValueError(f"DenoisingAE: noise_level {noise_level} is out of range for {noise!r} noise")
        super().__init__(input_dim, hidden, latent_dim, reconstruction, noise=noise, noise_level=noise_level)

    def corrupt(self, x: Tensor) -> Tensor:
        """x̃: x with the configured noise (a constant: no gradient flows into the noise)."""
        level = self.config["noise_level"]
        if self.config["noise"] == "gaussian":
            noise = random.standard_normal(x.shape, dtype=x.dtype, backend_name=x.backend)
            return Tensor._make(x.data + noise * level, False, None)
        keep = random.uniform(x.shape, dtype=x.dtype, backend_name=x.backend) >= level
        return Tensor._make(x.data * keep, False, None)

    def loss(self, x: Tensor):
        noisy = self.corrupt(x) if self.training else x
        recon = self.reconstruction_loss(self.forward(noisy), x)
        self.name_tensors(x=x, noisy=noisy, recon=recon)
        return recon, {"recon": recon}


class VariationalMixin:
    """The VAE's loss and sampling, shared by the MLP and conv VAEs.

    q_θ(z|x) = N(μ(x), diag σ²(x)) with (μ, log σ²) = f_θ(x);  z = μ + σ ⊙ ε, ε ~ N(0, I);
    loss = E_q[−log p_φ(x|z)] + β·KL(q_θ(z|x) ‖ N(0, I)), one sample of z, per image: the negative ELBO
    when β = 1 (and the warm-up weight is 1); the metrics always report recon + KL, the −ELBO itself.
    ``kl_weight`` (set by the trainer during KL warm-up) multiplies β; it is 1 otherwise. ``condition``:
    the extra inputs of a conditional model (its labels), passed on to ``encode`` and ``decode``.
    """

    is_variational = True
    kl_weight = 1.0

    def forward(self, x: Tensor, *condition):
        """(reconstruction logits, μ, log σ²), as in PyTorch's VAE example."""
        mu, logvar = self.encode(x, *condition)
        z = F.reparameterize(mu, logvar)
        logits = self.decode(z, *condition)
        self.name_tensors(mu=mu, logvar=logvar, z=z, logits=logits)
        return logits, mu, logvar

    def loss(self, x: Tensor, *condition):
        logits, mu, logvar = self.forward(x, *condition)
        recon = self.reconstruction_loss(logits, x)
        kl = F.gaussian_kl(mu, logvar, reduction="sum") / x.shape[0]
        weight = self.config["beta"] * self.kl_weight
        loss = recon + (kl if weight == 1 else weight * kl)
        self.name_tensors(x=x, recon=recon, kl=kl, loss=loss)
        return loss, {"recon": recon, "kl": kl}

    def reconstruction_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """−log p_φ(x|z) per image: Bernoulli (BCE with logits, summed over pixels) or Gaussian with fixed
        standard deviation s: ½ Σ (x − sigmoid(logits))²/s² + ½·D·log(2π s²)."""
        if self.config["likelihood"] == "bernoulli":
            return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / target.shape[0]
        std = self.config["likelihood_std"]
        squared = F.mse_loss(logits.sigmoid(), target, reduction="sum") / target.shape[0]
        pixels = math.prod(target.shape[1:])
        return squared * (0.5 / std**2) + 0.5 * pixels * math.log(2 * math.pi * std**2)

    def sample(self, n: int) -> Tensor:
        """n new images: z ~ N(0, I) decoded to pixel probabilities sigmoid(g_φ(z))."""
        z = Tensor(random.standard_normal((n, self.config["latent_dim"]), dtype=self.dtype, backend_name=self.backend))
        return self.decode(z).sigmoid()

    @property
    def dtype(self):
        return next(iter(self.parameters())).dtype

    @property
    def backend(self) -> str:
        return next(iter(self.parameters())).backend


def check_likelihood(name: str, likelihood: str, beta: float) -> None:
    if likelihood not in ("bernoulli", "gaussian"):
        raise ValueError(f"{name}: likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
    if beta < 0:
        raise ValueError(f"{name}: beta must be >= 0, got {beta}")


class VAE(VariationalMixin, Autoencoder):
    """The VAE of PyTorch's example, layer for layer (fc1, fc21, fc22, fc3, fc4: same state_dict keys):

    f_θ: x → h = relu(fc1 x) → μ = fc21 h, log σ² = fc22 h;   g_φ: z → relu(fc3 z) → fc4 → logits.
    Defaults 784-400-20 with ReLU; β = 1 is the plain VAE, β > 1 a β-VAE.
    """

    def __init__(self, input_dim: int = 784, hidden: int = 400, latent_dim: int = 20, beta: float = 1.0,
                 likelihood: str = "bernoulli", likelihood_std: float = 0.1):
        check_likelihood("VAE", likelihood, beta)
        super().__init__(input_dim=input_dim, hidden=hidden, latent_dim=latent_dim, beta=beta,
                         likelihood=likelihood, likelihood_std=likelihood_std)
        self.fc1 = nn.Linear(input_dim, hidden)
        self.fc21 = nn.Linear(hidden, latent_dim)
        self.fc22 = nn.Linear(hidden, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden)
        self.fc4 = nn.Linear(hidden, input_dim)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ(x), log σ²(x))."""
        hidden = F.relu(self.fc1(x))
        self.name_tensors(hidden=hidden)
        return self.fc21(hidden), self.fc22(hidden)

    def decode(self, z: Tensor) -> Tensor:
        return self.fc4(F.relu(self.fc3(z)))

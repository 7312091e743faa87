"""Convolutional autoencoders: a strided-conv encoder and a decoder by transposed convolution or by
nearest upsampling followed by convolution (which avoids the checkerboard artifacts of the former).

Images (N, 1, 28, 28) → 32×14×14 → 64×7×7 → code; the decoder mirrors it back to logits (N, 1, 28, 28).
"""

from __future__ import annotations

from .. import nn
from ..tensor import Tensor
from .base import Autoencoder
from .mlp import VariationalMixin, check_likelihood

DECODERS = ("transpose", "upsample")


def conv_encoder(channels: int = 1) -> nn.Sequential:
    """Two stride-2 4×4 convolutions, 28 → 14 → 7, then flatten to 64·7·7 features."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
    )


def conv_decoder(latent_dim: int, kind: str, channels: int = 1) -> nn.Sequential:
    """latent → 64·7·7 → 32×14×14 → channels×28×28 logits, by transposed convs or upsample + conv."""
    if kind not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {kind!r}")
    if kind == "transpose":
        body = [nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1)]
    else:
        body = [nn.Upsample(2), nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),
                nn.Upsample(2), nn.Conv2d(32, channels, 3, padding=1)]
    return nn.Sequential(nn.Linear(latent_dim, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)), *body)


class ConvAE(Autoencoder):
    """Conv encoder → Linear to a ``latent_dim`` code → conv decoder. Loss: BCE per image."""

    def __init__(self, latent_dim: int = 20, decoder: str = "transpose", reconstruction: str = "bce"):
        super().__init__(latent_dim=latent_dim, decoder=decoder, reconstruction=reconstruction)
        self.encoder = nn.Sequential(conv_encoder(), nn.Linear(64 * 7 * 7, latent_dim))
        self.decoder = conv_decoder(latent_dim, decoder)


class ConvVAE(VariationalMixin, Autoencoder):
    """Conv encoder → (μ, log σ²) heads → reparameterized z → conv decoder; loss −ELBO with β."""

    def __init__(self, latent_dim: int = 20, decoder: str = "transpose", beta: float = 1.0,
                 likelihood: str = "bernoulli", likelihood_std: float = 0.1):
        check_likelihood("ConvVAE", likelihood, beta)
        super().__init__(latent_dim=latent_dim, decoder=decoder, beta=beta, likelihood=likelihood,
                         likelihood_std=likelihood_std)
        self.encoder = conv_encoder()
        self.mu = nn.Linear(64 * 7 * 7, latent_dim)
        self.logvar = nn.Linear(64 * 7 * 7, latent_dim)
        self.decoder = conv_decoder(latent_dim, decoder)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.encoder(x)
        self.name_tensors(features=features)
        return self.mu(features), self.logvar(features)

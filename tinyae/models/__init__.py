"""The tutorial's models, built from tinyae.nn; one interface: encode, decode, forward, loss, (sample).

``MODELS`` maps the CLI's ``--model`` names to classes; ``image_layout(name)`` says whether a model takes
flat (N, 784) or image (N, 1, 28, 28) batches. A model with ``is_conditional`` (cvae, conv-cvae) takes
the digits' labels too: ``loss(x, labels)``, ``decode(z, labels)``.
"""

from .base import Autoencoder
from .conditional import CVAE, ConvCVAE
from .conv import ConvAE, ConvVAE
from .mlp import AE, VAE, DenoisingAE, SparseAE

MODELS = {
    "ae": AE,
    "sparse-ae": SparseAE,
    "denoising-ae": DenoisingAE,
    "vae": VAE,
    "conv-ae": ConvAE,
    "conv-vae": ConvVAE,
    "cvae": CVAE,
    "conv-cvae": ConvCVAE,
}


def image_layout(name: str) -> str:
    """"image" for the conv models, "flat" for the MLPs."""
    return "image" if name.startswith("conv") else "flat"


__all__ = ["AE", "CVAE", "MODELS", "VAE", "Autoencoder", "ConvAE", "ConvCVAE", "ConvVAE", "DenoisingAE", "SparseAE", "image_layout"]

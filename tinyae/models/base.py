"""What every tinyae model shares: encode / decode / forward / loss, and a config that rebuilds it.

Notation (the tutorial's): the encoder f_θ maps an image x to a code (for a VAE, to the parameters μ(x),
log σ²(x) of q_θ(z|x)); the decoder g_φ maps a code z back to the logits of p_φ(x|z). Losses are averaged
per image: summed over pixels (and latent dimensions), divided by the batch size.
"""

from __future__ import annotations

import weakref

from .. import nn
from ..tensor import Tensor


class Autoencoder(nn.Module):
    """Base class: subclasses set ``encoder`` and ``decoder`` and may override ``loss``.

    ``config`` holds the constructor arguments, so ``type(model)(**model.config)`` rebuilds it (the
    checkpoints store it); ``input_shape`` is (784,) for MLPs and (1, 28, 28) for conv models.
    The model names the tensors of its computation (``name_tensors``) so that ``tinyae.viz.draw_graph(loss,
    path, module=model)`` writes x, mu, logvar, z, logits, recon, kl and loss on their nodes.
    """

    is_variational = False
    is_conditional = False  # a conditional model takes the labels too: loss(x, labels), decode(z, labels)

    def __init__(self, **config):
        super().__init__()
        self.config = dict(config)
        self._tensor_names: dict[str, weakref.ref] = {}

    def name_tensors(self, **tensors: Tensor) -> None:
        """Remember these tensors of the current forward under their names in the code, replacing the last
        forward's. Weak references: nothing is kept alive (a few hundred nanoseconds a name)."""
        for name, tensor in tensors.items():
            self._tensor_names[name] = weakref.ref(tensor)

    def named_tensors(self) -> dict[str, Tensor]:
        """{name: tensor} of the named tensors of the last forward that are still alive."""
        alive = ((name, reference()) for name, reference in self._tensor_names.items())
        return {name: tensor for name, tensor in alive if tensor is not None}

    def encode(self, x: Tensor) -> Tensor:
        """f_θ(x): the code of each image."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """g_φ(z): the logits of each pixel's Bernoulli probability (apply sigmoid for an image)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction logits of x."""
        z = self.encode(x)
        logits = self.decode(z)
        self.name_tensors(z=z, logits=logits)
        return logits

    def loss(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """(total, parts): the reconstruction loss per image and its parts (here only "recon")."""
        recon = self.reconstruction_loss(self.forward(x), x)
        self.name_tensors(x=x, recon=recon)
        return recon, {"recon": recon}

    def reconstruction_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """−log p_φ(x|z) per image: BCE with logits summed over pixels (or squared error for "mse")."""
        from .. import functional as F

        if self.config.get("reconstruction", "bce") == "mse":
            return F.mse_loss(logits.sigmoid(), target, reduction="sum") / target.shape[0]
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / target.shape[0]

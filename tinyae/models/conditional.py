"""The conditional VAE (Sohn, Lee & Yan 2015; Kingma et al. 2014's M2 with the label observed): a VAE whose
encoder and decoder both see the digit's label y, as a one-hot row.

    q_θ(z|x, y) = N(μ(x, y), diag σ²(x, y)),   p_φ(x|z, y),   p(z) = N(0, I),
    loss = E_q[−log p_φ(x|z, y)] + β·KL(q_θ(z|x, y) ‖ N(0, I))   per image (the −ELBO of log p(x|y) at β = 1).

The label tells the decoder *which* digit to draw, so the code z is free to hold everything else, the
style: stroke width, slant, size. Decoding one z with each of the ten labels draws one style as every digit
(``tinyae sample RUN --grid``), and ``sample(n, labels)`` draws the digits asked for.

The label enters by concatenation: the encoder's first layer sees [x, onehot(y)] and the decoder's first
layer [z, onehot(y)], the one-hot columns last. A Linear layer on a concatenation is the sum of two
products, W [x; e_y] = W_x x + W_y[:, y]: the label adds a learned bias per class to the first layer.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn, random
from ..backend import array_module, device_assert, is_array
from ..functions import concatenate
from ..tensor import Tensor
from .base import Autoencoder
from .conv import conv_decoder, conv_encoder
from .mlp import VariationalMixin, check_likelihood


def check_classes(name: str, classes: int) -> None:
    if type(classes) is not int or classes < 2:
        raise ValueError(f"{name}: classes must be an integer >= 2, got {classes!r}")


class ConditionalMixin(VariationalMixin):
    """The VAE's loss and sampling with the label as a second input: ``loss(x, labels)``, ``encode(x,
    labels)``, ``decode(z, labels)``, ``sample(n, labels)``.

    ``labels``: int class indices (N,) (a Tensor, or any host array), or float rows (N, classes), one-hot
    or mixed (a soft label: e.g. (1 − t)·e_3 + t·e_7 between a 3 and a 7; rows are used as given, so
    rows that do not sum to 1 extrapolate beyond the classes), one label per image. Indices outside
    [0, classes) are an error (at once for host data; at the next host read for a Tensor on a device).
    """

    is_conditional = True

    def one_hot(self, labels, like: Tensor) -> Tensor:
        """The condition rows (N, classes) in ``like``'s dtype and backend: e_y for each index y, or the
        float rows as given. A constant: no gradient flows into a label."""
        classes = self.config["classes"]
        name = type(self).__name__
        data = labels.data if isinstance(labels, Tensor) else labels
        data = data if is_array(data) else np.asarray(data)  # a list: checked on the host, then moved
        xp = array_module(like.data)
        if data.ndim >= 1 and data.shape[0] != like.shape[0]:
            count = like.shape[0]
            raise ValueError(f"{name}: {count} images need {count} labels, got {data.shape[0]}")
        if data.dtype.kind == "f":
            if data.ndim != 2 or data.shape[1] != classes:
                raise ValueError(f"{name}: float labels must be rows (N, {classes}), "
                                 f"got shape {tuple(data.shape)}")
            return Tensor._make(xp.asarray(data).astype(like.dtype), False, None)
        if data.ndim != 1 or data.dtype.kind not in "iu":
            raise ValueError(f"{name}: labels must be class indices (N,) or rows (N, {classes}), "
                             f"got {data.dtype} of shape {tuple(data.shape)}")
        device_assert(((data >= 0) & (data < classes)).all(),
                      ValueError(f"{name}: labels must be class indices from 0 to {classes - 1}"))
        return Tensor._make(xp.eye(classes, dtype=like.dtype)[xp.asarray(data) % classes], False, None)

    def sample(self, n: int, labels=None) -> Tensor:
        """n new images of the digits ``labels`` (default: 0, 1, …, 9, 0, 1, … for i < n): z ~ N(0, I)
        decoded with each label to pixel probabilities sigmoid(g_φ(z, y))."""
        if labels is None:
            labels = np.arange(n) % self.config["classes"]
        z = Tensor(random.standard_normal((n, self.config["latent_dim"]), dtype=self.dtype, backend_name=self.backend))
        return self.decode(z, labels).sigmoid()


class CVAE(ConditionalMixin, Autoencoder):
    """The MLP VAE with the label as input to both halves; state_dict keys as ``VAE``'s:

    f_θ: [x, e_y] → h = relu(fc1 ·) → μ = fc21 h, log σ² = fc22 h;   g_φ: [z, e_y] → relu(fc3 ·) → fc4 → logits.
    fc1.weight is (hidden, input_dim + classes) and fc3.weight (hidden, latent_dim + classes), the label's
    columns last. The code is 5-D by default, not 20 as the VAE's: the label carries the digit, z only its
    style, and a small z is covered by the prior with fewer holes, so that prior draws decode to the digit
    asked for (measured on MNIST after 10 epochs, bench/RESULTS.md: 95% of generated digits recognised with
    d = 5, 85% with d = 8, 78% with d = 20, while the test −ELBO falls from 116 to 102 nats).
    """

    def __init__(self, input_dim: int = 784, hidden: int = 400, latent_dim: int = 5, classes: int = 10,
                 beta: float = 1.0, likelihood: str = "bernoulli", likelihood_std: float = 0.1):
        check_likelihood("CVAE", likelihood, beta)
        check_classes("CVAE", classes)
        super().__init__(input_dim=input_dim, hidden=hidden, latent_dim=latent_dim, classes=classes, beta=beta,
                         likelihood=likelihood, likelihood_std=likelihood_std)
        self.fc1 = nn.Linear(input_dim + classes, hidden)
        self.fc21 = nn.Linear(hidden, latent_dim)
        self.fc22 = nn.Linear(hidden, latent_dim)
        self.fc3 = nn.Linear(latent_dim + classes, hidden)
        self.fc4 = nn.Linear(hidden, input_dim)

    def encode(self, x: Tensor, labels) -> tuple[Tensor, Tensor]:
        """(μ(x, y), log σ²(x, y))."""
        hidden = F.relu(self.fc1(concatenate([x, self.one_hot(labels, x)], axis=1)))
        self.name_tensors(hidden=hidden)
        return self.fc21(hidden), self.fc22(hidden)

    def decode(self, z: Tensor, labels) -> Tensor:
        """g_φ(z, y): the logits of the image of digit y in style z."""
        return self.fc4(F.relu(self.fc3(concatenate([z, self.one_hot(labels, z)], axis=1))))


class ConvCVAE(ConditionalMixin, Autoencoder):
    """The conv VAE with the label beside the conv features (into the μ and log σ² heads) and beside z
    (into the decoder's first Linear, ``decoder.0``): the convolutions themselves see only the image."""

    def __init__(self, latent_dim: int = 5, decoder: str = "transpose", classes: int = 10, beta: float = 1.0,
                 likelihood: str = "bernoulli", likelihood_std: float = 0.1):
        check_likelihood("ConvCVAE", likelihood, beta)
        check_classes("ConvCVAE", classes)
        super().__init__(latent_dim=latent_dim, decoder=decoder, classes=classes, beta=beta,
                         likelihood=likelihood, likelihood_std=likelihood_std)
        self.encoder = conv_encoder()
        self.mu = nn.Linear(64 * 7 * 7 + classes, latent_dim)
        self.logvar = nn.Linear(64 * 7 * 7 + classes, latent_dim)
        self.decoder = conv_decoder(latent_dim + classes, decoder)

    def encode(self, x: Tensor, labels) -> tuple[Tensor, Tensor]:
        features = self.encoder(x)
        self.name_tensors(features=features)
        conditioned = concatenate([features, self.one_hot(labels, features)], axis=1)
        return self.mu(conditioned), self.logvar(conditioned)

    def decode(self, z: Tensor, labels) -> Tensor:
        return self.decoder(concatenate([z, self.one_hot(labels, z)], axis=1))

"""The catalogue's entries for the tutorial's models (``tinyae.models.MODELS``, and the β-VAE): each model's loss, in
float64, differentiated in every parameter and in the batch x (the loss's target too).

Each draw builds the model with random settings: the reconstruction ("bce" or "mse"), the sparse AE's penalty
("l1" or "kl"), its weight and ρ, the denoising AE's noise and level (in training mode, so the corruption
runs), and the VAEs' β, KL warm-up weight ``kl_weight`` and likelihood ("bernoulli", or "gaussian" with its
standard deviation). The plain VAE keeps β = 1 and w = 1 (the −ELBO); "beta-vae" draws both. The
conditional VAEs draw the number of classes and the batch's labels.

The MLPs are built tiny (a few pixels, hidden units and latent dimensions), so every parameter element is
checked. The conv models are fixed at 1×28×28 images and 32 and 64 channels, far too many weights for that:
they are checked along one random direction per parameter (``directional_gradients``), one or two images.
The noise (ε of the reparameterization, the denoising corruption) is drawn again from the same seed at every
evaluation, so each finite difference sees the same sample.
"""

from __future__ import annotations

import numpy as np

from .. import models
from ..random import manual_seed
from ..tensor import Tensor
from .catalog import (Case, _call_with_parameters, _constant, _entry, _leaf, _setting, _side, _values,
                      _with_fixed_mask)

MODEL_DRAWS = 6  # draws per model entry: its shapes are tiny or fixed, only the settings vary
CONV_DRAWS = 4  # (each checks a 28×28 model about 60 times)


def _model_case(rng: np.random.Generator, model: models.Autoencoder, x_shape: tuple, settings: str,
                directional: bool = False, x_differentiated: bool = True) -> Case:
    """``model.loss(x)``'s total checked in every parameter (the model's own initialization, as float64
    leaves) and in the batch x (pixels in [0.05, 0.95]) unless ``x_differentiated`` is False, with the noise
    fixed by a drawn seed. A conditional model gets drawn labels too, ``model.loss(x, labels)`` (constants:
    no gradient flows into a label)."""
    names = [name for name, _ in model.named_parameters()]
    parameters = [_leaf(parameter.numpy()) for parameter in model.parameters()]
    noise_seed = int(rng.integers(1000))
    condition = (rng.integers(model.config["classes"], size=x_shape[0]),) if model.is_conditional else ()

    def loss(x: Tensor, *values: Tensor) -> Tensor:
        total, _ = _call_with_parameters(model, dict(zip(names, values)), x, *condition, method="loss")
        return total

    x = _values(rng, x_shape, 0.05, 0.95)
    labels = f", labels {condition[0].tolist()}" if condition else ""
    described = (f"x {x_shape}{'' if x_differentiated else ' (constant)'}{labels}, {settings}, "
                 f"noise seed {noise_seed}")
    return Case(described, _with_fixed_mask(loss, noise_seed),
                [_leaf(x) if x_differentiated else _constant(x), *parameters], directional)


def _built(rng: np.random.Generator, cls: type, **config) -> tuple[models.Autoencoder, str]:
    """``cls(**config)`` initialized from a drawn seed, and the config in words."""
    manual_seed(int(rng.integers(1000)))
    model = cls(**config)
    return model, ", ".join(f"{key}={value!r}" for key, value in config.items())


def _tiny_mlp(rng: np.random.Generator) -> dict:
    return {"input_dim": _side(rng, 3, 5), "hidden": _side(rng, 2, 4), "latent_dim": _side(rng, 2, 3)}


def _reconstruction(rng: np.random.Generator) -> str:
    return str(rng.choice(["bce", "mse"]))


def _variational(rng: np.random.Generator, beta_and_warmup: bool) -> tuple[dict, float]:
    """The VAE settings: (β, likelihood, its std) and the warm-up weight w; β = w = 1 unless drawn."""
    likelihood = str(rng.choice(["bernoulli", "gaussian"]))
    config = {"beta": _setting(rng, 0.2, 4.0) if beta_and_warmup else 1.0, "likelihood": likelihood}
    if likelihood == "gaussian":
        config["likelihood_std"] = _setting(rng, 0.2, 1.0)
    return config, _setting(rng, 0.05, 1.0) if beta_and_warmup else 1.0


def _vae_case(rng: np.random.Generator, cls: type, shape: dict, x_shape: tuple, beta_and_warmup: bool,
              directional: bool = False) -> Case:
    config, warmup = _variational(rng, beta_and_warmup)
    model, settings = _built(rng, cls, **shape, **config)
    model.kl_weight = warmup
    return _model_case(rng, model, x_shape, f"{settings}, kl_weight={warmup}", directional)


@_entry("model.ae", models.AE, max_draws=MODEL_DRAWS)
def _draw_ae(rng: np.random.Generator) -> Case:
    shape = _tiny_mlp(rng)
    model, settings = _built(rng, models.AE, **shape, reconstruction=_reconstruction(rng))
    return _model_case(rng, model, (_side(rng, 1, 3), shape["input_dim"]), settings)


@_entry("model.sparse-ae", models.SparseAE, max_draws=MODEL_DRAWS)
def _draw_sparse_ae(rng: np.random.Generator) -> Case:
    shape = _tiny_mlp(rng)
    model, settings = _built(rng, models.SparseAE, **shape, sparsity=_setting(rng, 0.1, 2.0),
                             penalty=str(rng.choice(["l1", "kl"])), rho=_setting(rng, 0.02, 0.3),
                             reconstruction=_reconstruction(rng))
    return _model_case(rng, model, (_side(rng, 2, 3), shape["input_dim"]), settings)


@_entry("model.denoising-ae", models.DenoisingAE, max_draws=MODEL_DRAWS)
def _draw_denoising_ae(rng: np.random.Generator) -> Case:
    shape, noise = _tiny_mlp(rng), str(rng.choice(["gaussian", "mask"]))
    model, settings = _built(rng, models.DenoisingAE, **shape, noise=noise,
                             noise_level=_setting(rng, 0.1, 0.5), reconstruction=_reconstruction(rng))
    # the encoder's input x̃ is built from x outside the graph (the noise is data), so x is not differentiated
    return _model_case(rng, model.train(), (_side(rng, 1, 3), shape["input_dim"]), f"{settings}, training",
                       x_differentiated=False)


@_entry("model.vae", models.VAE, max_draws=MODEL_DRAWS)
def _draw_vae(rng: np.random.Generator) -> Case:
    shape = _tiny_mlp(rng)
    return _vae_case(rng, models.VAE, shape, (_side(rng, 1, 3), shape["input_dim"]), beta_and_warmup=False)


@_entry("model.beta-vae", models.VAE, max_draws=MODEL_DRAWS)
def _draw_beta_vae(rng: np.random.Generator) -> Case:
    shape = _tiny_mlp(rng)
    return _vae_case(rng, models.VAE, shape, (_side(rng, 1, 3), shape["input_dim"]), beta_and_warmup=True)


def _conv_shape(rng: np.random.Generator) -> dict:
    return {"latent_dim": _side(rng, 2, 3), "decoder": str(rng.choice(["transpose", "upsample"]))}


@_entry("model.conv-ae", models.ConvAE, max_draws=CONV_DRAWS)
def _draw_conv_ae(rng: np.random.Generator) -> Case:
    model, settings = _built(rng, models.ConvAE, **_conv_shape(rng), reconstruction=_reconstruction(rng))
    x_shape = (_side(rng, 1, 2), 1, 28, 28)
    return _model_case(rng, model, x_shape, f"{settings}, directional", directional=True)


@_entry("model.conv-vae", models.ConvVAE, max_draws=CONV_DRAWS)
def _draw_conv_vae(rng: np.random.Generator) -> Case:
    case = _vae_case(rng, models.ConvVAE, _conv_shape(rng), (_side(rng, 1, 2), 1, 28, 28),
                     beta_and_warmup=bool(rng.random() < 0.5), directional=True)
    return case._replace(settings=f"{case.settings}, directional")


@_entry("model.cvae", models.CVAE, max_draws=MODEL_DRAWS)
def _draw_cvae(rng: np.random.Generator) -> Case:
    shape = {**_tiny_mlp(rng), "classes": _side(rng, 2, 4)}
    return _vae_case(rng, models.CVAE, shape, (_side(rng, 1, 3), shape["input_dim"]),
                     beta_and_warmup=bool(rng.random() < 0.5))


@_entry("model.conv-cvae", models.ConvCVAE, max_draws=CONV_DRAWS)
def _draw_conv_cvae(rng: np.random.Generator) -> Case:
    case = _vae_case(rng, models.ConvCVAE, {**_conv_shape(rng), "classes": _side(rng, 2, 4)},
                     (_side(rng, 1, 2), 1, 28, 28), beta_and_warmup=bool(rng.random() < 0.5), directional=True)
    return case._replace(settings=f"{case.settings}, directional")

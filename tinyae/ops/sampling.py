"""Random ops: the VAE's reparameterization trick and dropout.

Both draw their noise from ``tinyae.random`` (one seeded generator per backend, ``tinyae.manual_seed``),
on the backend and in the dtype of their input, and treat it as a constant in the backward: the noise
is not a function of any parameter, which is the whole point of the reparameterization trick.
"""

from __future__ import annotations

import numpy as np

from .. import random
from ..autograd import Function
from ..backend import array_module, backend_of, is_array
from ..kernels import Kernel
from ..tensor import Tensor


def _reparameterize_twin(mu, logvar, eps):
    std_eps = array_module(logvar).exp(0.5 * logvar) * eps
    return mu + std_eps, 0.5 * std_eps


reparameterize_terms = Kernel(
    "reparameterize_terms", "T mu, T logvar, T eps", "T z, T half_std_eps",
    """
    T std_eps = exp((T)0.5 * logvar) * eps;
    z = mu + std_eps;
    half_std_eps = (T)0.5 * std_eps;
    """,
    _reparameterize_twin,
)
"""z = μ + e^(lv/2)·ε and ∂z/∂lv = ½·e^(lv/2)·ε (∂z/∂μ = 1)."""


class Reparameterize(Function):
    """z = μ + σ ⊙ ε with σ = exp(½·logvar) and ε ~ N(0, I) given (a constant).

    Sampling z ~ N(μ, σ²) directly is not differentiable in μ and σ; writing the sample as a deterministic
    function of (μ, logvar) and independent noise ε is. exp(½·logvar) rather than sqrt(exp(logvar)) takes
    one exp and no sqrt, and stays finite for twice the range of logvar.
    ∂z/∂μ = 1:  ∂L/∂μ = ∂L/∂z.
    ∂z/∂logvar = ½·exp(½·logvar)·ε:  ∂L/∂logvar = ½·∂L/∂z ⊙ (σ ⊙ ε).
    ε gets no gradient. Saves ½·σ ⊙ ε, only if logvar needs a gradient. Forward and ∂z/∂logvar come from
    one fused kernel (``reparameterize_terms``, above).
    """

    def forward(self, mu, logvar, eps):
        z, half_noise = reparameterize_terms(mu, logvar, eps)
        self.half_noise = half_noise if self.needs_input_grad[1] else None
        return z

    def backward(self, grad_out):
        need_mu, need_logvar, _ = self.needs_input_grad
        return (grad_out if need_mu else None, grad_out * self.half_noise if need_logvar else None, None)


class Dropout(Function):
    """y = x ⊙ m / (1 − p), where each mᵢ is 1 with probability 1 − p and 0 with probability p.

    Inverted dropout (PyTorch's): survivors are scaled by 1/(1 − p) during training so that E[y] = x and
    evaluation needs no rescaling. The mask is drawn as [u ≥ p] with u ~ U[0, 1), which is 1 with
    probability 1 − p. p = 1 drops everything (y = x·0; the scale 1/(1 − p) is never formed).
    ∂L/∂x = ∂L/∂y ⊙ m / (1 − p).   Saves the scaled mask m / (1 − p), in x's dtype.
    """

    def forward(self, x, p=0.5):
        if p == 1:
            scaled_mask = array_module(x).zeros_like(x)
        else:
            draws = random.uniform(x.shape, dtype=x.dtype, backend_name=backend_of(x))
            scaled_mask = (draws >= p) * x.dtype.type(1 / (1 - p))
        self.scaled_mask = scaled_mask
        return x * scaled_mask

    def backward(self, grad_out):
        return grad_out * self.scaled_mask


def reparameterize(mu: Tensor, logvar: Tensor, eps=None) -> Tensor:
    """A sample z = mu + exp(½·logvar) ⊙ eps of N(mu, exp(logvar)), differentiable in mu and logvar.

    ``eps`` (an array or Tensor of mu's shape, never differentiated) is the standard-normal noise; when
    None it is drawn from ``tinyae.random.standard_normal`` on mu's backend in mu's dtype, so
    ``tinyae.manual_seed(s)`` makes the draws repeat. Pass it explicitly for tests and for comparing
    backends (CuPy's stream differs from NumPy's). mu, logvar and eps must have the same shape.
    """
    mu_data, logvar_data = _data(mu), _data(logvar)
    _check_floating("reparameterize", "mu", mu_data)
    if tuple(mu_data.shape) != tuple(getattr(logvar_data, "shape", ())):
        raise ValueError(
            f"reparameterize: mu has shape {tuple(mu_data.shape)} but logvar has shape "
            f"{tuple(getattr(logvar_data, 'shape', ()))}; they must be equal"
        )
    if eps is None:
        eps = random.standard_normal(mu_data.shape, dtype=mu_data.dtype, backend_name=backend_of(mu_data))
    else:
        eps = _data(eps)  # a constant: detached even if it is a Tensor that requires grad
        if tuple(getattr(eps, "shape", ())) != tuple(mu_data.shape):
            raise ValueError(
                f"reparameterize: eps has shape {tuple(getattr(eps, 'shape', ()))} but mu has shape "
                f"{tuple(mu_data.shape)}; they must be equal"
            )
        if is_array(eps) and eps.dtype != mu_data.dtype:
            eps = eps.astype(mu_data.dtype)
    return Reparameterize.apply(mu, logvar, eps)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout with PyTorch's semantics: during training each element is zeroed with probability
    ``p`` and the survivors are scaled by 1/(1 − p); when not training, or when p = 0, ``x`` itself is
    returned (no copy, no graph node). p = 1 gives zeros. The mask comes from ``tinyae.random.uniform``
    (seeded by ``tinyae.manual_seed``) on x's backend.
    """
    is_number = isinstance(p, (int, float, np.integer, np.floating)) and not isinstance(p, bool)
    if not is_number or not 0 <= p <= 1:  # NaN fails the comparison too
        raise ValueError(f"dropout: probability p has to be between 0 and 1, but got {p!r}")
    if not isinstance(x, Tensor):
        x = Tensor(x)
    _check_floating("dropout", "x", x.data)
    if not training or p == 0:
        return x
    return Dropout.apply(x, p=float(p))


def _data(value):
    return value.data if isinstance(value, Tensor) else value


def _check_floating(name: str, what: str, data) -> None:
    if not is_array(data) or data.dtype.kind != "f":
        kind = data.dtype if is_array(data) else type(data).__name__
        raise TypeError(f"{name}: {what} must be a floating-point Tensor or array, got {kind}")

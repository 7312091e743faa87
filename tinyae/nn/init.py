"""Weight initialization, in place, with PyTorch's formulas (so default inits match in distribution).

Every fill bumps the tensor's version, as any in-place write through tinyae does (see tinyae.autograd).

PyTorch initializes Linear and Conv weights with ``kaiming_uniform_(w, a=√5)``, which works out to
U(−1/√fan_in, 1/√fan_in), and their biases with the same bound.
"""

from __future__ import annotations

import math

from .. import random
from ..autograd import no_grad
from ..tensor import Tensor


def fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """fan_in = shape[1]·receptive field, fan_out = shape[0]·receptive field (PyTorch's convention;
    for a ConvTranspose2d weight (in, out, kh, kw) this makes fan_in = out·kh·kw, as in PyTorch)."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 axes, got shape {tensor.shape}")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


@no_grad()
def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with draws from U(a, b) from the backend's seeded generator."""
    tensor.data[...] = random.uniform(tensor.shape, a, b, dtype=tensor.dtype, backend_name=tensor.backend)
    tensor._bump_version()
    return tensor


@no_grad()
def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with draws from N(mean, std²)."""
    draws = random.standard_normal(tensor.shape, dtype=tensor.dtype, backend_name=tensor.backend)
    tensor.data[...] = draws * std + mean
    tensor._bump_version()
    return tensor


@no_grad()
def zeros_(tensor: Tensor) -> Tensor:
    tensor.data[...] = 0
    tensor._bump_version()
    return tensor


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, nonlinearity: str = "leaky_relu") -> Tensor:
    """U(−bound, bound) with bound = gain·√(3/fan_in); gain = √(2/(1 + a²)) for leaky_relu, √2 for relu."""
    gains = {"leaky_relu": math.sqrt(2.0 / (1 + a * a)), "relu": math.sqrt(2.0), "linear": 1.0}
    if nonlinearity not in gains:
        raise ValueError(f"kaiming_uniform_: unknown nonlinearity {nonlinearity!r}; expected one of {sorted(gains)}")
    fan_in, _ = fan_in_and_fan_out(tensor)
    bound = gains[nonlinearity] * math.sqrt(3.0 / fan_in)
    return uniform_(tensor, -bound, bound)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """U(−bound, bound) with bound = gain·√(6/(fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)

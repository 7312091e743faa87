"""tinyae: a from-scratch tensor-and-autograd engine on NumPy/CuPy for learning and training autoencoders."""

from . import functional, nn, optim
from .autograd import Function, is_grad_enabled, no_grad
from .backend import get_backend, get_default_dtype, set_backend, set_default_dtype
from .random import manual_seed
from .functions import (
    abs,
    broadcast_to,
    clip,
    concatenate,
    exp,
    log,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    reshape,
    split,
    sqrt,
    stack,
    sum,
    transpose,
    where,
)
from .tensor import Tensor, tensor
from .ops.sampling import reparameterize
from .testing.gradcheck import GradcheckError, gradcheck

__version__ = "0.1.0"


def __getattr__(name: str):
    """``tinyae.load_run``, imported on first use: ``import tinyae`` loads neither the application
    (``tinyae.app``) nor matplotlib."""
    if name == "load_run":
        from .app.run import load_run

        return load_run
    raise AttributeError(f"module 'tinyae' has no attribute {name!r}")


__all__ = [
    "Function", "GradcheckError", "Tensor", "nn", "optim", "reparameterize", "abs", "broadcast_to", "clip",
    "concatenate", "exp", "functional", "get_backend", "get_default_dtype", "gradcheck", "is_grad_enabled",
    "load_run", "log", "logsumexp", "matmul", "manual_seed", "max", "maximum", "mean", "minimum", "no_grad",
    "reshape", "set_backend", "set_default_dtype", "split", "sqrt", "stack", "sum", "tensor", "transpose",
    "where",
]

"""NumPy-style functions on tensors: ``tinyae.exp(x)``, ``tinyae.concatenate([a, b], axis=1)``, ...

Each accepts Tensors, arrays or Python numbers where NumPy would, and calls the same ops as the Tensor
methods. Names shadow Python builtins (``sum``, ``max``, ``abs``) on purpose, as NumPy's do.
"""

from __future__ import annotations

import numpy as np

from . import backend
from .ops import elementwise as elementwise_ops
from .ops import matmul as matmul_ops
from .ops import reduce as reduce_ops
from .ops import shape as shape_ops
from .tensor import Tensor, _binary, _operand

def exp(x):
    return _tensor(x).exp()


def log(x):
    return _tensor(x).log()


def sqrt(x):
    return _tensor(x).sqrt()


def abs(x):  # noqa: A001 - NumPy's name
    return _tensor(x).abs()


def clip(x, min=None, max=None):  # noqa: A002 - NumPy's names
    return _tensor(x).clip(min, max)


def maximum(a, b) -> Tensor:
    """Elementwise maximum with broadcasting; ties split the gradient evenly."""
    a, b = _pair(a, b)
    return _binary(elementwise_ops.Maximum, a, b)


def minimum(a, b) -> Tensor:
    """Elementwise minimum with broadcasting; ties split the gradient evenly."""
    a, b = _pair(a, b)
    return _binary(elementwise_ops.Minimum, a, b)


def where(condition, a, b) -> Tensor:
    """``a`` where ``condition`` is true, else ``b`` (NumPy's ``where`` with three arguments)."""
    like = next((v for v in (a, b) if isinstance(v, Tensor)), None)
    if like is None:  # two plain values: a becomes a tensor of the default dtype, on condition's backend
        place = condition.backend if isinstance(condition, Tensor) else backend.get_backend()
        like = a = Tensor(a).to(place)
    condition = condition.data if isinstance(condition, Tensor) else _operand(condition, like)
    return elementwise_ops.Where.apply(condition, _operand(a, like), _operand(b, like))


def sum(x, axis=None, keepdims: bool = False):  # noqa: A001 - NumPy's name
    return _tensor(x).sum(axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims: bool = False):
    return _tensor(x).mean(axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims: bool = False):  # noqa: A001 - NumPy's name
    return _tensor(x).max(axis=axis, keepdims=keepdims)


def logsumexp(x, axis=None, keepdims: bool = False) -> Tensor:
    """log Σ exp(x) over ``axis``, computed without overflow (SciPy's ``logsumexp``)."""
    return reduce_ops.LogSumExp.apply(_tensor(x), axis=axis, keepdims=keepdims)


def reshape(x, shape_) -> Tensor:
    return _tensor(x).reshape(shape_)


def transpose(x, axes=None) -> Tensor:
    return shape_ops.Transpose.apply(_tensor(x), axes=None if axes is None else tuple(axes))


def broadcast_to(x, shape_) -> Tensor:
    return _tensor(x).broadcast_to(shape_)


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules (1-D, 2-D, batched with broadcast batch axes)."""
    a, b = _pair(a, b)
    return _binary(matmul_ops.MatMul, a, b)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all shapes must agree except along ``axis``."""
    return shape_ops.Concatenate.apply(*_sequence(tensors), axis=axis)


def stack(tensors, axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis."""
    return shape_ops.Stack.apply(*_sequence(tensors), axis=axis)


def split(x, indices_or_sections, axis: int = 0) -> list[Tensor]:
    """NumPy's ``split``: into N equal parts (N must divide the axis) or at the given indices."""
    x = _tensor(x)
    if x.ndim == 0:
        raise ValueError("split: a 0-d tensor cannot be split")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"split: axis {axis} is out of bounds for a tensor of dimension {x.ndim}")
    axis %= x.ndim
    length = x.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = indices_or_sections
        if sections <= 0 or length % sections:
            raise ValueError(f"split: {sections} sections do not divide axis {axis} of length {length} equally")
        bounds = [length // sections * i for i in range(sections + 1)]
    else:
        bounds = [0, *(int(i) for i in indices_or_sections), length]
    lead = (slice(None),) * axis
    return [x[lead + (slice(start, stop),)] for start, stop in zip(bounds[:-1], bounds[1:])]


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _pair(a, b):
    """Two operands of a binary function: at least one becomes a Tensor, scalars stay scalars."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)
    like = a if isinstance(a, Tensor) else b
    return _operand(a, like), _operand(b, like)


def _sequence(tensors) -> list:
    tensors = list(tensors)
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    return [t if isinstance(t, Tensor) else Tensor(t) if like is None else _operand_array(t, like) for t in tensors]


def _operand_array(value, like: Tensor):
    value = _operand(value, like)
    return value if backend.is_array(value) else backend.array_module(like.data).asarray(value)

"""The ``strict`` backend: NumPy on the CPU, with CuPy's manners.

CI has no GPU, yet code that runs under CuPy must be tested there. ``StrictArray`` wraps a NumPy array
and refuses what a ``cupy.ndarray`` refuses:

* implicit conversion to NumPy: ``numpy.asarray(a)``, ``numpy.exp(a)``, ``float(a)`` on more than one
  element, raise TypeError (``a.get()`` is the explicit way, as in CuPy);
* mixing with ``numpy.ndarray`` in an operation raises TypeError (Python and NumPy scalars are fine);
* reductions and ufuncs return 0-d arrays, never NumPy scalars.

``namespace`` is the module-like ``xp`` of this backend. It exposes only functions that CuPy has too,
each unwrapping its StrictArray arguments, rejecting NumPy arrays and wrapping the results, so code that
reaches for a NumPy-only function fails here first.
"""

from __future__ import annotations

import types

import numpy as np

_NUMBERS = (int, float, bool, complex, np.generic)


def _mixing_error(other: object) -> TypeError:
    return TypeError(
        f"cannot mix a strict (CuPy-like) array with {type(other).__module__}.{type(other).__name__}; "
        "move the data to one backend first (tinyae.Tensor.to or the backend's asarray)"
    )


def _unwrap(value: object) -> object:
    """StrictArray -> its NumPy array; containers recursively; NumPy arrays are refused."""
    if type(value) is StrictArray:
        return value._array
    if isinstance(value, np.ndarray):
        raise _mixing_error(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _wrap(value: object) -> object:
    """NumPy arrays and NumPy scalars -> StrictArray (CuPy returns 0-d arrays, not scalars)."""
    if isinstance(value, (np.ndarray, np.generic)) and not isinstance(value, np.dtype):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _wrapped(function):
    def call(*args, **kwargs):
        args = _unwrap(args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        return _wrap(function(*args, **kwargs))

    call.__name__ = getattr(function, "__name__", "function")
    call.__doc__ = getattr(function, "__doc__", None)
    return call


class StrictArray:
    """A NumPy array that behaves like a ``cupy.ndarray`` where the two differ."""

    __slots__ = ("_array", "__weakref__")
    __array_ufunc__ = None  # NumPy ufuncs and ndarray operators give way, then fail in our methods

    def __init__(self, array: np.ndarray):
        self._array = array

    # Refused conversions --------------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed (as in CuPy); use .get() "
            "or tinyae.Tensor.numpy() for an explicit host copy"
        )

    def __float__(self) -> float:
        if self._array.size != 1:
            raise TypeError("only size-1 arrays can be converted to Python scalars")
        return float(self._array.reshape(()))

    def __int__(self) -> int:
        if self._array.size != 1:
            raise TypeError("only size-1 arrays can be converted to Python scalars")
        return int(self._array.reshape(()))

    def __bool__(self) -> bool:
        return bool(self._array)

    def __index__(self) -> int:
        return self._array.__index__()

    # Explicit host transfer, as in CuPy ------------------------------------------------------------
    def get(self) -> np.ndarray:
        return self._array.copy()

    def item(self):
        return self._array.item()

    def tolist(self):
        return self._array.tolist()

    # Attributes -------------------------------------------------------------------------------------
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    nbytes = property(lambda self: self._array.nbytes)
    itemsize = property(lambda self: self._array.itemsize)
    strides = property(lambda self: self._array.strides)
    flags = property(lambda self: self._array.flags)
    T = property(lambda self: StrictArray(self._array.T))

    @property
    def base(self):
        return None if self._array.base is None else StrictArray(self._array.base)

    def __len__(self) -> int:
        return len(self._array)

    def __iter__(self):
        return (_wrap(row) for row in self._array)

    def __repr__(self) -> str:
        return "strict_" + repr(self._array)

    def __getitem__(self, index):
        return _wrap(self._array[_unwrap(index)])

    def __setitem__(self, index, value) -> None:
        self._array[_unwrap(index)] = _unwrap(value)

    def __getattr__(self, name: str):
        if name not in _METHODS:
            raise AttributeError(f"strict array has no attribute {name!r} (not part of the CuPy-like API)")
        return _wrapped(getattr(self._array, name))


_METHODS = frozenset(
    "all any argmax argmin astype clip copy cumsum fill max mean min prod ravel reshape squeeze std "
    "sum swapaxes transpose var view".split()
)


def _binary(name: str):
    def method(self, other):
        if isinstance(other, StrictArray):
            other = other._array
        elif not isinstance(other, _NUMBERS):
            if isinstance(other, np.ndarray):
                raise _mixing_error(other)
            return NotImplemented
        operator = getattr(self._array, name)
        return _wrap(operator(other))

    method.__name__ = name
    return method


for _name in (
    "add sub mul truediv floordiv mod pow matmul and or xor lt le gt ge eq ne "
    "radd rsub rmul rtruediv rfloordiv rmod rpow rmatmul rand ror rxor"
).split():
    setattr(StrictArray, f"__{_name}__", _binary(f"__{_name}__"))


def _inplace(name: str):
    def method(self, other):
        getattr(self._array, name)(_unwrap(other) if isinstance(other, StrictArray) else _check_scalar(other))
        return self

    return method


def _check_scalar(other):
    if isinstance(other, np.ndarray):
        raise _mixing_error(other)
    return other


for _dunder in ("__iadd__", "__isub__", "__imul__", "__itruediv__", "__ipow__"):
    setattr(StrictArray, _dunder, _inplace(_dunder))

StrictArray.__neg__ = lambda self: StrictArray(-self._array)
StrictArray.__pos__ = lambda self: StrictArray(+self._array)
StrictArray.__abs__ = lambda self: StrictArray(abs(self._array))
StrictArray.__invert__ = lambda self: StrictArray(~self._array)
StrictArray.__hash__ = None


def _asarray(value, dtype=None):
    """Explicit conversion (allowed, as ``cupy.asarray`` copies host data to the device)."""
    if type(value) is StrictArray:
        return value if dtype is None or value.dtype == dtype else StrictArray(value._array.astype(dtype))
    return StrictArray(np.array(value, dtype=dtype, copy=True))  # a host-to-device copy, as in CuPy


def _array(value, dtype=None, copy=True):
    if type(value) is StrictArray:
        value = value._array
    return StrictArray(np.array(value, dtype=dtype, copy=copy))


# Functions of NumPy's namespace that CuPy has as well, checked against CuPy's API reference.
_FUNCTIONS = (
    "abs absolute add all any arange argmax argmin ascontiguousarray broadcast_shapes broadcast_to clip concatenate copy "
    "cumsum divide dot empty empty_like equal exp expand_dims expm1 eye full full_like greater "
    "greater_equal isfinite isinf isnan less less_equal linspace log log1p logaddexp logical_and "
    "logical_not logical_or matmul max maximum mean min minimum moveaxis multiply negative ones "
    "ones_like pad power prod ravel reshape result_type sign split sqrt square squeeze stack "
    "subtract sum swapaxes tanh tensordot transpose where zeros zeros_like"
).split()

namespace = types.SimpleNamespace(
    __name__="tinyae.backend.strict.namespace",
    ndarray=StrictArray,
    asarray=_asarray,
    array=_array,
    newaxis=None,
    float16=np.float16,
    float32=np.float32,
    float64=np.float64,
    int32=np.int32,
    int64=np.int64,
    bool_=np.bool_,
    dtype=np.dtype,
    finfo=np.finfo,
    issubdtype=np.issubdtype,
    floating=np.floating,
    integer=np.integer,
    inf=np.inf,
    nan=np.nan,
    pi=np.pi,
    e=np.e,
    **{name: _wrapped(getattr(np, name)) for name in _FUNCTIONS},
)


def scatter_add(target: StrictArray, index, values) -> None:
    """``cupy.add.at`` / ``numpy.add.at``: unbuffered ``target[index] += values``."""
    np.add.at(target._array, _unwrap(index), _unwrap(values))

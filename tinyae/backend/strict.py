"""The ``strict`` backend: NumPy on the CPU, with CuPy's manners.

CI has no GPU, yet code that runs under CuPy must be tested there. ``StrictArray`` wraps a NumPy array
and behaves as a ``cupy.ndarray`` (CuPy 14) where the two differ, so that code passing the suite under
``TINYAE_BACKEND=strict`` also runs on a GPU:

* every result is an array of the backend, 0-d ones included (never a NumPy scalar): operators, methods,
  namespace functions, indexing, iteration;
* no implicit conversion to NumPy (``numpy.asarray(a)``): ``a.get()`` is the way; NumPy's ufuncs refuse a
  strict array too (CuPy would run its own: one of the departures listed below);
* operands are device arrays or Python/NumPy scalars: a NumPy array, a list, a tuple or None is refused
  (TypeError), except that ``a == None`` is elementwise False and a 0-d NumPy array compares as its value;
  operands that opt out of NumPy's operators (``__array_ufunc__ = None``, as ``tinyae.Tensor``) are
  given way to;
* no ``__index__``: a 0-d array is no integer (``range(n)``, ``shape=(n,)``, ``list[n]`` refuse it);
  ``float()``, ``int()``, ``complex()`` take 0-d arrays only (NumPy >= 2.4's rule, which CuPy inherits);
* ``namespace``, the ``xp`` of this backend, has only functions CuPy has, and they take device arrays
  where CuPy does (a list or a NumPy array there is refused).

Host synchronisations, invisible on the CPU, are counted: every read that makes the host wait for the
GPU under CuPy (``float()``, ``int()``, ``bool()``, ``format``, ``str``, ``.get()``, ``.item()``,
``.tolist()``, ``in``, indexing with a boolean mask, a device array read as a number by ``arange``) is
recorded by every active ``count_syncs()`` block, so a test can assert that a training step makes none.

Where strict does *not* behave like CuPy it is stricter (it raises on an out-of-range index array, where
CuPy wraps around): ``docs/strict_backend.md`` lists these departures, with the table of every behaviour it
imitates. CuPy's behaviour is pinned by ``tests/backend/cupy_cases.py``, whose outcomes were recorded from
CuPy 14.2 on a GPU and hold strict to it in CI.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_SCALARS = (int, float, bool, complex, np.generic)
_ARRAY_PRIORITY = 100  # cupy.ndarray.__array_priority__


# Host synchronisations -----------------------------------------------------------------------------------

class SyncCount:
    """The host synchronisations made while a ``count_syncs()`` block ran: ``count``, and ``events``, one line
    each saying what read the device and where (the first caller outside ``tinyae/backend/``)."""

    def __init__(self):
        self.events: list[str] = []

    @property
    def count(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"SyncCount({self.count}: {'; '.join(self.events)})"


_counting: list[SyncCount] = []
_BACKEND_FOLDER = str(Path(__file__).parent)


@contextlib.contextmanager
def count_syncs() -> Iterator[SyncCount]:
    """``with count_syncs() as syncs:`` records in ``syncs`` each device-to-host transfer of a strict array
    made in the block: every place where CuPy would make the host wait for the GPU. Blocks may nest."""
    syncs = SyncCount()
    _counting.append(syncs)
    try:
        yield syncs
    finally:
        _counting.remove(syncs)


def _sync(what: str) -> None:
    """Record a host synchronisation (``what`` read the device) in every active count."""
    if not _counting:
        return
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_BACKEND_FOLDER):
        frame = frame.f_back
    where = "?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"
    for syncs in _counting:
        syncs.events.append(f"{what} at {where}")


def _mixing_error(other: object) -> TypeError:
    return TypeError(
        f"cannot mix a strict (CuPy-like) array with {type(other).__module__}.{type(other).__name__}; "
        "move the data to one backend first (tinyae.Tensor.to or the backend's asarray)"
    )


def _operand_error(other: object) -> TypeError:
    if isinstance(other, np.ndarray):
        return _mixing_error(other)
    return TypeError(
        f"unsupported operand for a strict (CuPy-like) array: {type(other).__name__}; CuPy takes device "
        "arrays and Python or NumPy scalars (make an array first with the backend's asarray)"
    )


def _operand(other: object):
    """The NumPy value of an operator's other operand: a device array or a scalar; anything else raises."""
    if type(other) is StrictArray:
        return other._array
    if isinstance(other, _SCALARS):
        return other
    raise _operand_error(other)


def _gives_way_to(other: object) -> bool:
    """CuPy's ``_should_use_rop``: leave the operation to an operand that opts out of NumPy's operators."""
    try:
        return other.__array_ufunc__ is None
    except AttributeError:
        return getattr(other, "__array_priority__", 0) > _ARRAY_PRIORITY


def _wrap(value: object) -> object:
    """NumPy arrays and NumPy scalars -> StrictArray (CuPy returns 0-d arrays, not scalars)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return StrictArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _index(index: object) -> object:
    """An index for the wrapped array: device arrays unwrapped (CuPy also takes NumPy index arrays)."""
    if type(index) is StrictArray:
        return index._array
    if isinstance(index, (list, tuple)):
        return type(index)(_index(part) for part in index)
    return index


def _is_mask(index: object) -> bool:
    """An index holding a boolean array (device or host): CuPy counts its True values on the host to know
    the result's shape (``_prepare_mask_indexing_single``: ``int(mask_scanned[-1])``), a sync."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(not isinstance(part, np.generic) and getattr(part, "dtype", None) == np.bool_
               for part in parts)


def _has_device_array(value: object) -> bool:
    if type(value) is StrictArray:
        return True
    return isinstance(value, (list, tuple)) and any(_has_device_array(part) for part in value)


class StrictArray:
    """A NumPy array that behaves like a ``cupy.ndarray`` where the two differ."""

    __slots__ = ("_array", "__weakref__")
    __array_ufunc__ = None  # NumPy ufuncs and ndarray operators give way, then fail in our methods
    __array_priority__ = _ARRAY_PRIORITY
    __hash__ = None

    def __init__(self, array: np.ndarray):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(array).__name__}")
        self._array = array

    # Conversions ------------------------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed (as in CuPy); use .get() "
            "or tinyae.Tensor.numpy() for an explicit host copy"
        )

    # CuPy converts a copy on the host (float(self.get())), so NumPy's rules hold: 0-d arrays only (NumPy
    # >= 2.4; older NumPy only warns about size-1 arrays, so strict refuses them itself).
    def __float__(self) -> float:
        _sync("float()")
        return float(self._scalar("float"))

    def __int__(self) -> int:
        _sync("int()")
        return int(self._scalar("int"))

    def __complex__(self) -> complex:
        _sync("complex()")
        return complex(self._scalar("complex"))

    def _scalar(self, kind: str) -> np.ndarray:
        if self._array.ndim:
            raise TypeError(f"only 0-dimensional arrays can be converted to Python scalars ({kind}() of a "
                            f"strict array of shape {self._array.shape}; NumPy >= 2.4's rule, and CuPy's)")
        return self._array

    def __bool__(self) -> bool:
        _sync("bool()")
        return bool(self._array)

    def __format__(self, spec: str) -> str:
        _sync("format()")
        return format(self._array, spec)

    def __str__(self) -> str:
        _sync("str()")
        return str(self._array)

    def __repr__(self) -> str:
        _sync("repr()")
        return "strict_" + repr(self._array)

    # Explicit host transfer, as in CuPy ------------------------------------------------------------
    def get(self) -> np.ndarray:
        _sync(".get()")
        return self._array.copy()

    def item(self):
        _sync(".item()")
        return self._array.item()

    def tolist(self):
        _sync(".tolist()")
        return self._array.tolist()

    def __copy__(self) -> StrictArray:
        return StrictArray(self._array.copy())

    def __deepcopy__(self, memo) -> StrictArray:
        return StrictArray(self._array.copy())

    # Attributes -------------------------------------------------------------------------------------
    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    nbytes = property(lambda self: self._array.nbytes)
    itemsize = property(lambda self: self._array.itemsize)
    strides = property(lambda self: self._array.strides)
    flags = property(lambda self: _Flags(self._array.flags))

    @property
    def T(self) -> StrictArray:
        """The transpose; the array itself below two dimensions, as in CuPy."""
        return self if self._array.ndim < 2 else StrictArray(self._array.T)

    @property
    def base(self):
        base = self._array.base
        return StrictArray(base) if isinstance(base, np.ndarray) else None

    # Container --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._array)

    def __iter__(self):
        return (_wrap(row) for row in self._array)

    def __contains__(self, value) -> bool:
        return bool((self == value).any())  # CuPy's: a 0-d array, read by `in` (one sync)

    def __getitem__(self, index):
        if _is_mask(index):
            _sync("indexing with a boolean mask")
        return _wrap(self._array[_index(index)])

    def __setitem__(self, index, value) -> None:
        if _is_mask(index):
            _sync("assigning through a boolean mask")
        self._array[_index(index)] = _item_value(value)

    def __getattr__(self, name: str):
        spec = _METHODS.get(name)
        if spec is None:
            raise AttributeError(f"strict array has no attribute {name!r} (not part of the CuPy-like API)")
        return _checked(f"ndarray.{name}", getattr(self._array, name), spec)


class _Flags:
    """``cupy.ndarray.flags`` (``cupy._core.flags.Flags``): three read-only flags. A CuPy array has no
    writeable, aligned, ... flag: ``a.flags.writeable = False`` fails there, so it fails here."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, flags):
        for name in self.__slots__:
            object.__setattr__(self, name, bool(getattr(flags, name)))

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"a strict (CuPy-like) array's flags are read-only; it has no {name!r} to set")

    def __repr__(self) -> str:
        return "\n".join(f"  {name.upper()} : {getattr(self, name)}" for name in self.__slots__)


def _item_value(value: object):
    """What ``a[index] = value`` takes in CuPy: a device array or a scalar (a 0-d NumPy array: its value)."""
    if type(value) is StrictArray:
        return value._array
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (np.ndarray, list, tuple)) and np.ndim(value) > 0:
        raise ValueError(
            f"a strict (CuPy-like) array cannot be assigned a {type(value).__name__} (CuPy refuses host data "
            "here); make a device array first with the backend's asarray"
        )
    if isinstance(value, np.ndarray):
        return value.item()
    raise _operand_error(value)


def _forward(name: str):
    """``a <op> other``: computed with a device array or a scalar; given way to an opting-out operand."""
    numpy_operator = getattr(np.ndarray, name)

    def method(self, other):
        if type(other) is not StrictArray and _gives_way_to(other):
            return NotImplemented
        return _wrap(_c_ordered(numpy_operator(self._array, _operand(other))))

    method.__name__ = name
    return method


def _reflected(name: str):
    """``other <op> a``, reached only when ``other`` could not compute it: CuPy computes or refuses."""
    numpy_operator = getattr(np.ndarray, name)

    def method(self, other):
        return _wrap(_c_ordered(numpy_operator(self._array, _operand(other))))

    method.__name__ = name
    return method


def _comparison(name: str):
    """``a <cmp> other``: as ``_forward``, with CuPy's two allowances.

    A 0-d NumPy array compares as its value; ``==`` and ``!=`` with None, or with an object that keeps
    ``object.__eq__`` (and ``__ne__``), are elementwise False (True): no element can equal it.
    """
    numpy_operator = getattr(np.ndarray, name)

    def method(self, other):
        if type(other) is StrictArray:
            return _wrap(_c_ordered(numpy_operator(self._array, other._array)))
        if _gives_way_to(other):
            return NotImplemented
        if isinstance(other, np.ndarray) and other.ndim == 0:
            other = other.item()
        elif name in ("__eq__", "__ne__") and _never_equal(other, name):
            return StrictArray(np.full(self._array.shape, name == "__ne__"))
        return _wrap(_c_ordered(numpy_operator(self._array, _operand(other))))

    method.__name__ = name
    return method


def _c_ordered(result):
    """An elementwise result as CuPy allocates it: C-contiguous, whatever its inputs' layout (CuPy's ufuncs
    and kernels allocate their outputs so; NumPy keeps the inputs' order, 'K')."""
    if isinstance(result, np.ndarray) and not result.flags.c_contiguous:
        return result.copy(order="C")
    return result


def _never_equal(other: object, name: str) -> bool:
    kind = type(other)
    keeps_identity = kind.__eq__ is object.__eq__ and (name == "__eq__" or kind.__ne__ is object.__ne__)
    return other is None or keeps_identity


def _inplace(name: str):
    """``a <op>= other``: CuPy updates ``a`` from a device array or a scalar, and refuses anything else."""
    numpy_operator = getattr(np.ndarray, name)

    def method(self, other):
        numpy_operator(self._array, _operand(other))
        return self

    method.__name__ = name
    return method


def _unary(name: str):
    """``-a``, ``+a``, ``abs(a)``, ``~a``: a 0-d array stays an array (NumPy would give a scalar)."""
    numpy_operator = getattr(np.ndarray, name)

    def method(self):
        return _wrap(_c_ordered(numpy_operator(self._array)))

    method.__name__ = name
    return method


_OPERATORS = "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split()
for _name in _OPERATORS + ["divmod"]:
    setattr(StrictArray, f"__{_name}__", _forward(f"__{_name}__"))
    setattr(StrictArray, f"__r{_name}__", _reflected(f"__r{_name}__"))
for _name in _OPERATORS:
    if _name != "matmul":
        setattr(StrictArray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _name in "lt le gt ge eq ne".split():
    setattr(StrictArray, f"__{_name}__", _comparison(f"__{_name}__"))
for _name in "neg pos abs invert".split():
    setattr(StrictArray, f"__{_name}__", _unary(f"__{_name}__"))


# Functions and methods, with the kind of each parameter -------------------------------------------
#
# A spec gives the kind of each positional parameter, one letter each; a trailing "*" repeats the last
# letter for all further ones, and parameters past the spec are "H":
#   A  a device array (CuPy refuses lists, scalars and NumPy arrays there);
#   V  a device array or a Python/NumPy scalar (the inputs of CuPy's ufuncs, fill values);
#   B  a bound of clip: as V, or None for no bound;
#   S  a sequence of device arrays;
#   H  a host parameter (shape, axis, dtype, sizes): a device array there is refused, since a CuPy array
#      has no __index__;
#   N  a number: a 0-d device array is taken and read on the host, as CuPy reads it (a sync);
#   U  anything; device arrays are unwrapped (result_type reads only their dtypes).
# Keyword arguments: ``out`` is A, the ones in _VALUE_KEYWORDS are V, the rest H; None stands for a keyword's
# default (``out=None``: a new array), as NumPy's functions pass it to the methods they call.

_VALUE_KEYWORDS = frozenset({"fill_value", "a_min", "a_max", "min", "max"})


def _parameter_error(where: str, parameter: str, value: object, expected: str) -> TypeError:
    if isinstance(value, np.ndarray):
        return _mixing_error(value)
    return TypeError(f"{where}: {parameter} must be {expected} (as in CuPy), got {type(value).__name__}")


def _check(where: str, parameter: str, value: object, kind: str):
    if kind == "A":
        if type(value) is StrictArray:
            return value._array
        raise _parameter_error(where, parameter, value, "a strict (CuPy-like) array")
    if kind == "B" and value is None:
        return None
    if kind in "VB":
        if type(value) is StrictArray:
            return value._array
        if isinstance(value, _SCALARS):
            return value
        raise _parameter_error(where, parameter, value, "a strict (CuPy-like) array or a scalar")
    if kind == "S":
        if not isinstance(value, (list, tuple)):
            raise _parameter_error(where, parameter, value, "a sequence of strict (CuPy-like) arrays")
        return [_check(where, f"{parameter}[{n}]", part, "A") for n, part in enumerate(value)]
    if kind == "H":
        if _has_device_array(value):
            raise TypeError(f"{where}: {parameter} takes numbers, not a strict (CuPy-like) array (CuPy "
                            "arrays have no __index__); use int(...) or .item()")
        return value
    if kind == "N" and _has_device_array(value):
        _sync(f"{where} reading {parameter} as a number")
    return _unwrap(value)


def _unwrap(value: object) -> object:
    """StrictArray -> its NumPy array; containers recursively; NumPy arrays are refused."""
    if type(value) is StrictArray:
        return value._array
    if isinstance(value, np.ndarray):
        raise _mixing_error(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _kinds(spec: str, count: int) -> str:
    if spec.endswith("*"):
        spec = spec[:-1] + spec[-2] * max(0, count - len(spec) + 1)
    return spec.ljust(count, "H")


def _keyword_kind(key: str) -> str:
    return "A" if key == "out" else "V" if key in _VALUE_KEYWORDS else "H"


def _checked(where: str, function, spec: str, elementwise: bool = False):
    """``function`` taking and returning strict arrays, its parameters checked as CuPy's are; an
    ``elementwise`` one's new result in C order, as CuPy allocates it."""
    def call(*args, **kwargs):
        args = [_check(where, f"argument {n + 1}", value, kind)
                for n, (value, kind) in enumerate(zip(args, _kinds(spec, len(args))))]
        kwargs = {key: value if value is None else _check(where, key, value, _keyword_kind(key))
                  for key, value in kwargs.items()}
        result = function(*args, **kwargs)
        return _wrap(_c_ordered(result) if elementwise and kwargs.get("out") is None else result)

    call.__name__ = getattr(function, "__name__", "function")
    call.__doc__ = getattr(function, "__doc__", None)
    return call


_METHODS = {
    **dict.fromkeys("all any argmax argmin astype copy cumsum max mean min prod ravel reshape squeeze std "
                    "sum swapaxes transpose var view".split(), ""),
    "clip": "BB", "fill": "V",
}

# Functions of NumPy's namespace that CuPy has as well, checked against CuPy's API reference, with their
# parameters' kinds as CuPy 14.2 takes them (recorded in tests/backend/cupy_outcomes.jsonl).
_FUNCTIONS = {
    **dict.fromkeys("abs absolute add divide equal exp expm1 greater greater_equal isfinite isinf isnan less "
                    "less_equal log log1p logaddexp logical_and logical_not logical_or maximum minimum "
                    "multiply negative power sign sqrt square subtract tanh".split(), "V*"),
    **dict.fromkeys("all any argmax argmin ascontiguousarray broadcast_to copy cumsum empty_like "
                    "expand_dims max mean min moveaxis ones_like pad prod ravel reshape split squeeze sum "
                    "swapaxes transpose zeros_like".split(), "A"),
    **dict.fromkeys("dot matmul tensordot".split(), "AA"),
    **dict.fromkeys("concatenate stack".split(), "S"),
    **dict.fromkeys("broadcast_shapes empty eye ones zeros".split(), ""),
    **dict.fromkeys("arange linspace".split(), "N*"),
    "result_type": "U*",
    "clip": "ABB", "where": "AVV", "full": "HV", "full_like": "AV",
}


def _asarray(value, dtype=None):
    """Explicit conversion (allowed, as ``cupy.asarray`` copies host data to the device)."""
    if type(value) is StrictArray:
        return value if dtype is None or value.dtype == dtype else StrictArray(value._array.astype(dtype))
    return StrictArray(np.array(_host_or_device(value), dtype=dtype, copy=True))  # a host-to-device copy


def _array(value, dtype=None, copy=True):
    if type(value) is StrictArray:
        return StrictArray(np.array(value._array, dtype=dtype, copy=copy))
    return StrictArray(np.array(_host_or_device(value), dtype=dtype, copy=True))


def _host_or_device(value: object) -> object:
    """What ``cupy.asarray`` takes: host data (numbers, nested lists, NumPy arrays), or a nested sequence
    made of device arrays only (stacked on the device), never a mix of the two."""
    leaves = list(_leaves(value))
    on_device = [type(leaf) is StrictArray for leaf in leaves]
    if not any(on_device):
        return value
    if not all(on_device):
        raise TypeError("asarray: a sequence holding strict (CuPy-like) arrays must hold nothing else "
                        "(CuPy stacks device arrays, or copies host data, not both)")
    return _unwrap(value)


def _leaves(value: object):
    if isinstance(value, (list, tuple)):
        for part in value:
            yield from _leaves(part)
    else:
        yield value


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
    **{name: _checked(name, getattr(np, name), spec, elementwise=spec == "V*" or name in ("clip", "where"))
       for name, spec in _FUNCTIONS.items()},
)


def scatter_add(target: StrictArray, index, values) -> None:
    """``cupy.add.at`` / ``numpy.add.at``: unbuffered ``target[index] += values``."""
    np.add.at(_check("add.at", "target", target, "A"), _index(index), _check("add.at", "values", values, "V"))

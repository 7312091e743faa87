"""Array backends: ``numpy`` (CPU), ``cupy`` (GPU) and ``strict`` (CPU, with CuPy's restrictions).

Every op finds its array module from its operands (``array_module``), so one code path serves all
three. This is the only module that imports CuPy. The *active* backend (``set_backend``, or the
environment variable ``TINYAE_BACKEND``) only decides where new tensors are created from Python data or
NumPy arrays; an existing array stays on its backend until moved with ``Tensor.to``. A CuPy array is
recognised by its type's name before CuPy is imported (which happens then), so ``tinyae.tensor(cupy_array)``
works whatever the active backend.

Checks that would have to read a device array (are all probabilities in [0, 1]? all indices in range?) are
device asserts (``device_assert``): on the GPU they cost no synchronisation, and fail at the next host read.
"""

from __future__ import annotations

import os
import re
import warnings
from types import ModuleType

import numpy as np

from . import strict

BACKENDS = ("numpy", "cupy", "strict")

_active: str | None = None  # None: not chosen yet, TINYAE_BACKEND decides at the first get_backend()
_default_dtype = np.dtype(np.float32)
_cupy: ModuleType | None = None


def _load_cupy() -> ModuleType:
    """Import CuPy and check that a GPU is visible; one clear error otherwise."""
    global _cupy
    if _cupy is not None:
        return _cupy
    install = ('pip install "cupy-cuda12x[ctk]>=14.2" where nvidia-smi shows "CUDA Version: 12.x" (13.x drivers '
               'run it too), pip install "cupy-cuda13x[ctk]>=14.2" where it shows 13.x')
    hint = f"the 'cupy' backend needs an NVIDIA GPU and CuPy with the CUDA libraries it compiles kernels with: {install}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            import cupy
        except ImportError as error:
            raise RuntimeError(f"{hint} (CuPy is not installed: {error})") from None
    for warning in caught:
        installed = re.search(r"multiple CuPy packages are installed\s+in your environment:\s+([^\n]+)",
                              str(warning.message))
        if installed:  # CuPy only warns, and then fails in odd ways: say it once, clearly
            names = installed.group(1).strip()
            raise RuntimeError(f"two CuPy packages are installed ({names}); keep the one for your CUDA: "
                               f"pip uninstall -y {names.replace(',', '')}, then {install}")
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        raise RuntimeError(f"{hint} (no usable GPU: {error})") from None
    if count == 0:
        raise RuntimeError(f"{hint} (no GPU found)")
    _cupy = cupy
    return cupy


def set_backend(name: str) -> None:
    """Choose where new tensors are created: ``"numpy"``, ``"cupy"`` or ``"strict"``."""
    global _active
    _active = _check_name(name)


def get_backend() -> str:
    """The name of the active backend: the last ``set_backend``, else ``$TINYAE_BACKEND`` (default numpy).

    The variable is read here, not when tinyae is imported, so a bad value fails where a backend is first
    needed (a ValueError naming the variable, or CuPy's RuntimeError), never ``import tinyae`` itself."""
    global _active
    if _active is None:
        value = os.environ.get("TINYAE_BACKEND") or "numpy"
        if value not in BACKENDS:
            raise ValueError(f"TINYAE_BACKEND={value!r} is not a backend; expected one of "
                             f"{', '.join(BACKENDS)} (or unset: numpy)")
        try:
            _active = _check_name(value)
        except RuntimeError as error:
            raise RuntimeError(f"TINYAE_BACKEND=cupy: {error}") from None
    return _active


def _check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if name == "cupy":
        _load_cupy()
    return name


def module(name: str) -> ModuleType:
    """The array module (``xp``) of a backend by name."""
    if name == "numpy":
        return np
    if name == "strict":
        return strict.namespace
    return _load_cupy()


def _is_cupy_array_type(kind: type) -> bool:
    """``kind`` is ``cupy.ndarray``. CuPy is imported on first sight of one (its type says ``cupy.ndarray``
    or ``cupy._core.core.ndarray``): an array made with CuPy before tinyae's cupy backend was loaded."""
    if _cupy is not None:
        return kind is _cupy.ndarray
    if kind.__name__ != "ndarray" or getattr(kind, "__module__", "").partition(".")[0] != "cupy":
        return False
    return kind is _load_cupy().ndarray


def array_module(array: object):
    """The ``xp`` of an array: ``numpy``, ``cupy`` or the strict namespace."""
    kind = type(array)
    if kind is np.ndarray:
        return np
    if kind is strict.StrictArray:
        return strict.namespace
    if _is_cupy_array_type(kind):
        return _cupy
    if isinstance(array, np.generic):
        return np
    raise TypeError(f"expected a NumPy, CuPy or strict array, got {kind.__name__}")


def xp_of(*values):
    """The ``xp`` of the first array among ``values`` (Python scalars are skipped); NumPy if none."""
    for value in values:
        if not isinstance(value, (int, float, bool, np.generic)):
            return array_module(value)
    return np


def backend_of(array: object) -> str:
    """The backend name of an array."""
    xp = array_module(array)
    return "numpy" if xp is np else "strict" if xp is strict.namespace else "cupy"


def is_array(value: object) -> bool:
    """True for arrays of any backend (not for Python or NumPy scalars)."""
    kind = type(value)
    return kind is np.ndarray or kind is strict.StrictArray or _is_cupy_array_type(kind)


def to_backend(array, name: str):
    """A copy of ``array`` on backend ``name`` (the same object when it is already there)."""
    source = backend_of(array)
    if source == name:
        return array
    if source != "numpy":
        check_device_asserts()  # a host read: report the device checks that failed until now
    host = array if source == "numpy" else array.get()
    if name == "numpy":
        return host
    return module(name).asarray(host)


def scatter_add(target, index, values) -> None:
    """Unbuffered ``target[index] += values``: repeated indices all add (``numpy.add.at``, ``cupy.add.at``;
    CuPy 14 deprecates its older ``cupyx.scatter_add``). Indices must be in range: CuPy wraps the others
    around silently (``GetItem``, the caller, checks its index in the forward)."""
    if type(target) is strict.StrictArray:
        strict.scatter_add(target, index, values)
    else:
        array_module(target).add.at(target, index, values)


def memory_owner(array) -> int:
    """An id shared by an array and all its views (used to keep ``.grad`` arrays from aliasing)."""
    if type(array) is strict.StrictArray:
        array = array._array
    if _cupy is not None and type(array) is _cupy.ndarray:
        return id(array.data.mem)
    base = array.base
    return id(array if base is None else base)


# Device asserts ----------------------------------------------------------------------------------------

_device_asserts: dict[tuple[type, str], tuple[object, Exception]] = {}


def device_assert(condition, error: Exception) -> None:
    """Raise ``error`` unless ``condition`` (a bool, or a 0-d boolean array) is true, without a host sync.

    A host condition (Python or NumPy) is checked at once. A device condition (CuPy, strict) is not read:
    reading it would make the host wait for the GPU, in the middle of a training step. It is kept, and-ed
    on the device with the earlier conditions of the same error, until ``check_device_asserts`` reads all
    of them in one transfer; tinyae calls it wherever it reads the device anyway (``Tensor.item``,
    ``Tensor.numpy``, moves to the host, the trainer's progress reads). So bad input on a GPU fails at the
    next read, as PyTorch's CUDA kernels' device-side asserts do (there with a dead CUDA context).
    """
    if not is_array(condition) or type(condition) is np.ndarray:
        if not condition:
            raise error
        return
    key = (type(error), str(error))
    pending = _device_asserts.get(key)
    _device_asserts[key] = (condition if pending is None else pending[0] & condition, error)


def check_device_asserts() -> None:
    """Read the pending device asserts (one transfer per backend) and raise the error of the first that
    failed. They are forgotten first, so each failure is reported once."""
    if not _device_asserts:
        return
    pending = list(_device_asserts.values())
    _device_asserts.clear()
    for kind in dict.fromkeys(type(condition) for condition, _ in pending):
        group = [(condition, error) for condition, error in pending if type(condition) is kind]
        held = array_module(group[0][0]).stack([condition for condition, _ in group]).get()
        for holds, (_, error) in zip(held, group):
            if not holds:
                raise error


# Default dtype ---------------------------------------------------------------------------------------

def set_default_dtype(dtype) -> None:
    """Set the float dtype for tensors made from Python numbers, lists and integer arrays."""
    global _default_dtype
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"set_default_dtype: {dtype!r} is not a dtype; expected 'float32' or 'float64'") from None
    if resolved.kind != "f":
        raise ValueError(f"set_default_dtype: expected a floating dtype such as 'float32', got {resolved}")
    _default_dtype = resolved


def get_default_dtype() -> np.dtype:
    """The dtype that new float tensors get unless told otherwise (float32 to start with)."""
    return _default_dtype




TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_flag(name: str, default: bool) -> bool:
    """The boolean environment variable ``name``: 1/true/yes/on or 0/false/no/off, in any case; ``default``
    where it is unset or empty. Any other value is a ``ValueError`` naming the variable and the words."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean; expected one of "
                     f"{'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)} (any case)")

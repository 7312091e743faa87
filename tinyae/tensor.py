"""Tensor: an array of the active backend, plus what reverse-mode differentiation needs.

A Tensor holds ``data`` (a NumPy, CuPy or strict array), ``grad`` (an array of the same shape, or None),
``requires_grad``, ``_fn``: the Function that computed it (None for a leaf, i.e. a tensor the user
made), and ``_version``: how many in-place writes tinyae made into its memory (see tinyae.autograd).
Operators and methods follow NumPy's names and semantics and call the ops in ``tinyae.ops``.
"""

from __future__ import annotations

import numpy as np

from . import autograd, backend
from .ops import activation as activation_ops
from .ops import arithmetic as arithmetic_ops
from .ops import elementwise as elementwise_ops
from .ops import matmul as matmul_ops
from .ops import reduce as reduce_ops
from .ops import shape as shape_ops

_SCALARS = (int, float, bool, np.generic)


def _as_array(data, dtype):
    """Turn ``data`` into a backend array: device arrays stay put, anything else goes to the active backend.

    Python numbers, lists, integer and boolean arrays get the default float dtype unless ``dtype`` is given;
    float arrays keep theirs. The result never shares memory with ``data``.
    """
    if isinstance(data, Tensor):
        data = data.data
    is_array = backend.is_array(data)  # CuPy arrays too, before the cupy backend is loaded
    is_float_array = (is_array or isinstance(data, np.generic)) and data.dtype.kind in "fc"
    if is_array and type(data) is not np.ndarray:
        xp = backend.array_module(data)
    else:
        xp = backend.module(backend.get_backend())
        data = np.asarray(data)
    if dtype is None:
        dtype = data.dtype if is_float_array else backend.get_default_dtype()
    dtype = np.dtype(dtype)
    if xp is np:
        return np.array(data, dtype=dtype, copy=True)
    return xp.asarray(data.astype(dtype))  # astype copies, so the tensor never aliases the caller's array


class Tensor:
    """An n-dimensional array that records the operations applied to it, for reverse-mode autodiff.

    ``Tensor(data, requires_grad=False, dtype=None)`` copies ``data`` (a number, nested list, or a NumPy,
    CuPy or strict array). Arrays of a GPU-like backend stay there; everything else is placed on the active
    backend (``tinyae.set_backend``). See ``_as_array`` for the dtype rules.
    """

    __slots__ = ("data", "grad", "_requires_grad", "_fn", "_retains_grad", "_version_counter", "__weakref__")
    __array_ufunc__ = None  # `numpy_array + tensor` calls Tensor.__radd__ instead of NumPy's loop
    __hash__ = object.__hash__  # defining __eq__ would otherwise make tensors unhashable

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._fn = None
        self._retains_grad = False
        self._requires_grad = False
        self._version_counter = None
        self.requires_grad = requires_grad

    @classmethod
    def _make(cls, data, requires_grad: bool, fn) -> Tensor:
        """Wrap an op's output array without copying (used by Function.apply)."""
        tensor = object.__new__(cls)
        tensor.data, tensor.grad, tensor._fn = data, None, fn
        tensor._requires_grad, tensor._retains_grad, tensor._version_counter = requires_grad, False, None
        return tensor

    # Attributes -----------------------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = bool(value)
        if value and self.data.dtype.kind not in "fc":
            raise TypeError(
                f"only floating-point tensors can require gradients; this tensor has dtype {self.data.dtype}"
            )
        if not value and self._fn is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use .detach() instead")
        self._requires_grad = value

    @property
    def _version(self) -> int:
        """The number of in-place writes made through tinyae into this tensor's memory (PyTorch's
        ``_version``): optimizer steps, ``load_state_dict``, ``nn.init`` fills. Views share it. Writing
        into ``.data`` directly does not count: that is the unchecked escape hatch."""
        counter = self._version_counter
        return 0 if counter is None else counter.value

    def _shared_version_counter(self) -> autograd.VersionCounter:
        """This tensor's version counter, created on first need (most tensors never need one)."""
        counter = self._version_counter
        if counter is None:
            counter = self._version_counter = autograd.VersionCounter()
        return counter

    def _bump_version(self) -> None:
        """Count one in-place write into this tensor's memory (and so into every view of it)."""
        self._shared_version_counter().bump()

    shape = property(lambda self: tuple(self.data.shape), doc="The shape, a tuple of ints.")
    dtype = property(lambda self: self.data.dtype, doc="The NumPy dtype of the data.")
    ndim = property(lambda self: self.data.ndim, doc="The number of axes.")
    size = property(lambda self: self.data.size, doc="The number of elements.")
    is_leaf = property(lambda self: self._fn is None, doc="True for tensors not computed by a recorded op.")
    backend = property(lambda self: backend.backend_of(self.data), doc="'numpy', 'cupy' or 'strict'.")

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        flags = ", requires_grad=True" if self.requires_grad else ""
        op = f", fn={self._fn.name}" if self._fn is not None and self._fn.inputs is not None else ""
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{flags}{op})"

    # Autograd -------------------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires grad, accumulating into ``leaf.grad``.

        ``grad`` is ∂L/∂self; it may be omitted only for a single-element tensor (then it is 1). The graph's
        saved arrays are freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no leaf of it requires grad)")
        xp = backend.array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a single-element tensor, got shape {self.shape}; "
                    "pass grad= with the gradient of the loss with respect to this tensor"
                )
            grad = xp.ones(self.data.shape, dtype=self.dtype)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if not backend.is_array(grad):
                grad = xp.asarray(grad, dtype=self.dtype)
            if backend.backend_of(grad) != self.backend:
                raise TypeError(f"backward: grad is on backend {backend.backend_of(grad)}, tensor on {self.backend}")
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward: grad has shape {tuple(grad.shape)}, expected {self.shape}")
            if grad.dtype != self.dtype:  # gradients keep the dtype of what they differentiate
                grad = grad.astype(self.dtype)
        autograd.backward(self, grad, retain_graph=retain_graph)

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep theirs)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return self."""
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data (and its version counter), cut from the graph."""
        detached = Tensor._make(self.data, False, None)
        detached._version_counter = self._shared_version_counter()
        return detached

    # Host transfer and backends ---------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data on the host (explicit device-to-host transfer on CuPy, which first reports
        any failed device assert: see ``backend.device_assert``)."""
        data = self.data
        return data.copy() if isinstance(data, np.ndarray) else backend.to_backend(data, "numpy")

    def item(self) -> float:
        """The single element as a Python number (on a device, a host read: failed device asserts raise)."""
        if self.data.size != 1:
            raise ValueError(f"item(): only a single-element tensor converts to a Python number, got shape {self.shape}")
        backend.check_device_asserts()
        return self.data.item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, backend_name: str) -> Tensor:
        """This tensor on backend ``backend_name``; differentiable (the gradient moves back)."""
        if backend_name == self.backend:
            return self
        backend._check_name(backend_name)
        return ToBackend.apply(self, name=backend_name)

    def __float__(self) -> float:
        return float(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    # Arithmetic -----------------------------------------------------------------------------------------
    def __add__(self, other):
        return _binary(arithmetic_ops.Add, self, _operand(other, self))

    def __radd__(self, other):
        return _binary(arithmetic_ops.Add, _operand(other, self), self)

    def __sub__(self, other):
        return _binary(arithmetic_ops.Sub, self, _operand(other, self))

    def __rsub__(self, other):
        return _binary(arithmetic_ops.Sub, _operand(other, self), self)

    def __mul__(self, other):
        return _binary(arithmetic_ops.Mul, self, _operand(other, self))

    def __rmul__(self, other):
        return _binary(arithmetic_ops.Mul, _operand(other, self), self)

    def __truediv__(self, other):
        return _binary(arithmetic_ops.Div, self, _operand(other, self))

    def __rtruediv__(self, other):
        return _binary(arithmetic_ops.Div, _operand(other, self), self)

    def __pow__(self, other):
        return _binary(arithmetic_ops.Pow, self, _operand(other, self))

    def __rpow__(self, other):
        return _binary(arithmetic_ops.Pow, _operand(other, self), self)

    def __matmul__(self, other):
        return _binary(matmul_ops.MatMul, self, _operand(other, self))

    def __rmatmul__(self, other):
        return _binary(matmul_ops.MatMul, _operand(other, self), self)

    def __neg__(self):
        return arithmetic_ops.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return elementwise_ops.Abs.apply(self)

    # Comparisons (no gradient): boolean tensors ----------------------------------------------------------
    def _compare(self, other, compare):
        other = _operand(other, self)
        other_data = other.data if isinstance(other, Tensor) else other
        if not isinstance(other_data, _SCALARS) and type(other_data) is not type(self.data):
            autograd.raise_mixed_backends("comparison", self.data, other_data)
        return Tensor._make(compare(self.data, other_data), False, None)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    # Elementwise ----------------------------------------------------------------------------------------
    def exp(self):
        return elementwise_ops.Exp.apply(self)

    def log(self):
        return elementwise_ops.Log.apply(self)

    def sqrt(self):
        return elementwise_ops.Sqrt.apply(self)

    def abs(self):
        return elementwise_ops.Abs.apply(self)

    def clip(self, min=None, max=None):
        """NumPy's ``clip``: values below ``min`` become ``min``, above ``max`` become ``max``.

        The bounds are constants (numbers, or tensors/arrays used without gradient)."""
        low, high = (bound.data if isinstance(bound, Tensor) else bound for bound in (min, max))
        return elementwise_ops.Clip.apply(self, low=low, high=high)

    def relu(self):
        return activation_ops.ReLU.apply(self)

    def sigmoid(self):
        return activation_ops.Sigmoid.apply(self)

    def tanh(self):
        return activation_ops.Tanh.apply(self)

    # Reductions -----------------------------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False):
        return reduce_ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return reduce_ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return reduce_ops.Max.apply(self, axis=axis, keepdims=keepdims)

    # Shape ----------------------------------------------------------------------------------------------
    def reshape(self, *shape):
        """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``; one axis may be -1."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _reshape(self, shape)

    def transpose(self, *axes):
        """``x.transpose()`` reverses the axes; ``x.transpose(1, 0, 2)`` or ``x.transpose((1, 0, 2))``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return shape_ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self):
        return shape_ops.Transpose.apply(self, axes=None)

    def flatten(self):
        """The elements in row-major order as a 1-D tensor (a view when the layout allows, unlike NumPy's
        ``flatten``, which always copies; tensors are never modified in place by ops, so it makes no difference)."""
        return _reshape(self, (-1,))

    def broadcast_to(self, shape_):
        return shape_ops.BroadcastTo.apply(self, shape=tuple(shape_))

    def split(self, indices_or_sections, axis: int = 0):
        """NumPy's ``split`` along ``axis``: a list of tensors."""
        from .functions import split

        return split(self, indices_or_sections, axis)

    def __getitem__(self, index):
        """NumPy's indexing (see ``ops.shape.GetItem``); index arrays may be lists, NumPy arrays, Tensors."""
        return shape_ops.GetItem.apply(self, index=_index_arrays(index))


def _binary(op: type[autograd.Function], a, b) -> Tensor:
    """Apply a binary op, turning NumPy's broadcasting error into one that names the op and both shapes."""
    try:
        return op.apply(a, b)
    except ValueError as error:
        if "broadcast" not in str(error):
            raise
        shapes = [getattr(v, "shape", ()) for v in (a, b)]
        raise ValueError(
            f"{op.__name__}: operands of shapes {tuple(shapes[0])} and {tuple(shapes[1])} cannot be broadcast together"
        ) from None


def _reshape(x: Tensor, new_shape) -> Tensor:
    return shape_ops.Reshape.apply(x, shape=tuple(int(n) for n in new_shape))


class ToBackend(autograd.Function):
    """y = x copied to another backend.   ∂L/∂x = ∂L/∂y copied back to x's backend."""

    def forward(self, x, name="numpy"):
        self.source = backend.backend_of(x)
        return backend.to_backend(x, name)

    def backward(self, grad_out):
        return backend.to_backend(grad_out, self.source)


def _operand(value, like: Tensor):
    """Python scalars and backend arrays pass through (checked by Function.apply); lists and tuples of
    numbers become arrays of the default dtype on the tensor's backend, as ``Tensor(list)`` would."""
    if isinstance(value, (list, tuple)):
        return backend.array_module(like.data).asarray(np.asarray(value, dtype=backend.get_default_dtype()))
    return value


def _index_arrays(index):
    """``index`` with Tensors replaced by their arrays (GetItem moves host arrays to the backend)."""
    if isinstance(index, tuple):
        return tuple(part.data if isinstance(part, Tensor) else part for part in index)
    return index.data if isinstance(index, Tensor) else index


autograd.Tensor = Tensor  # the engine tests isinstance(value, Tensor) in its hot loops; see autograd.py


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Same as ``Tensor(data, requires_grad, dtype)`` (PyTorch's spelling)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)

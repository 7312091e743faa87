"""Shape ops: reshape, transpose, broadcast_to, indexing, concatenate and stack.

These ops move numbers around without changing them, so each backward moves the gradient back to where
the number came from: reshape back, transpose by the inverse permutation, sum what was broadcast, scatter
what was gathered, slice apart what was joined.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function, raise_mixed_backends
from ..backend import array_module, device_assert, is_array, scatter_add
from .arithmetic import sum_to_shape


class Reshape(Function):
    """y = x viewed with a new shape (same elements, same order).   ∂L/∂x = reshape(∂L/∂y, x.shape)."""

    def forward(self, x, shape=()):
        self.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape an array of shape {x.shape} into shape {shape}") from None

    def backward(self, grad_out):
        return grad_out.reshape(self.shape)


class Transpose(Function):
    """y = x with axes permuted: y.shape[i] = x.shape[axes[i]].

    ∂L/∂x = transpose(∂L/∂y, axes⁻¹), the inverse permutation (axes⁻¹[axes[i]] = i).
    """

    def forward(self, x, axes=None):
        axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % max(x.ndim, 1) for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes of {x.shape}")
        self.inverse = tuple(sorted(range(x.ndim), key=axes.__getitem__))
        return x.transpose(axes)

    def backward(self, grad_out):
        return grad_out.transpose(self.inverse)


class BroadcastTo(Function):
    """y = x repeated along new leading axes and size-1 axes to ``shape``.

    ∂L/∂x = sum_to_shape(∂L/∂y, x.shape): every copy passes its gradient back to the one original.
    """

    def forward(self, x, shape=()):
        self.shape = x.shape
        try:
            return array_module(x).broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"cannot broadcast an array of shape {x.shape} to shape {tuple(shape)}") from None

    def backward(self, grad_out):
        return sum_to_shape(grad_out, self.shape)


def _has_array_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(is_array(part) for part in parts)


def _axes_taken(part) -> int:
    """How many axes of the indexed array an index part takes: a boolean array its ndim (a 0-d one or a
    bool none: it adds an axis), None none (it adds one), Ellipsis none here (it takes the rest), others
    one."""
    if part is None or part is Ellipsis or isinstance(part, (bool, np.bool_)):
        return 0
    if getattr(part, "dtype", None) == np.bool_:
        return part.ndim
    return 1


def _first_axes(parts: tuple, ndim: int) -> list[int] | None:
    """The axis of the indexed array at which each index part applies; None where indexing will raise
    (more indices than axes, two Ellipses)."""
    taken = sum(map(_axes_taken, parts))
    if taken > ndim or sum(part is Ellipsis for part in parts) > 1:
        return None
    axes, axis = [], 0
    for part in parts:
        axes.append(axis)
        axis += ndim - taken if part is Ellipsis else _axes_taken(part)
    return axes


def _check_on_host(array: np.ndarray, shape: tuple, axis: int) -> None:
    """IndexError, with NumPy's words, for a host index array that does not fit ``shape`` at ``axis``."""
    if array.dtype == np.bool_:
        for offset, (size, mask_size) in enumerate(zip(shape[axis:], array.shape)):
            if size != mask_size:
                raise IndexError(f"boolean index did not match indexed array along axis {axis + offset}; size"
                                 f" of axis is {size} but size of corresponding boolean axis is {mask_size}")
    elif array.dtype.kind in "iu" and array.size:
        size = shape[axis]
        outside = (array < -size) | (array >= size)
        if outside.any():
            bad = array[outside].flat[0]
            raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {size}")


def _index_for(x, index) -> tuple[object, list]:
    """(``index`` ready for ``x[index]`` on x's backend, the device index arrays to check after indexing).

    Host index arrays (lists, NumPy arrays) are checked on the host, where it is free: an integer out of
    range raises IndexError, as in NumPy (CuPy would wrap it around silently). A boolean mask becomes the
    integer arrays of its True positions (``mask.nonzero()``, NumPy's own definition of mask indexing), so
    that CuPy does not have to count them on the host (a sync). Then they move to x's backend (copied, so
    that a later write by the caller cannot reach the index the graph keeps). Device index arrays are
    checked by a device assert once indexing has succeeded (no sync; a failure raises at the next read),
    as (index array, axis size, axis) in the list returned.
    """
    given = index if isinstance(index, tuple) else (index,)
    parts = tuple(_host_array(part) for part in given)
    axes = _first_axes(parts, x.ndim)
    if axes is None:
        return index, []
    xp = array_module(x)
    prepared, on_device = [], []
    for part, axis in zip(parts, axes):
        if isinstance(part, np.ndarray) and part.dtype.kind in "biu":
            _check_on_host(part, x.shape, axis)
            if part.ndim == 0:
                prepared.append(part.item() if part.dtype != np.bool_ else part)
            elif part.dtype == np.bool_:
                prepared.extend(xp.asarray(positions) for positions in part.nonzero())
            else:
                prepared.append(part.copy() if xp is np else xp.asarray(part))
            continue
        if is_array(part) and not isinstance(part, np.ndarray):
            if type(part) is not type(x):
                raise_mixed_backends("indexing", x, part)
            if part.dtype.kind in "iu":
                on_device.append((part, x.shape[axis], axis))
        prepared.append(part)
    if not isinstance(index, tuple) and len(prepared) == 1:
        return prepared[0], on_device
    return tuple(prepared), on_device


def _host_array(part):
    """A list index as the NumPy array NumPy would make of it (an empty list: no integers)."""
    if isinstance(part, list):
        return np.asarray(part) if part else np.empty(0, dtype=np.intp)
    return part


class GetItem(Function):
    """y = x[index], NumPy indexing: integers, slices, None, Ellipsis, integer arrays, boolean masks.

    Out-of-range integer arrays raise IndexError on every backend (CuPy would wrap them around): host arrays
    at once, device arrays at the next host read (``backend.device_assert``); see ``_index_for``.
    ∂L/∂x = zeros(x.shape) with ∂L/∂y added at the indexed positions. An element picked several times (a
    repeated integer index) receives the sum of the gradients of all its copies, so integer-array indices
    use an unbuffered scatter-add (``numpy.add.at`` / ``cupy.add.at``); basic indexing never
    repeats an element, and a plain assignment suffices.
    """

    def forward(self, x, index=()):
        try:
            self.index, on_device = _index_for(x, index)
            y = x[self.index]
        except IndexError as error:
            raise IndexError(f"index {index!r} is invalid for an array of shape {x.shape}: {error}") from None
        for positions, size, axis in on_device:
            device_assert(((positions >= -size) & (positions < size)).all(), IndexError(
                f"an index array holds values out of bounds for axis {axis} with size {size} (checked on the "
                "device: CuPy would have wrapped them around)"))
        self.shape = x.shape
        return y

    def backward(self, grad_out):
        grad_x = array_module(grad_out).zeros(self.shape, dtype=grad_out.dtype)
        if _has_array_index(self.index):
            scatter_add(grad_x, self.index, grad_out)
        else:
            grad_x[self.index] = grad_out
        return grad_x


def _check_same_shapes(name: str, arrays, skip_axis: int | None) -> None:
    """Shapes must agree everywhere except ``skip_axis``; the error names every shape."""
    first = arrays[0].shape
    for array in arrays[1:]:
        shape = array.shape
        if len(shape) != len(first) or any(
            a != b for axis, (a, b) in enumerate(zip(shape, first)) if axis != skip_axis
        ):
            shapes = ", ".join(str(a.shape) for a in arrays)
            where = "" if skip_axis is None else f" except along axis {skip_axis}"
            raise ValueError(f"{name}: all input shapes must match{where}; got {shapes}")


class Concatenate(Function):
    """y = the inputs joined along an existing ``axis``.

    ∂L/∂xᵢ = the slice of ∂L/∂y along ``axis`` that xᵢ occupies.
    """

    def forward(self, *arrays, axis=0):
        if not arrays:
            raise ValueError("concatenate: need at least one array")
        ndim = arrays[0].ndim
        if ndim == 0:
            raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
        if not -ndim <= axis < ndim:
            raise ValueError(f"concatenate: axis {axis} is out of bounds for arrays of dimension {ndim}")
        self.axis = axis % ndim
        _check_same_shapes("concatenate", arrays, self.axis)
        self.sizes = [a.shape[self.axis] for a in arrays]
        return array_module(arrays[0]).concatenate(arrays, axis=self.axis)

    def backward(self, grad_out):
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for size, needed in zip(self.sizes, self.needs_input_grad):
            grads.append(grad_out[lead + (slice(start, start + size),)] if needed else None)
            start += size
        return tuple(grads)


class Stack(Function):
    """y = the inputs (all of one shape) joined along a new ``axis``.   ∂L/∂xᵢ = ∂L/∂y[..., i, ...]."""

    def forward(self, *arrays, axis=0):
        if not arrays:
            raise ValueError("stack: need at least one array")
        ndim = arrays[0].ndim + 1
        if not -ndim <= axis < ndim:
            raise ValueError(f"stack: axis {axis} is out of bounds for the result's dimension {ndim}")
        self.axis = axis % ndim
        _check_same_shapes("stack", arrays, None)
        return array_module(arrays[0]).stack(arrays, axis=self.axis)

    def backward(self, grad_out):
        lead = (slice(None),) * self.axis
        return tuple(
            grad_out[lead + (i,)] if needed else None for i, needed in enumerate(self.needs_input_grad)
        )

"""Shape ops: reshape, transpose, broadcast_to, indexing, concatenate and stack.

These ops move numbers around without changing them, so each backward moves the gradient back to where
the number came from: reshape back, transpose by the inverse permutation, sum what was broadcast, scatter
what was gathered, slice apart what was joined.
"""

from __future__ import annotations

from ..autograd import Function
from ..backend import array_module, is_array, scatter_add
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


class GetItem(Function):
    """y = x[index], NumPy indexing: integers, slices, None, Ellipsis, integer arrays, boolean masks.

    ∂L/∂x = zeros(x.shape) with ∂L/∂y added at the indexed positions. An element picked several times (a
    repeated integer index) receives the sum of the gradients of all its copies, so integer-array indices
    use an unbuffered scatter-add (``numpy.add.at`` / ``cupy.add.at``); basic indexing never
    repeats an element, and a plain assignment suffices.
    """

    def forward(self, x, index=()):
        self.shape, self.index = x.shape, index
        try:
            return x[index]
        except IndexError as error:
            raise IndexError(f"index {index!r} is invalid for an array of shape {x.shape}: {error}") from None

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

"""Matrix product with NumPy's rules: 1-D, 2-D and batched (batch axes broadcast).

For C = A · B (A: m×k, B: k×n):

    Cᵢⱼ = Σₖ Aᵢₖ Bₖⱼ   ⇒   ∂L/∂Aᵢₖ = Σⱼ ∂L/∂Cᵢⱼ Bₖⱼ,   ∂L/∂Bₖⱼ = Σᵢ Aᵢₖ ∂L/∂Cᵢⱼ

that is   dA = dC · Bᵀ   and   dB = Aᵀ · dC.

NumPy's special cases reduce to this one: a 1-D A is a row (1×k) whose row axis is then dropped, a 1-D B
is a column (k×1) whose column axis is dropped, and batch axes broadcast like any elementwise op, so their
gradient is summed back over the broadcast batch axes (``sum_to_shape``).
"""

from __future__ import annotations

from ..autograd import Function
from ..backend import array_module
from .arithmetic import sum_to_shape


class MatMul(Function):
    """C = A @ B.   dA = dC · Bᵀ,  dB = Aᵀ · dC  (then summed over broadcast batch axes)."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                f"{a.shape[-1]} (last axis of the first) != {b.shape[-2 if b.ndim > 1 else 0]} "
                f"({'second-to-last' if b.ndim > 1 else 'only'} axis of the second)"
            )
        try:
            out = a @ b
        except ValueError:
            raise ValueError(f"matmul: batch axes of shapes {a.shape} and {b.shape} do not broadcast") from None
        need_a, need_b = self.needs_input_grad
        self.a = a if need_b else None
        self.b = b if need_a else None
        self.a_shape, self.b_shape = a.shape, b.shape
        return out

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        a_is_vector, b_is_vector = len(self.a_shape) == 1, len(self.b_shape) == 1
        # Undo the 1-D special cases: restore the dropped row / column axis of C.
        if a_is_vector:
            grad_out = grad_out[..., None, :] if not b_is_vector else grad_out[..., None]
        if b_is_vector:
            grad_out = grad_out[..., :, None] if not a_is_vector else grad_out[..., None]
        grad_a = grad_b = None
        if need_a:
            b = self.b[:, None] if b_is_vector else self.b
            grad_a = grad_out @ _swap_last(b)
            grad_a = sum_to_shape(grad_a, (1,) + self.a_shape if a_is_vector else self.a_shape)
            grad_a = grad_a.reshape(self.a_shape)
        if need_b:
            a = self.a[None, :] if a_is_vector else self.a
            grad_b = _batched_transpose_product(a, grad_out, self.b_shape, b_is_vector)
        return grad_a, grad_b


def _swap_last(x):
    """Transpose the last two axes (a view)."""
    return array_module(x).swapaxes(x, -1, -2)


def _batched_transpose_product(a, grad_out, b_shape, b_is_vector):
    """dB = Σ over batch axes of Aᵀ · dC. When B has no batch axes, fold A's batch into one GEMM."""
    b_matrix_shape = b_shape + (1,) if b_is_vector else b_shape
    if len(b_matrix_shape) == 2 and a.ndim > 2:  # (..., m, k)ᵀ · (..., m, n) summed = one (k, M)·(M, n)
        grad_b = _swap_last(a.reshape(-1, a.shape[-1])) @ grad_out.reshape(-1, grad_out.shape[-1])
    else:
        grad_b = sum_to_shape(_swap_last(a) @ grad_out, b_matrix_shape)
    return grad_b.reshape(b_shape)

"""The affine map of a fully connected layer, fused into one op.

y = x · Wᵀ + b, with x (..., in), W (out, in) (PyTorch's layout) and b (out,). With the leading axes of x
flattened into M rows (X: M×in, dY: M×out), the chain rule gives three matrix expressions:

    ∂L/∂X = dY · W          (M×out · out×in)
    ∂L/∂W = dYᵀ · X         (out×M · M×in): one GEMM sums over the whole batch
    ∂L/∂b = Σ over rows of dY

Fusing the three into one op saves the transpose, broadcast-add and sum_to_shape nodes the composed
expression ``x @ w.T + b`` would record, and computes each gradient only when it is needed.
"""

from __future__ import annotations

from ..autograd import Function


class Linear(Function):
    """y = x · Wᵀ + b.   dX = dY · W,  dW = dYᵀ · X,  db = Σ_rows dY  (leading axes of x are rows)."""

    def forward(self, x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear: input of shape {x.shape} does not match weight of shape {weight.shape}: "
                f"expected the input's last axis to be {weight.shape[1]}"
            )
        need_x, need_weight = self.needs_input_grad[:2]
        self.x = x if need_weight else None
        self.weight = weight if need_x else None
        out = x @ weight.T
        if bias is not None:
            out += bias  # in place on a fresh array: one pass, no extra allocation
        return out

    def backward(self, grad_out):
        need_x, need_weight = self.needs_input_grad[:2]
        need_bias = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        rows = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad_out @ self.weight if need_x else None
        grad_weight = rows.T @ self.x.reshape(-1, self.x.shape[-1]) if need_weight else None
        grad_bias = rows.sum(axis=0) if need_bias else None
        return grad_x, grad_weight, grad_bias

"""Gradient clipping, following ``torch.nn.utils.clip_grad_norm_``."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .. import backend
from ..autograd import no_grad
from ..tensor import Tensor, tensor


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their joint norm is at most ``max_norm``.

    The total norm treats all gradients as one long vector g (parameters whose grad is None are skipped):

        ‖g‖_p = (Σ |gᵢ|ᵖ)^(1/p)        for p = norm_type > 0
        ‖g‖_∞ = max |gᵢ|                for norm_type = inf

    Then every gradient is multiplied by c = min(max_norm / (‖g‖ + 1e-6), 1), as PyTorch does. It
    multiplies even when c = 1 (a no-op) instead of testing c < 1, so on a GPU nothing waits for the norm to
    reach the host. Scaling ``.grad`` in place is the purpose here; it is safe because the engine never
    lets two ``.grad`` arrays share memory.

    Returns the total norm (before clipping) as a 0-d Tensor on the gradients' backend, in their dtype,
    like PyTorch's 0-d tensor; ``float(result)`` or ``result.item()`` gives a Python number. With no
    gradients at all it returns ``tensor(0.0)``.

    Non-finite norms behave as in PyTorch: a gradient holding inf or NaN gives an inf/NaN norm and the
    gradients become 0/NaN, unless ``error_if_nonfinite=True``, which raises RuntimeError instead (checking
    needs the norm on the host). The norm is computed in the gradients' dtype, so float32 gradients with
    entries above ~1.8e19 overflow to an inf 2-norm, as in PyTorch.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [param.grad for param in parameters if param.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not (norm_type > 0):
        raise ValueError(f"clip_grad_norm_: norm_type must be a positive number or inf, got {norm_type}")
    if not grads:
        return tensor(0.0)
    xp = backend.array_module(grads[0])
    with no_grad():
        if math.isinf(norm_type):
            total = xp.stack([xp.abs(grad).max() for grad in grads]).max()
        elif norm_type == 2.0:
            total = xp.sqrt(xp.stack([(grad * grad).sum() for grad in grads]).sum())
        elif norm_type == 1.0:
            total = xp.stack([xp.abs(grad).sum() for grad in grads]).sum()
        else:
            total = xp.stack([(xp.abs(grad) ** norm_type).sum() for grad in grads]).sum() ** (1.0 / norm_type)
        total = xp.asarray(total)  # NumPy reductions return scalars; keep a 0-d array like CuPy
        if error_if_nonfinite and not bool(xp.isfinite(total)):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it "
                "cannot be clipped. To disable this error and scale the gradients by the non-finite norm "
                "anyway, set `error_if_nonfinite=False`"
            )
        clip_coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
        for grad in grads:
            grad *= clip_coef
    return Tensor._make(total, False, None)

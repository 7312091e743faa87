"""What every op test does: compare with NumPy, keep float32, pass gradcheck."""

import numpy as np

import tinyae


def check_op(op, reference, *arrays_, exact=False, nondet_tol=0.0):
    """``op`` on tensors matches ``reference`` on the NumPy arrays (to 1e-12 relative, or exactly with
    ``exact``, for shape ops, which only move numbers), keeps float32 (outputs and gradients) and passes
    gradcheck (whose two backwards must agree to ``nondet_tol``). ``op`` may return a list of tensors
    (split)."""
    tensors = [tinyae.tensor(array, requires_grad=True) for array in arrays_]
    for out, expected in zip(as_list(op(*tensors)), as_list(reference(*arrays_)), strict=True):
        if exact:
            np.testing.assert_array_equal(out.numpy(), expected, strict=True)
        else:
            np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=0, strict=True)
    singles = [tinyae.tensor(array.astype(np.float32), requires_grad=True) for array in arrays_]
    outs = as_list(op(*singles))
    assert all(out.dtype == np.float32 for out in outs)
    sum(out.sum() for out in outs).backward()
    assert all(single.grad.dtype == np.float32 for single in singles)
    tinyae.gradcheck(op, tensors, nondet_tol=nondet_tol)


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]

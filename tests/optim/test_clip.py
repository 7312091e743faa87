"""clip_grad_norm_: the total norm over all gradients, in-place scaling, non-finite norms, torch agreement."""

import math

import numpy as np
import pytest

import tinyae as ta
from tinyae import backend
from tinyae.nn.utils import clip_grad_norm_


def host(array) -> np.ndarray:
    return backend.to_backend(array, "numpy").copy()


def with_grads(grads, dtype="float64"):
    """Parameters (zeros) whose .grad are the given host arrays, on the backend under test."""
    params = []
    for grad in grads:
        grad = np.asarray(grad, dtype=dtype)
        param = ta.tensor(np.zeros(grad.shape), dtype=dtype, requires_grad=True)
        param.grad = backend.module(param.backend).asarray(grad.copy())  # never alias the caller
        params.append(param)
    return params


def test_two_norm_3_4_12_is_13_and_clips_to_max_norm():
    params = with_grads([[3.0, 4.0], [[12.0]]], dtype="float32")
    total = clip_grad_norm_(params, max_norm=1.0)
    assert isinstance(total, ta.Tensor) and total.shape == () and not total.requires_grad
    assert total.dtype == np.float32 and total.backend == params[0].backend
    assert total.item() == 13.0
    np.testing.assert_allclose(host(params[0].grad), [3 / 13, 4 / 13], rtol=1e-6)
    np.testing.assert_allclose(host(params[1].grad), [[12 / 13]], rtol=1e-6)
    assert all(p.grad.dtype == np.float32 for p in params)
    assert float(clip_grad_norm_(params, max_norm=1.0)) == pytest.approx(1.0, abs=1e-6)


def test_gradients_below_max_norm_are_left_bitwise_unchanged():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    params = with_grads(grads, dtype="float32")
    before = [host(p.grad) for p in params]
    total = clip_grad_norm_(params, max_norm=100.0)
    expected = np.sqrt(sum((g.astype(np.float32).astype(np.float64) ** 2).sum() for g in grads))
    assert total.item() == pytest.approx(expected, rel=1e-6)
    for param, values in zip(params, before):
        assert host(param.grad).tobytes() == values.tobytes()


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, 0.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_norm_types_against_numpy(norm_type, max_norm):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((4, 3)), rng.standard_normal(7), rng.standard_normal(())]
    params = with_grads(grads)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    flat = np.concatenate([g.ravel() for g in grads])
    order = float(norm_type)
    expected = np.abs(flat).max() if math.isinf(order) else (np.abs(flat) ** order).sum() ** (1 / order)
    np.testing.assert_allclose(total.item(), expected, rtol=1e-12)
    coefficient = min(max_norm / (expected + 1e-6), 1.0)
    for param, grad in zip(params, grads):
        np.testing.assert_allclose(host(param.grad), grad * coefficient, rtol=1e-12)


def test_single_tensor_none_grads_and_empty():
    a, b = with_grads([[0.0, 6.0], [8.0]])
    b.grad = None
    assert clip_grad_norm_(a, 3.0).item() == 6.0  # a single Tensor is accepted
    np.testing.assert_allclose(host(a.grad), [0.0, 3.0 * 6 / (6 + 1e-6)], rtol=1e-12)
    assert clip_grad_norm_([a, b], 1e9).item() == pytest.approx(3.0, rel=1e-6)  # b (grad None) is skipped
    assert b.grad is None
    empty = clip_grad_norm_([b], 1.0)
    assert isinstance(empty, ta.Tensor) and empty.shape == () and empty.item() == 0.0


def test_each_parameter_keeps_its_own_gradient_array():
    params = with_grads([[30.0, 40.0], [0.0]])
    arrays = [p.grad for p in params]
    clip_grad_norm_(params, 5.0)
    assert all(p.grad is array for p, array in zip(params, arrays))  # scaled in place


def test_non_finite_norm_raises_when_asked_and_otherwise_behaves_like_torch():
    params = with_grads([[1.0, np.inf], [2.0]])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert host(params[0].grad)[0] == 1.0  # nothing was scaled
    with np.errstate(invalid="ignore"):  # inf · 0 is NaN, as in torch (CuPy would not warn)
        total = clip_grad_norm_(params, 1.0)
    assert math.isinf(total.item())
    np.testing.assert_array_equal(host(params[0].grad), [0.0, np.nan])
    np.testing.assert_array_equal(host(params[1].grad), [0.0])

    params = with_grads([[1.0, np.nan]])
    assert math.isnan(clip_grad_norm_(params, 1.0).item())
    assert np.isnan(host(params[0].grad)).all()


@pytest.mark.parametrize("norm_type", [0.0, -1.0, float("nan")])
def test_unsupported_norm_types_are_refused(norm_type):
    params = with_grads([[1.0]])
    with pytest.raises(ValueError, match="norm_type"):
        clip_grad_norm_(params, 1.0, norm_type=norm_type)


@pytest.mark.torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_agrees_with_torch(norm_type, max_norm):
    import torch

    rng = np.random.default_rng(2)
    grads = [rng.standard_normal((5, 4)), rng.standard_normal(4), rng.standard_normal((2, 3, 2))]
    ours = with_grads(grads)
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for param, grad in zip(theirs, grads):
        param.grad = torch.from_numpy(grad.copy())
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type, foreach=False)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-13)
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(host(mine.grad), reference.grad.numpy(), rtol=1e-13)

"""Losses: gradients against finite differences and against autograd through the same formula written
with primitive ops, forward values against NumPy, PyTorch's conventions at the edges, dtypes, and every
bad input."""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyae as ta
from tinyae import backend
from tinyae.backend import strict
from tinyae.ops import loss
from tinyae.testing import strategies
from tests.conftest import BACKEND, to_numpy

REDUCTIONS = ("mean", "sum", "none")
TORCH_EPSILON = np.float32(1e-12)  # the clamp of p(1 − p) in PyTorch's binary_cross_entropy backward


def reduce(value, reduction):
    """A reduction written with primitive tinyae ops (or NumPy), for the reference formulas."""
    if reduction == "none":
        return value
    return value.sum() if reduction == "sum" else value.mean()


@dataclass
class Case:
    """One loss: its fused op, the same formula from primitive ops, a NumPy reference and input domains."""

    fused: Callable
    composed: Callable
    reference: Callable
    domains: tuple  # (low, high, avoid) for each tensor input
    reductions: tuple = REDUCTIONS


def bce_composed(p, t, reduction):
    log_p = ta.maximum(p.log(), -100.0)
    log_1mp = ta.maximum((1 - p).log(), -100.0)
    return reduce(-(t * log_p + (1 - t) * log_1mp), reduction)


def kl_sparsity_case(rho):
    return Case(
        fused=lambda rho_hat, reduction: loss.kl_sparsity(rho, rho_hat),
        composed=lambda rho_hat, reduction: (
            rho * (math.log(rho) - rho_hat.log()) + (1 - rho) * (math.log(1 - rho) - (1 - rho_hat).log())
        ).sum(),
        reference=lambda rho_hat, reduction: np.sum(
            rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
        ),
        domains=((0.02, 0.98, ()),),
        reductions=("sum",),
    )


CASES = {
    "mse_loss": Case(
        fused=lambda x, t, reduction: loss.mse_loss(x, t, reduction=reduction),
        composed=lambda x, t, reduction: reduce((x - t) * (x - t), reduction),
        reference=lambda x, t, reduction: reduce((x - t) ** 2, reduction),
        domains=((-3, 3, ()), (-3, 3, ())),
    ),
    "binary_cross_entropy": Case(
        fused=lambda p, t, reduction: loss.binary_cross_entropy(p, t, reduction=reduction),
        composed=bce_composed,
        reference=lambda p, t, reduction: reduce(-(t * np.log(p) + (1 - t) * np.log1p(-p)), reduction),
        domains=((0.02, 0.98, ()), (0.01, 0.99, ())),  # finite differences must stay inside [0, 1]
    ),
    "binary_cross_entropy_with_logits": Case(
        fused=lambda x, t, reduction: loss.binary_cross_entropy_with_logits(x, t, reduction=reduction),
        composed=lambda x, t, reduction: reduce(
            ta.maximum(x, 0.0) - x * t + (1 + (-x.abs()).exp()).log(), reduction
        ),
        reference=lambda x, t, reduction: reduce(  # log σ(x) = −log(1 + e⁻ˣ), log(1 − σ(x)) = −log(1 + eˣ)
            t * np.logaddexp(0, -x) + (1 - t) * np.logaddexp(0, x), reduction
        ),
        domains=((-6, 6, (0.0,)), (0, 1, ())),  # x = 0 is a kink of the composed max(x, 0)
    ),
    "gaussian_kl": Case(
        fused=lambda mu, logvar, reduction: loss.gaussian_kl(mu, logvar, reduction=reduction),
        composed=lambda mu, logvar, r: reduce(-0.5 * (1 + logvar - mu * mu - logvar.exp()), r),
        reference=lambda mu, logvar, r: reduce(0.5 * (mu**2 + np.exp(logvar) - logvar - 1), r),
        domains=((-3, 3, ()), (-3, 3, ())),
    ),
    "l1_penalty": Case(
        fused=lambda code, reduction: loss.l1_penalty(code, reduction=reduction),
        composed=lambda code, reduction: reduce(code.abs(), reduction),
        reference=lambda code, reduction: reduce(np.abs(code), reduction),
        domains=((-3, 3, (0.0,)),),
    ),
    "kl_sparsity(rho=0.05)": kl_sparsity_case(0.05),
    "kl_sparsity(rho=0.6)": kl_sparsity_case(0.6),
}


@st.composite
def case_inputs(draw, case: Case):
    """(host arrays, reduction) for one example of ``case``."""
    shape = draw(strategies.shapes(max_dims=3, max_side=4))
    arrays = [draw(strategies.arrays(shape, low, high, avoid=avoid)) for low, high, avoid in case.domains]
    return arrays, draw(st.sampled_from(case.reductions))


def leaves(arrays, dtype="float64"):
    return [ta.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]


parametrize_cases = pytest.mark.parametrize("name", list(CASES))


@parametrize_cases
@given(data=st.data())
def test_gradcheck(name, data):
    case = CASES[name]
    arrays, reduction = data.draw(case_inputs(case))
    assert ta.gradcheck(lambda *inputs: case.fused(*inputs, reduction), leaves(arrays))


@parametrize_cases
@given(data=st.data())
def test_fused_backward_equals_autograd_through_primitive_ops(name, data):
    case = CASES[name]
    arrays, reduction = data.draw(case_inputs(case))
    fused_inputs, composed_inputs = leaves(arrays), leaves(arrays)
    fused, composed = case.fused(*fused_inputs, reduction), case.composed(*composed_inputs, reduction)
    np.testing.assert_allclose(to_numpy(fused), to_numpy(composed), rtol=1e-10, atol=1e-12)
    grad_out = np.random.default_rng(0).standard_normal(fused.shape)
    fused.backward(ta.tensor(grad_out))
    composed.backward(ta.tensor(grad_out))
    for a, b in zip(fused_inputs, composed_inputs):
        np.testing.assert_allclose(to_numpy(a.grad), to_numpy(b.grad), rtol=1e-10, atol=1e-12)


@parametrize_cases
@given(data=st.data())
def test_forward_matches_numpy_formula(name, data):
    case = CASES[name]
    arrays, reduction = data.draw(case_inputs(case))
    out = case.fused(*leaves(arrays), reduction)
    expected = case.reference(*arrays, reduction)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-12, atol=1e-14)


@parametrize_cases
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_and_shape_are_kept(name, dtype):
    case = CASES[name]
    rng = np.random.default_rng(1)
    arrays = [rng.uniform(max(low, 0.1), min(high, 0.9), (3, 2)) for low, high, _ in case.domains]
    for reduction in case.reductions:
        inputs = leaves(arrays, dtype)
        out = case.fused(*inputs, reduction)
        assert out.dtype == np.dtype(dtype)
        assert out.shape == ((3, 2) if reduction == "none" else ())
        out.backward(ta.tensor(np.ones(out.shape), dtype=dtype))
        for x in inputs:
            assert x.grad.dtype == np.dtype(dtype) and x.grad.shape == (3, 2)


@parametrize_cases
def test_zero_grad_out_gives_zero_and_backward_repeats(name):
    case = CASES[name]
    rng = np.random.default_rng(2)
    arrays = [rng.uniform(max(low, 0.1), min(high, 0.9), (2, 3)) for low, high, _ in case.domains]
    inputs = leaves(arrays)
    out = case.fused(*inputs, case.reductions[0])
    out.backward(ta.tensor(np.zeros(out.shape)), retain_graph=True)
    assert all(not np.any(to_numpy(x.grad)) for x in inputs)
    grad_out = ta.tensor(rng.standard_normal(out.shape))
    out.backward(grad_out, retain_graph=True)
    first = [to_numpy(x.grad) for x in inputs]
    for x in inputs:
        x.grad = None
    out.backward(grad_out)
    for x, expected in zip(inputs, first):
        np.testing.assert_array_equal(to_numpy(x.grad), expected)


# Reductions -----------------------------------------------------------------------------------------------

def test_reductions_mean_what_they_mean_in_pytorch():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    elementwise = to_numpy(loss.mse_loss(ta.tensor(x), ta.tensor(t), reduction="none"))
    np.testing.assert_allclose(elementwise, (x - t) ** 2)
    np.testing.assert_allclose(loss.mse_loss(ta.tensor(x), ta.tensor(t)).item(), elementwise.mean())
    np.testing.assert_allclose(loss.mse_loss(ta.tensor(x), ta.tensor(t), "sum").item(), elementwise.sum())


def test_gaussian_kl_sums_over_batch_and_latent_by_default():
    mu, logvar = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([[0.0, 0.3], [-0.4, 1.0]])
    terms = 0.5 * (mu**2 + np.exp(logvar) - logvar - 1)
    mu, logvar = ta.tensor(mu), ta.tensor(logvar)
    np.testing.assert_allclose(loss.gaussian_kl(mu, logvar).item(), terms.sum())
    np.testing.assert_allclose(loss.gaussian_kl(mu, logvar, "mean").item(), terms.mean())
    assert loss.gaussian_kl(ta.tensor(np.zeros(3)), ta.tensor(np.zeros(3))).item() == 0.0


def test_gaussian_kl_is_accurate_for_tiny_divergences():
    logvar = np.array([1e-8, -1e-9])
    out = to_numpy(loss.gaussian_kl(ta.tensor(np.zeros(2)), ta.tensor(logvar), "none"))
    expected = 0.5 * (logvar**2 / 2 + logvar**3 / 6)  # series of ½(eˡ − 1 − l)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_l1_penalty_subgradient_at_zero_is_zero():
    code = ta.tensor(np.array([-2.0, 0.0, 3.0]), requires_grad=True)
    loss.l1_penalty(code).backward()
    assert to_numpy(code.grad).tolist() == [-1.0, 0.0, 1.0]


def test_kl_sparsity_is_zero_at_the_target():
    rho_hat = ta.tensor(np.full(5, 0.2), requires_grad=True)
    out = loss.kl_sparsity(0.2, rho_hat)
    out.backward()
    assert abs(out.item()) < 1e-15 and np.allclose(to_numpy(rho_hat.grad), 0, atol=1e-12)


# Extreme values: finite, PyTorch's numbers, and no warnings (pytest turns warnings into errors) ------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_at_exact_zero_and_one(dtype):
    p = ta.tensor(np.array([0.0, 1.0, 0.0, 1.0]), requires_grad=True, dtype=dtype)
    t = ta.tensor(np.array([0.0, 0.0, 1.0, 1.0]), requires_grad=True, dtype=dtype)
    out = loss.binary_cross_entropy(p, t, reduction="none")
    assert to_numpy(out).tolist() == [0.0, 100.0, 100.0, 0.0]
    out.backward(ta.tensor(np.ones(4), dtype=dtype))
    inverse_epsilon = 1 / np.asarray(TORCH_EPSILON, dtype)
    np.testing.assert_allclose(to_numpy(p.grad), [0.0, inverse_epsilon, -inverse_epsilon, 0.0], rtol=1e-7)
    # target gradient: the derivative of the clamped loss, log(1 − p) − log p, each log clamped at −100
    assert to_numpy(t.grad).tolist() == [100.0, -100.0, 100.0, -100.0]
    assert p.grad.dtype == t.grad.dtype == np.dtype(dtype)


def test_bce_gradient_uses_pytorch_epsilon_near_zero_and_one():
    values = np.array([1e-15, 1e-13, 1e-12, 1e-11, 1e-6, 1 - 1e-13, 1 - 1e-6, 0.5])
    target = np.array([1.0, 0.0, 1.0, 0.3, 0.0, 0.0, 1.0, 0.9])
    p = ta.tensor(values, requires_grad=True)
    loss.binary_cross_entropy(p, ta.tensor(target), reduction="sum").backward()
    expected = (values - target) / np.maximum((1 - values) * values, np.float64(TORCH_EPSILON))
    np.testing.assert_allclose(to_numpy(p.grad), expected, rtol=1e-12)


def test_bce_log_of_tiny_probabilities_is_clamped_at_minus_100():
    p = ta.tensor(np.array([1e-300, 1e-40, 1e-20]))
    out = to_numpy(loss.binary_cross_entropy(p, ta.tensor(np.ones(3)), reduction="none"))
    np.testing.assert_allclose(out, [100.0, 40 * np.log(10), 20 * np.log(10)], rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_at_plus_minus_1e4(dtype):
    x = ta.tensor(np.array([1e4, -1e4, 1e4, -1e4]), requires_grad=True, dtype=dtype)
    t = ta.tensor(np.array([1.0, 0.0, 0.0, 1.0]), requires_grad=True, dtype=dtype)
    out = loss.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert to_numpy(out).tolist() == [0.0, 0.0, 1e4, 1e4]
    out.backward(ta.tensor(np.ones(4), dtype=dtype))
    assert to_numpy(x.grad).tolist() == [0.0, 0.0, 1.0, -1.0]
    assert to_numpy(t.grad).tolist() == [-1e4, 1e4, -1e4, 1e4]
    assert out.dtype == x.grad.dtype == t.grad.dtype == np.dtype(dtype)
    total = loss.binary_cross_entropy_with_logits(x, t)
    assert np.isfinite(total.item()) and total.item() == 5e3


def test_bce_with_logits_is_accurate_in_the_tails():
    x = np.array([-28.16057094182628, 40.1, -745.0, 30.0])
    t = np.array([0.0, 1 - 2.0**-45, 0.0, 1.0])
    out = to_numpy(loss.binary_cross_entropy_with_logits(ta.tensor(x), ta.tensor(t), reduction="none"))
    # exact values (to double precision); the second is 0.25% off if computed as x − x·t + log1p(e⁻ˣ),
    # where the rounding of x·t swamps (1 − t)·x ≈ 1.1e-12
    expected = [5.888700040433257e-13, 1.139714392229096e-12, 5e-324, np.log1p(np.exp(-30.0))]
    if BACKEND == "cupy" and out[2] == 0:  # CUDA's double exp(−745) gives 0, not the subnormal 5e-324
        expected[2] = 0.0  # (seen on an H200 with CUDA 13): the device library, not tinyae's formula
    np.testing.assert_allclose(out, expected, rtol=1e-13)


def test_kl_sparsity_with_saturated_units_is_finite():
    rho_hat = ta.tensor(np.array([0.0, 1.0, 0.5]), requires_grad=True)
    out = loss.kl_sparsity(0.1, rho_hat)
    out.backward()
    assert np.isfinite(out.item()) and np.all(np.isfinite(to_numpy(rho_hat.grad)))


# Targets: Tensors or backend arrays, cast to the input's dtype ---------------------------------------------

def test_target_may_be_a_backend_array(xp):
    x, t = np.array([0.2, 0.7]), np.array([0.0, 1.0])
    for function in (loss.mse_loss, loss.binary_cross_entropy, loss.binary_cross_entropy_with_logits):
        with_tensor = function(ta.tensor(x), ta.tensor(t)).item()
        assert function(ta.tensor(x), xp.asarray(t)).item() == with_tensor


def test_target_of_another_dtype_keeps_the_input_dtype():
    x = ta.tensor(np.array([0.2, 0.7], np.float32), requires_grad=True)
    t = ta.tensor(np.array([0.0, 1.0]), requires_grad=True)  # float64
    for function in (loss.mse_loss, loss.binary_cross_entropy, loss.binary_cross_entropy_with_logits):
        x.grad = t.grad = None
        out = function(x, t)
        out.backward()
        assert out.dtype == np.float32 and x.grad.dtype == np.float32 and t.grad.dtype == np.float64


def test_integer_target_array(xp):
    x = ta.tensor(np.array([0.2, 0.7], np.float32))
    out = loss.binary_cross_entropy(x, xp.asarray(np.array([0, 1])))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.item(), -(np.log(0.8) + np.log(0.7)) / 2, rtol=1e-6)


# Bad input --------------------------------------------------------------------------------------------------

REDUCED = {
    "mse_loss": lambda r: loss.mse_loss(ta.tensor([0.5]), ta.tensor([0.5]), reduction=r),
    "binary_cross_entropy": lambda r: loss.binary_cross_entropy(
        ta.tensor([0.5]), ta.tensor([0.5]), reduction=r
    ),
    "binary_cross_entropy_with_logits": lambda r: loss.binary_cross_entropy_with_logits(
        ta.tensor([0.5]), ta.tensor([0.5]), reduction=r
    ),
    "gaussian_kl": lambda r: loss.gaussian_kl(ta.tensor([0.5]), ta.tensor([0.5]), reduction=r),
    "l1_penalty": lambda r: loss.l1_penalty(ta.tensor([0.5]), reduction=r),
}


@pytest.mark.parametrize("name", list(REDUCED))
@pytest.mark.parametrize("reduction", ["avg", "Mean", None, "batchmean"])
def test_bad_reduction_lists_the_valid_ones(name, reduction):
    with pytest.raises(ValueError, match=r"'mean', 'sum', 'none'") as error:
        REDUCED[name](reduction)
    assert name in str(error.value) and repr(reduction) in str(error.value)


@pytest.mark.parametrize(
    "function",
    [loss.mse_loss, loss.binary_cross_entropy, loss.binary_cross_entropy_with_logits, loss.gaussian_kl],
)
@pytest.mark.parametrize("shapes", [((4, 1), (4,)), ((2, 3), (3, 2)), ((), (1,))])
def test_shape_mismatch_names_both_shapes(function, shapes):
    first, second = (ta.tensor(np.full(shape, 0.5)) for shape in shapes)
    with pytest.raises(ValueError) as error:
        function(first, second)
    message = str(error.value)
    assert str(shapes[0]) in message and str(shapes[1]) in message


@pytest.mark.parametrize("bad", [-0.1, 1.1, np.nan, -np.inf])
def test_bce_rejects_probabilities_outside_unit_interval(bad):
    """At the call on NumPy; at the next read on a device (see the next test), after the loss of the bad
    values was computed: NumPy warns there about ∞ − ∞ under strict (CuPy does not warn)."""
    good = ta.tensor([0.5, 0.5])
    with np.errstate(invalid="ignore"):
        with pytest.raises(ValueError, match=re.escape("input must lie in [0, 1]")):
            loss.binary_cross_entropy(ta.tensor([0.5, bad]), good).item()
        with pytest.raises(ValueError, match=re.escape("target must lie in [0, 1]")):
            loss.binary_cross_entropy(good, ta.tensor([bad, 0.5])).item()


@pytest.mark.parametrize("call", [
    lambda p: loss.binary_cross_entropy(p, ta.tensor([0.5, 0.5])),
    lambda p: loss.binary_cross_entropy(ta.tensor([0.5, 0.5]), p),
    lambda p: loss.kl_sparsity(0.1, p),
], ids=["bce input", "bce target", "kl_sparsity"])
def test_on_a_device_the_unit_interval_check_makes_no_sync_and_fails_at_the_next_read(call):
    """PyTorch's CUDA kernels assert on the device and report at the next synchronisation; so does tinyae,
    with its own message (backend.device_assert), and once. A host value is checked at once."""
    ta.set_backend("strict")
    backend.check_device_asserts()  # nothing pending from earlier tests
    with strict.count_syncs() as syncs:
        value = call(ta.tensor([0.5, 1.5]))
    assert syncs.count == 0
    with pytest.raises(ValueError, match=re.escape("must lie in [0, 1]")):
        value.item()
    value.item()  # reported once: the next read passes
    call(ta.tensor([0.5, 0.25])).item()  # valid input passes
    call(ta.tensor([0.5, 1.5]))
    call(ta.tensor([0.5, 0.25]))  # a later valid call does not hide the earlier failure
    with pytest.raises(ValueError, match=re.escape("must lie in [0, 1]")):
        value.item()
    with pytest.raises(ValueError, match=re.escape("must lie in [0, 1]")):
        loss.kl_sparsity(0.1, np.array([0.5, 1.5]))  # host data: at once


@pytest.mark.parametrize("rho", [0, 1, 0.0, 1.0, -0.1, 1.5, float("nan")])
def test_kl_sparsity_rejects_rho_outside_open_interval(rho):
    with pytest.raises(ValueError, match="rho"):
        loss.kl_sparsity(rho, ta.tensor([0.5]))


@pytest.mark.parametrize("rho", ["0.1", True, None, [0.1]])
def test_kl_sparsity_rejects_rho_that_is_not_a_number(rho):
    with pytest.raises(TypeError, match="rho"):
        loss.kl_sparsity(rho, ta.tensor([0.5]))


@pytest.mark.parametrize("bad", [-0.1, 1.1, np.nan])
def test_kl_sparsity_rejects_rho_hat_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="rho_hat"):
        loss.kl_sparsity(0.1, ta.tensor([0.5, bad])).item()


def test_integer_input_is_refused(xp):
    integers = xp.asarray(np.array([1, 2]))
    with pytest.raises(TypeError, match="floating"):
        loss.mse_loss(integers, integers)
    with pytest.raises(TypeError, match="floating"):
        loss.l1_penalty(integers)

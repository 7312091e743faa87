"""Fused kernels: each NumPy twin equals the unfused formula; the strict backend checks calls as CuPy would;
the CuPy kernels equal their twins (gpu); the fused Adam path equals the per-parameter loop bit for bit."""

import numpy as np
import pytest

import tinyae as ta
from tinyae import kernels, optim
from tinyae.optim import adam
from tinyae.backend import module
from tinyae.backend.strict import StrictArray
from tests.conftest import BACKEND, to_numpy

KERNELS = kernels.all_kernels()

rng = np.random.default_rng(0)


def arrays(*shapes, dtype=np.float64):
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


REFERENCES = {
    "relu_forward": (lambda x, _: (x,), lambda x: np.maximum(x, 0)),
    "relu_backward": (lambda g, y: (g, np.maximum(y, 0)), lambda g, y: g * (y > 0)),
    "sigmoid_backward": (lambda g, x: (g, sigmoid(x)), lambda g, y: g * y * (1 - y)),
    "tanh_backward": (lambda g, x: (g, np.tanh(x)), lambda g, y: g * (1 - y**2)),
    "bce_with_logits": (lambda x, t: (x * 5, sigmoid(t)),
                        lambda x, t: (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))), sigmoid(x) - t)),
    "gaussian_kl_terms": (lambda mu, lv: (mu, lv),
                    lambda mu, lv: (0.5 * (mu**2 + np.exp(lv) - lv - 1), 0.5 * (np.exp(lv) - 1))),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_twin_equals_the_unfused_formula(name, xp):
    prepare, reference = REFERENCES[name]
    inputs = prepare(*arrays((4, 5), (4, 5)))
    result = KERNELS[name](*(xp.asarray(a) for a in inputs))
    expected = reference(*inputs)
    for got, want in zip(result if isinstance(result, tuple) else (result,),
                         expected if isinstance(expected, tuple) else (expected,)):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12, atol=1e-15)


def test_reparameterize_and_softplus_and_leaky_twins(xp):
    mu, logvar, eps, grad = arrays((3, 4), (3, 4), (3, 4), (3, 4))
    z, half_noise = KERNELS["reparameterize_terms"](*(xp.asarray(a) for a in (mu, logvar, eps)))
    np.testing.assert_allclose(to_numpy(z), mu + np.exp(0.5 * logvar) * eps, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(half_noise), 0.5 * np.exp(0.5 * logvar) * eps, rtol=1e-12)
    leaky = KERNELS["leaky_relu_backward"](xp.asarray(grad), xp.asarray(mu > 0), 0.2)
    np.testing.assert_allclose(to_numpy(leaky), np.where(mu > 0, grad, 0.2 * grad))
    exp_scaled = np.exp(np.minimum(mu, 1.0))
    soft = KERNELS["softplus_backward"](xp.asarray(grad), xp.asarray(exp_scaled), xp.asarray(mu > 1.0))
    np.testing.assert_allclose(to_numpy(soft), np.where(mu > 1.0, grad, grad * sigmoid(np.minimum(mu, 1.0))))


def test_float32_stays_float32(xp):
    x, t = arrays((8,), (8,), dtype=np.float32)
    loss, slope = KERNELS["bce_with_logits"](xp.asarray(x), xp.asarray(t))
    assert loss.dtype == slope.dtype == np.float32


def test_strict_checks_calls_like_cupy():
    strict = module("strict")
    x32, x64 = strict.asarray(np.ones(3, np.float32)), strict.asarray(np.ones(3))
    with pytest.raises(TypeError, match="takes 2 inputs"):
        KERNELS["relu_backward"](x32)
    with pytest.raises(TypeError, match="dtype float64"):
        KERNELS["relu_backward"](x32, x64)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        KERNELS["relu_backward"](x32, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="declared bool"):
        KERNELS["leaky_relu_backward"](x32, x32, 0.1)
    assert type(KERNELS["relu_backward"](x32, x32)) is StrictArray


def test_kernel_definitions_are_validated():
    with pytest.raises(ValueError, match="never assigns"):
        kernels.Kernel("broken", "T x", "T y", "T z = x;", lambda x: x)
    with pytest.raises(ValueError, match="reserved"):
        kernels.Kernel("reserved", "T i", "T y", "y = i;", lambda i: i)


def test_adam_twin_slices_any_contiguous_shape_without_changing_a_bit():
    shape = (300, 300)  # 90,000 elements: more than one slice of adam.CHUNK
    grad, param, exp_avg = arrays(shape, shape, shape, dtype=np.float32)
    exp_avg_sq = np.abs(arrays(shape, dtype=np.float32)[0])
    scalars = (0.1, 0.999, 0.001, 1e-3, 0.5, 1e-8, 0.01, 0.999)
    whole = [a.copy() for a in (param, exp_avg, exp_avg_sq)]
    adam._adam_slice(grad, *scalars, *whole)
    sliced = [a.copy() for a in (param, exp_avg, exp_avg_sq)]
    adam._adam_twin(grad, *scalars, *sliced)
    assert all(np.array_equal(a, b) for a, b in zip(whole, sliced))
    assert not np.array_equal(sliced[0], param)  # it did update, in place


class UnfusedAdam(optim.Adam):
    def _fused_step(self, group):
        return False


@pytest.mark.parametrize("kind, options", [(optim.Adam, {}), (optim.Adam, {"weight_decay": 0.1}),
                                           (optim.AdamW, {"weight_decay": 0.1})])
def test_fused_adam_equals_the_per_parameter_loop(kind, options):
    shapes = [(4, 3), (3,), (2, 2, 2), (40, 30)]  # the last one large enough for the compiled loop
    values = arrays(*shapes, dtype=np.float32)
    fused_params = [ta.tensor(v, requires_grad=True) for v in values]
    plain_params = [ta.tensor(v, requires_grad=True) for v in values]
    arrays_before = [p.data for p in fused_params]
    fused = kind(fused_params, lr=0.01, **options)
    plain = UnfusedAdam(plain_params, lr=0.01, decoupled_weight_decay=kind is optim.AdamW, **options)
    for step in range(4):
        grads = arrays(*shapes, dtype=np.float32)
        for params in (fused_params, plain_params):
            for param, grad in zip(params, grads):
                param.grad = ta.tensor(grad).data
        fused.step()
        plain.step()
    assert all(p.data is before for p, before in zip(fused_params, arrays_before))  # updated in place
    # Adam moves a weight by at most about lr·(1 − β₁)/√(1 − β₂) a step (Kingma & Ba, section 2.1)
    largest_step = 0.01 * (1 - 0.9) / (1 - 0.999) ** 0.5
    for a, b in zip(fused_params, plain_params):
        assert_same_update(to_numpy(a), to_numpy(b), steps=4, cancelling=largest_step)
        assert_same_update(to_numpy(fused.state[a]["exp_avg_sq"]), to_numpy(plain.state[b]["exp_avg_sq"]),
                           steps=4, cancelling=0.0)


def assert_same_update(fused, plain, steps: int, cancelling: float):
    """Bit for bit on the CPU, where the compiled loop and the twin round every operation alike. CuPy
    compiles the kernel with fused multiply-adds: in each step, each of the ~4 roundings it merges may differ
    by an ulp of the terms it adds, so the results may differ by steps·4·eps relative to their size, or to
    ``cancelling``, the size of a term that may have cancelled (a weight near 0 after an update much larger
    than it: a weight 17 ulps apart was seen on an H200). The second moment sums positive terms: nothing
    cancels."""
    if BACKEND == "cupy":
        eps = np.finfo(plain.dtype).eps
        np.testing.assert_allclose(fused, plain, rtol=steps * 4 * eps, atol=steps * 4 * eps * cancelling)
    else:
        assert np.array_equal(fused, plain)

"""The kernels' CUDA bodies compiled as C loops for NumPy arrays: equal to their twins (bit for bit where the
body is arithmetic, to rounding where it calls exp or log), used only where they apply, and a missing
compiler costs speed, never a result."""

import numpy as np
import pytest

from tinyae import kernels
from tinyae.kernels import cloop, compiler

KERNELS = kernels.all_kernels()

rng = np.random.default_rng(7)
SHAPE = (37, 29)  # odd sizes: the vector loop's remainder runs too


def normal(dtype):
    return rng.standard_normal(SHAPE).astype(dtype)


def adam_arguments(dtype):
    return (normal(dtype), 0.1, 0.999, 0.001, 1e-3 / 0.1, 0.05, 1e-8, 0.01, 1.0,
            normal(dtype), normal(dtype), np.abs(normal(dtype)))


ARGUMENTS = {  # kernel name → arguments for a dtype; outputs given (after the inputs) are updated in place
    "relu_forward": lambda d: (normal(d),),
    "relu_backward": lambda d: (normal(d), np.maximum(normal(d), 0)),
    "leaky_relu_backward": lambda d: (normal(d), normal(d) > 0, 0.01),
    "sigmoid_backward": lambda d: (normal(d), 1 / (1 + np.exp(-normal(d)))),
    "tanh_backward": lambda d: (normal(d), np.tanh(normal(d))),
    "softplus_backward": lambda d: (normal(d), np.exp(np.minimum(normal(d), 1)), normal(d) > 1),
    "bce_with_logits": lambda d: (5 * normal(d), rng.random(SHAPE).astype(d)),
    "gaussian_kl_terms": lambda d: (normal(d), normal(d)),
    "reparameterize_terms": lambda d: (normal(d), normal(d), normal(d)),
    "adam_update": adam_arguments,
}


def test_every_kernel_is_covered():
    assert set(ARGUMENTS) == set(KERNELS)


def run_both(kernel, arguments):
    """(compiled result, twin result), each on its own copy of the arguments; in-place outputs returned."""
    results = []
    for run in (kernel.cpu_loop, kernel.twin):
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in arguments]
        result = run(*copies)
        assert result is not NotImplemented
        if len(copies) > len(kernel.inputs):
            result = tuple(copies[len(kernel.inputs):])
        results.append(result if isinstance(result, tuple) else (result,))
    return results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ARGUMENTS))
def test_compiled_loop_equals_the_twin(name, dtype):
    kernel = KERNELS[name]
    if not kernel.cpu_loop.vectorizes:
        pytest.skip(f"{name} calls {sorted(kernel.cpu_loop.math_calls)}: no SIMD versions in this C library")
    compiled, twin = run_both(kernel, ARGUMENTS[name](dtype))
    for got, want in zip(compiled, twin):
        assert got.dtype == want.dtype == dtype and got.shape == want.shape
        if kernel.cpu_loop.math_calls:  # libm's exp/log against NumPy's: a few units in the last place
            eps = np.finfo(dtype).eps  # absolute too: σ(x) − t cancels; its error scales with σ ≤ 1
            np.testing.assert_allclose(got, want, rtol=8 * eps, atol=8 * eps)
        else:  # same operations in the same order, no fused multiply-add: the same bits
            assert np.array_equal(got, want)


def test_special_values_match_the_twin():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 88.0, -88.0, 1e4, -1e4], np.float32)
    target = np.full_like(x, 0.3)
    with np.errstate(all="ignore"):  # (where warnings are on, the loop leaves such calls to the twin)
        compiled, twin = run_both(KERNELS["bce_with_logits"], (x, target))
        (relu,), (relu_twin,) = run_both(KERNELS["relu_forward"], (x,))
    for got, want in zip(compiled, twin):
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert np.isnan(relu[4]) and np.array_equal(relu[[2, 3, 9, 10]], [np.inf, 0, 1e4, 0])
    assert np.array_equal(np.signbit(relu), np.signbit(relu_twin))
    assert not np.signbit(relu[1])  # relu(−0) = +0


def test_read_only_inputs_are_read_in_place():
    grad, out = normal(np.float32), normal(np.float32)
    grad.flags.writeable = out.flags.writeable = False
    np.testing.assert_array_equal(KERNELS["relu_backward"].cpu_loop(grad, out), grad * (out > 0))


def test_arguments_the_loop_does_not_take_go_to_the_twin():
    grad, out = normal(np.float32), normal(np.float32)
    assert KERNELS["relu_backward"].cpu_loop(grad[:, ::2], out[:, ::2]) is NotImplemented  # strided
    assert KERNELS["relu_backward"].cpu_loop(grad, out[:1]) is NotImplemented  # broadcast
    assert KERNELS["relu_backward"].cpu_loop(grad, out.astype(np.float64)) is NotImplemented  # mixed dtypes
    assert KERNELS["relu_backward"].cpu_loop(grad.astype(np.float16), out.astype(np.float16)) is NotImplemented
    loop = KERNELS["relu_backward"].cpu_loop
    assert loop(grad) is NotImplemented  # too few arguments
    assert loop(grad, out, grad.copy(), grad.copy()) is NotImplemented  # too many
    assert loop(grad, out, 1.0) is NotImplemented  # a scalar output
    assert loop(grad, out.view(type("Subclass", (np.ndarray,), {}))) is NotImplemented
    misaligned = np.zeros(out.nbytes + 1, np.uint8)[1:].view(np.float32).reshape(SHAPE)
    assert not misaligned.flags.aligned and loop(grad, misaligned) is NotImplemented
    frozen = normal(np.float32)
    frozen.flags.writeable = False
    assert KERNELS["relu_backward"].cpu_loop(grad, out, frozen) is NotImplemented  # a read-only output
    given = np.empty_like(grad.T, order="C")  # inputs in another layout than the output's: copied into it
    assert loop(grad.T, out.T, given) is given
    np.testing.assert_array_equal(given, KERNELS["relu_backward"].twin(grad.T, out.T))
    np.testing.assert_array_equal(KERNELS["relu_backward"](grad[:, ::2], out[:, ::2]), grad[:, ::2] * (out[:, ::2] > 0))


def test_any_shared_memory_order_runs_compiled_and_other_inputs_are_copied_into_it():
    chwn = rng.standard_normal((3, 5, 7, 8)).astype(np.float32)
    x = chwn.transpose(3, 0, 1, 2)  # an (N, C, H, W) view of (C, H, W, N) memory, as the convolutions return
    target = np.ascontiguousarray(rng.random(x.shape, dtype=np.float32))  # the same shape, C order
    loss, slope = KERNELS["bce_with_logits"].cpu_loop(x, target)
    want_loss, want_slope = KERNELS["bce_with_logits"].twin(x, target)
    for got, want in ((loss, want_loss), (slope, want_slope)):
        assert got.strides == x.strides  # allocated in the first argument's layout
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    y = KERNELS["relu_forward"].cpu_loop(x)
    assert y.strides == x.strides and np.array_equal(y, np.maximum(x, 0))
    grad = rng.standard_normal(x.shape).astype(np.float32)  # C order, against the first argument's
    np.testing.assert_array_equal(KERNELS["relu_backward"].cpu_loop(grad, y), grad * (y > 0))
    assert KERNELS["relu_forward"].cpu_loop(chwn[..., ::2].transpose(3, 0, 1, 2)) is NotImplemented  # gaps: strided


def test_the_generated_source_is_the_body_in_a_loop():
    is_array = (True,) + (False,) * 8 + (True,) * 3  # grad, eight scalars, param and the two moments
    source = KERNELS["adam_update"].cpu_loop.source((np.dtype(np.float32),) * 12, is_array, True)
    assert "typedef float T;" in source and "const float *_grad" in source
    assert "float exp_avg = _exp_avg[i];" in source
    assert "exp_avg += (g - exp_avg) * one_minus_beta1;" in source and "_param[i] = param;" in source
    assert "libmvec" not in source and "SIMD" not in source  # no exp/log: no vector-math declarations
    assert "SIMD" in KERNELS["bce_with_logits"].cpu_loop.source((np.dtype(np.float32),) * 4, (True,) * 4, False)


@pytest.fixture
def fresh_compiler_state(monkeypatch):
    """Forget what was learned about the C compiler, before and after the test."""
    compiler.toolchain.cache_clear()
    cloop.vector_math_available.cache_clear()
    yield monkeypatch
    compiler.toolchain.cache_clear()
    cloop.vector_math_available.cache_clear()


def test_small_arrays_take_the_twin_and_large_ones_the_loop(monkeypatch):
    calls = []
    loop = KERNELS["relu_backward"].cpu_loop
    monkeypatch.setattr(KERNELS["relu_backward"], "cpu_loop", lambda *args: calls.append(args) or loop(*args))
    small = np.ones(kernels.MIN_COMPILED_SIZE - 1, np.float32)
    large = np.ones(kernels.MIN_COMPILED_SIZE, np.float32)
    KERNELS["relu_backward"](small, small)
    assert not calls
    KERNELS["relu_backward"](large, large)
    assert len(calls) == 1


# Kernel.foreach: many tensors in one call ---------------------------------------------------------------

FOREACH_SHAPES = [(37, 29), (29,), (3, 5, 7), (1,)]
ADAM_SCALARS = (0.1, 0.999, 0.001, 1e-2, 0.05, 1e-8, 0.01, 0.999)
scaled_add = kernels.Kernel("scaled_add", "T x, T w", "T acc", "acc += w * x",  # an in-place kernel
                            lambda x, w, acc: np.add(acc, w * x, out=acc))


def per_tensor(kernel, tensors, *args):
    """The reference for ``kernel.foreach(tensors, *args)``: one call per tensor, on stretches of the flat
    arrays."""
    offset = 0
    for tensor in tensors:
        part = slice(offset, offset + tensor.size)
        kernel(tensor.reshape(-1), *(a[part] if isinstance(a, np.ndarray) else a for a in args))
        offset += tensor.size


def foreach_arguments(dtype=np.float32):
    grads = [rng.standard_normal(shape).astype(dtype) for shape in FOREACH_SHAPES]
    total = sum(grad.size for grad in grads)
    flats = [rng.standard_normal(total).astype(dtype) for _ in range(2)]
    return grads, flats + [np.abs(rng.standard_normal(total)).astype(dtype)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_foreach_is_one_call_computing_what_a_call_per_tensor_computes(dtype):
    grads, flats = foreach_arguments(dtype)
    expected = [flat.copy() for flat in flats]
    per_tensor(KERNELS["adam_update"], grads, *ADAM_SCALARS, *expected)
    assert KERNELS["adam_update"].cpu_loop.foreach(grads, *ADAM_SCALARS, *flats) is None  # the compiled call ran
    for got, want in zip(flats, expected):
        np.testing.assert_array_equal(got, want)
    xs, (w, acc, _) = foreach_arguments(dtype)  # a list input and a flat one
    want = acc.copy()
    per_tensor(scaled_add, xs, w, want)
    assert scaled_add.cpu_loop.foreach(xs, w, acc) is None
    np.testing.assert_array_equal(acc, want)


def test_foreach_source_runs_the_loop_block_by_block_over_each_tensor():
    kinds = ("list",) + ("scalar",) * 8 + ("flat",) * 3
    source = KERNELS["adam_update"].cpu_loop.foreach_source((np.dtype(np.float32),) * 12, kinds)
    assert ("int tinyae_adam_update_foreach(int __parallel, ptrdiff_t __count, const ptrdiff_t *__sizes, "
            "float *const *_grad," in source)
    assert "tinyae_adam_update_loop(__length, _grad[__t] + __i, one_minus_beta1," in source
    assert "_exp_avg_sq + __offset + __i);" in source


def test_foreach_refuses_what_it_cannot_take_and_reads_inputs_in_other_layouts_from_copies():
    grads, flats = foreach_arguments()
    loop = KERNELS["adam_update"].cpu_loop
    wide = np.zeros((37, 58), np.float32)
    wide[:, ::2] = grads[0]
    strided = [wide[:, ::2]] + grads[1:]  # the same values, not contiguous: an input is read from a copy,
    gapped = np.zeros(2 * flats[0].size, np.float32)[::2]  # an output can't be
    assert loop.foreach(grads, *ADAM_SCALARS, gapped, *flats[1:]) is NotImplemented
    assert loop.foreach(grads[0], *ADAM_SCALARS, *flats) is NotImplemented  # no list first
    assert loop.foreach(grads, *ADAM_SCALARS, *flats[:2]) is NotImplemented  # an output missing
    assert loop.foreach([grads[0].astype(np.float64)] + grads[1:], *ADAM_SCALARS, *flats) is NotImplemented
    assert loop.foreach(grads, *ADAM_SCALARS, flats[0][:-1], *flats[1:]) is NotImplemented  # short
    expected = [flat.copy() for flat in flats]
    per_tensor(KERNELS["adam_update"], grads, *ADAM_SCALARS, *expected)
    assert loop.foreach(strided, *ADAM_SCALARS, *flats) is None
    for got, want in zip(flats, expected):
        np.testing.assert_array_equal(got, want)


def test_foreach_names_an_argument_of_the_wrong_size():
    grads, flats = foreach_arguments()
    with pytest.raises(ValueError, match="flat array 'exp_avg' has 1207 elements, expected 1208"):
        KERNELS["adam_update"].foreach(grads, *ADAM_SCALARS, flats[0], flats[1][:-1], flats[2])
    with pytest.raises(ValueError, match=r"list 'w' holds tensors of sizes \[1, 105, 29, 1073\], expected \[1073,"):
        scaled_add.foreach(grads, grads[::-1], flats[0])


def test_foreach_without_a_compiler_goes_tensor_by_tensor(fresh_compiler_state):
    fresh_compiler_state.setenv("CC", "/nonexistent/cc")
    kernel = kernels.Kernel("scaled_add_again", "T x, T w", "T acc", "acc += w * x",
                            lambda x, w, acc: np.add(acc, w * x, out=acc))
    xs, (w, acc, _) = foreach_arguments()
    want = acc + w * np.concatenate([x.reshape(-1) for x in xs])
    with pytest.warns(RuntimeWarning, match="could not compile"):
        kernel.foreach(xs, w, acc)
    np.testing.assert_array_equal(acc, want)

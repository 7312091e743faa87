"""conv2d, conv_transpose2d and upsample_nearest: values against slow loop references, gradchecks over drawn
configurations, the adjoint identity between conv2d and conv_transpose2d, shapes, dtype and bad input."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyae
from tests.conftest import to_numpy
from tinyae.ops.conv import conv2d, conv_transpose2d, upsample_nearest
from tinyae.testing.strategies import arrays


def as_pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


# Slow references: explicit loops, straight from the definitions --------------------------------------------

def reference_conv2d(x, weight, bias, stride, padding):
    """y[n, o, a, b] = bias[o] + Σ_{c,i,j} w[o, c, i, j] · xpad[n, c, s·a + i, s·b + j]."""
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    n, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    xpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xpad[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c_out, oh, ow))
    for image in range(n):
        for o in range(c_out):
            for a in range(oh):
                for b in range(ow):
                    total = 0.0 if bias is None else bias[o]
                    for ci in range(c):
                        for i in range(kh):
                            for j in range(kw):
                                total += weight[o, ci, i, j] * xpad[image, ci, sh * a + i, sw * b + j]
                    out[image, o, a, b] = total
    return out


def reference_conv_transpose2d(x, weight, bias, stride, padding, output_padding):
    """Each input pixel stamps its kernel onto the output:
    ypad[n, o, s·a + i, s·b + j] += x[n, c, a, b]·w[c, o, i, j]; then p rows/columns are cut from each side
    and the bias added."""
    (sh, sw), (ph, pw), (eh, ew) = as_pair(stride), as_pair(padding), as_pair(output_padding)
    n, c, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    ypad = np.zeros((n, c_out, (h - 1) * sh + kh + eh, (w - 1) * sw + kw + ew))
    for image in range(n):
        for ci in range(c):
            for a in range(h):
                for b in range(w):
                    for o in range(c_out):
                        for i in range(kh):
                            for j in range(kw):
                                stamp = x[image, ci, a, b] * weight[ci, o, i, j]
                                ypad[image, o, sh * a + i, sw * b + j] += stamp
    out = ypad[:, :, ph:ypad.shape[2] - ph, pw:ypad.shape[3] - pw]
    return out if bias is None else out + bias[:, None, None]


def reference_upsample_nearest(x, scale_factor):
    sh, sw = as_pair(scale_factor)
    n, c, h, w = x.shape
    out = np.zeros((n, c, h * sh, w * sw))
    for a in range(h * sh):
        for b in range(w * sw):
            out[:, :, a, b] = x[:, :, a // sh, b // sw]
    return out


# Drawn configurations -----------------------------------------------------------------------------

def int_or_pair(low, high):
    return st.one_of(st.integers(low, high), st.tuples(st.integers(low, high), st.integers(low, high)))


@st.composite
def conv2d_cases(draw):
    """(x, weight, bias or None, stride, padding) with the padded image at least as large as the kernel."""
    n, c, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(int_or_pair(1, 3)), draw(int_or_pair(0, 2))
    ph, pw = as_pair(padding)
    h = draw(st.integers(max(1, kh - 2 * ph), kh + 3))
    w = draw(st.integers(max(1, kw - 2 * pw), kw + 3))
    bias = draw(st.none() | arrays((c_out,)))
    return draw(arrays((n, c, h, w))), draw(arrays((c_out, c, kh, kw))), bias, stride, padding


@st.composite
def conv_transpose2d_cases(draw):
    """(x, weight, bias or None, stride, padding, output_padding) with output_padding < stride and a
    positive output size."""
    n, c, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(int_or_pair(1, 3)), draw(int_or_pair(0, 2))
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in as_pair(stride))
    sizes = []
    for k, s, p, extra in zip(kernel, as_pair(stride), as_pair(padding), output_padding, strict=True):
        smallest = 1 + max(0, -(-(2 * p + 1 - k - extra) // s))  # (H − 1)·s − 2p + k + extra ≥ 1
        sizes.append(draw(st.integers(smallest, smallest + 2)))
    bias = draw(st.none() | arrays((c_out,)))
    x, weight = draw(arrays((n, c, *sizes))), draw(arrays((c, c_out, *kernel)))
    return x, weight, bias, stride, padding, output_padding


def leaves(*arrays_):
    """Tensors requiring grad on the backend under test; None stays None."""
    return [None if a is None else tinyae.tensor(a, requires_grad=True) for a in arrays_]


# Forward values -----------------------------------------------------------------------------------

@given(conv2d_cases())
def test_conv2d_matches_loop_reference(case):
    x, weight, bias, stride, padding = case
    out = conv2d(*leaves(x, weight, bias), stride=stride, padding=padding)
    expected = reference_conv2d(x, weight, bias, stride, padding)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10, strict=True)


@given(conv_transpose2d_cases())
def test_conv_transpose2d_matches_loop_reference(case):
    x, weight, bias, stride, padding, output_padding = case
    options = {"stride": stride, "padding": padding, "output_padding": output_padding}
    out = conv_transpose2d(*leaves(x, weight, bias), **options)
    expected = reference_conv_transpose2d(x, weight, bias, stride, padding, output_padding)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10, strict=True)


@given(st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)).flatmap(arrays),
       int_or_pair(1, 3))
def test_upsample_nearest_matches_loop_reference(x, scale_factor):
    out = upsample_nearest(tinyae.tensor(x), scale_factor)
    np.testing.assert_array_equal(out.numpy(), reference_upsample_nearest(x, scale_factor), strict=True)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 2, 3))
    x_view = tinyae.tensor(x.transpose(0, 1, 3, 2).copy()).transpose(0, 1, 3, 2)[:, :, ::2]
    weight_view = tinyae.tensor(weight[::-1].copy())[::-1]
    expected = reference_conv2d(x[:, :, ::2], weight, None, 1, 1)
    out = conv2d(x_view, weight_view, padding=1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    y = rng.standard_normal((2, 3, 4, 5))
    y_view = tinyae.tensor(y.transpose(0, 1, 3, 2).copy()).transpose(0, 1, 3, 2)
    expected = reference_conv_transpose2d(y, weight.transpose(1, 0, 2, 3), None, 2, 1, 1)
    out = conv_transpose2d(y_view, weight_view.transpose(1, 0, 2, 3), stride=2, padding=1, output_padding=1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)


# Gradients ----------------------------------------------------------------------------------------

@given(conv2d_cases())
def test_conv2d_gradcheck(case):
    x, weight, bias, stride, padding = case
    inputs = [t for t in leaves(x, weight, bias) if t is not None]
    tinyae.gradcheck(lambda *operands: conv2d(*operands, stride=stride, padding=padding), inputs)


@given(conv_transpose2d_cases())
def test_conv_transpose2d_gradcheck(case):
    x, weight, bias, stride, padding, output_padding = case
    inputs = [t for t in leaves(x, weight, bias) if t is not None]
    options = {"stride": stride, "padding": padding, "output_padding": output_padding}
    tinyae.gradcheck(lambda *operands: conv_transpose2d(*operands, **options), inputs)


def test_gradcheck_with_the_vae_layer_shapes():
    """Kernel 4, stride 2, padding 1 as in the conv VAE (beyond the drawn kernel sizes): 6×6 → 3×3 → 6×6."""
    rng = np.random.default_rng(3)
    x, weight, bias = (rng.standard_normal(shape) for shape in [(2, 2, 6, 6), (3, 2, 4, 4), (3,)])
    tinyae.gradcheck(lambda *operands: conv2d(*operands, stride=2, padding=1), leaves(x, weight, bias))
    y, weight_t, bias_t = (rng.standard_normal(shape) for shape in [(2, 3, 3, 3), (3, 2, 4, 4), (2,)])
    inputs = leaves(y, weight_t, bias_t)
    tinyae.gradcheck(lambda *operands: conv_transpose2d(*operands, stride=2, padding=1), inputs)


@given(st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3)).flatmap(arrays),
       int_or_pair(1, 3))
def test_upsample_nearest_gradcheck(x, scale_factor):
    tinyae.gradcheck(lambda x: upsample_nearest(x, scale_factor), leaves(x))


@given(conv2d_cases(), st.integers(0, 2**32 - 1))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(case, seed):
    """⟨conv2d(x, w), y⟩ = ⟨x, conv_transpose2d(y, w)⟩, with the output_padding that restores x's size."""
    x, weight, _, stride, padding = case
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    output_padding = (
        (x.shape[2] + 2 * ph - weight.shape[2]) % sh,  # the rows conv2d's last window left unread
        (x.shape[3] + 2 * pw - weight.shape[3]) % sw,
    )
    forward = conv2d(*leaves(x, weight), stride=stride, padding=padding)
    y = np.random.default_rng(seed).standard_normal(forward.shape)
    back = conv_transpose2d(*leaves(y, weight), stride=stride, padding=padding, output_padding=output_padding)
    assert back.shape == x.shape
    left, right = np.vdot(forward.numpy(), y), np.vdot(x, back.numpy())
    assert abs(left - right) <= 1e-10 * (1 + abs(left))


def test_only_requested_gradients_are_computed():
    rng = np.random.default_rng(1)
    x, weight, bias = (rng.standard_normal(shape) for shape in [(2, 3, 5, 5), (4, 3, 3, 3), (4,)])
    grad_out = rng.standard_normal((2, 4, 3, 3))
    full = leaves(x, weight, bias)
    conv2d(*full, stride=2, padding=1).backward(tinyae.tensor(grad_out))
    for needed in ([True, False, False], [False, True, False], [False, False, True]):
        arrays_ = (x, weight, bias)
        tensors = [tinyae.tensor(a, requires_grad=flag) for a, flag in zip(arrays_, needed, strict=True)]
        conv2d(*tensors, stride=2, padding=1).backward(tinyae.tensor(grad_out))
        for tensor, reference, flag in zip(tensors, full, needed, strict=True):
            if flag:
                np.testing.assert_allclose(to_numpy(tensor.grad), to_numpy(reference.grad), rtol=1e-12)
            else:
                assert tensor.grad is None
    y = tinyae.tensor(grad_out)
    transposed = conv_transpose2d(y, tinyae.tensor(weight, requires_grad=True), stride=2, padding=1)
    transposed.backward(tinyae.tensor(rng.standard_normal(transposed.shape)))
    assert y.grad is None


# Shapes and dtype ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "x_shape, weight_shape, options, expected",
    [
        ((2, 1, 28, 28), (4, 1, 4, 4), {"stride": 2, "padding": 1}, (2, 4, 14, 14)),
        ((2, 3, 14, 14), (5, 3, 4, 4), {"stride": 2, "padding": 1}, (2, 5, 7, 7)),
        ((1, 2, 7, 9), (3, 2, 3, 2), {"stride": (2, 3), "padding": (1, 0)}, (1, 3, 4, 3)),
        ((1, 1, 5, 5), (1, 1, 5, 5), {}, (1, 1, 1, 1)),
        ((1, 1, 1, 1), (2, 1, 3, 3), {"padding": 1}, (1, 2, 1, 1)),
    ],
)
def test_conv2d_output_shape(x_shape, weight_shape, options, expected):
    out = conv2d(tinyae.tensor(np.ones(x_shape)), tinyae.tensor(np.ones(weight_shape)), **options)
    assert out.shape == expected


@pytest.mark.parametrize(
    "x_shape, weight_shape, options, expected",
    [
        ((2, 4, 7, 7), (4, 3, 4, 4), {"stride": 2, "padding": 1}, (2, 3, 14, 14)),
        ((2, 3, 14, 14), (3, 1, 4, 4), {"stride": 2, "padding": 1}, (2, 1, 28, 28)),
        ((1, 2, 3, 4), (2, 5, 3, 2), {"stride": (3, 2), "padding": (1, 0), "output_padding": (2, 1)},
         (1, 5, 9, 9)),
        ((2, 2, 4, 4), (2, 2, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 2, 8, 8)),
        ((1, 1, 1, 1), (1, 1, 1, 1), {}, (1, 1, 1, 1)),
    ],
)
def test_conv_transpose2d_output_shape(x_shape, weight_shape, options, expected):
    out = conv_transpose2d(tinyae.tensor(np.ones(x_shape)), tinyae.tensor(np.ones(weight_shape)), **options)
    assert out.shape == expected


@pytest.mark.parametrize(
    "scale_factor, expected", [(2, (2, 3, 8, 10)), ((3, 2), (2, 3, 12, 10)), (2.0, (2, 3, 8, 10))]
)
def test_upsample_nearest_output_shape(scale_factor, expected):
    assert upsample_nearest(tinyae.tensor(np.ones((2, 3, 4, 5))), scale_factor).shape == expected


@pytest.mark.parametrize(
    "op, shapes",
    [
        (lambda x, w, b: conv2d(x, w, b, stride=2, padding=1), [(2, 3, 6, 6), (4, 3, 3, 3), (4,)]),
        (lambda x, w, b: conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
         [(2, 3, 3, 3), (3, 4, 3, 3), (4,)]),
        (lambda x: upsample_nearest(x, 2), [(2, 3, 3, 3)]),
    ],
    ids=["conv2d", "conv_transpose2d", "upsample_nearest"],
)
def test_float32_is_kept(op, shapes):
    rng = np.random.default_rng(2)
    tensors = [tinyae.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
               for shape in shapes]
    out = op(*tensors)
    assert out.dtype == np.float32
    out.backward(tinyae.tensor(rng.standard_normal(out.shape).astype(np.float32)))
    assert all(t.grad.dtype == np.float32 and t.grad.shape == t.shape for t in tensors)
    assert all(np.isfinite(to_numpy(t.grad)).all() for t in tensors)


# Bad input ----------------------------------------------------------------------------------------

def ones(*shape, dtype=np.float64):
    return tinyae.tensor(np.ones(shape, dtype=dtype))


BAD_INPUTS = [
    (
        lambda: conv2d(ones(3, 5, 5), ones(2, 3, 3, 3)),
        "conv2d: expected input of shape (N, C, H, W) (4-D), got shape (3, 5, 5)",
    ),
    (
        lambda: conv2d(ones(1, 3, 5, 5), ones(2, 3, 3)),
        "conv2d: expected weight of shape (Cout, C, kh, kw) (4-D), got shape (2, 3, 3)",
    ),
    (
        lambda: conv2d(ones(1, 2, 5, 5), ones(4, 3, 3, 3)),
        "conv2d: expected input with 3 channels (weight shape (4, 3, 3, 3)), got 2",
    ),
    (
        lambda: conv2d(ones(1, 1, 2, 5), ones(1, 1, 3, 3)),
        "conv2d: expected a padded input of at least the kernel size (3, 3), got (2, 5)",
    ),
    (
        lambda: conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=0),
        "conv2d: expected stride to be positive, got 0",
    ),
    (
        lambda: conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=(1, -2)),
        "conv2d: expected stride to be positive, got (1, -2)",
    ),
    (
        lambda: conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), padding=-1),
        "conv2d: expected padding to be non-negative, got -1",
    ),
    (
        lambda: conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=1.5),
        "conv2d: expected stride to be an int or a pair of ints, got 1.5",
    ),
    (
        lambda: conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), padding=(1, 1, 1)),
        "conv2d: expected padding to be an int or a pair",
    ),
    (
        lambda: conv2d(ones(1, 1, 5, 5), ones(2, 1, 3, 3), ones(3)),
        "conv2d: expected bias of shape (2,) (one per output channel), got shape (3,)",
    ),
    (
        lambda: conv2d(ones(1, 1, 5, 5), ones(2, 1, 3, 3, dtype=np.float32)),
        "conv2d: expected input, weight and bias of one dtype, got float64, float32",
    ),
    (
        lambda: conv_transpose2d(ones(2, 3, 3), ones(2, 3, 3, 3)),
        "conv_transpose2d: expected input of shape (N, C, H, W) (4-D), got shape (2, 3, 3)",
    ),
    (
        lambda: conv_transpose2d(ones(1, 2, 3, 3), ones(2, 3, 3)),
        "conv_transpose2d: expected weight of shape (Cin, Cout, kh, kw) (4-D), got shape (2, 3, 3)",
    ),
    (
        lambda: conv_transpose2d(ones(1, 3, 3, 3), ones(2, 3, 3, 3)),
        "conv_transpose2d: expected input with 2 channels (weight shape (2, 3, 3, 3)), got 3",
    ),
    (
        lambda: conv_transpose2d(ones(1, 2, 3, 3), ones(2, 1, 3, 3), stride=-1),
        "conv_transpose2d: expected stride to be positive, got -1",
    ),
    (
        lambda: conv_transpose2d(ones(1, 2, 3, 3), ones(2, 1, 3, 3), padding=(0, -1)),
        "conv_transpose2d: expected padding to be non-negative, got (0, -1)",
    ),
    (
        lambda: conv_transpose2d(ones(1, 2, 3, 3), ones(2, 1, 3, 3), stride=2, output_padding=2),
        "conv_transpose2d: expected output_padding smaller than stride (2, 2), got (2, 2)",
    ),
    (
        lambda: conv_transpose2d(ones(1, 2, 3, 3), ones(2, 1, 3, 3), output_padding=-1),
        "conv_transpose2d: expected output_padding to be non-negative, got -1",
    ),
    (
        lambda: conv_transpose2d(ones(1, 2, 1, 1), ones(2, 1, 1, 1), padding=1),
        "conv_transpose2d: expected a positive output size, got (-1, -1)",
    ),
    (
        lambda: conv_transpose2d(ones(1, 2, 3, 3), ones(2, 4, 3, 3), ones(2)),
        "conv_transpose2d: expected bias of shape (4,) (one per output channel), got shape (2,)",
    ),
    (
        lambda: upsample_nearest(ones(3, 4, 4), 2),
        "upsample_nearest: expected input of shape (N, C, H, W) (4-D), got shape (3, 4, 4)",
    ),
    (
        lambda: upsample_nearest(ones(1, 3, 4, 4), 0),
        "upsample_nearest: expected scale_factor to be positive, got 0",
    ),
    (
        lambda: upsample_nearest(ones(1, 3, 4, 4), 1.5),
        "upsample_nearest: expected scale_factor to be an int or a pair of ints, got 1.5",
    ),
]


@pytest.mark.parametrize("call, message", BAD_INPUTS, ids=[message[:60] for _, message in BAD_INPUTS])
def test_bad_input_is_refused_with_a_clear_message(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()

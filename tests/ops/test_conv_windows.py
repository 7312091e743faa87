"""The compiled im2col and col2im (``tinyae.ops.conv.WINDOWS_C``) against their slice twins: the same bits for
every geometry (kernel, stride, padding, sizes from 0), every layout of the image (contiguous, the (N, C, H, W)
view, sliced, reversed, broadcast, Fortran), float32 and float64, special values (NaN, ±inf, −0); the same
floating-point warnings; the same bits on 1, 2 and 3 threads, below and above the size at which calls are
shared out; and the convolutions take the compiled path wherever a compiler works."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tests.conftest import BACKEND
from tests.kernels.test_differential import assert_same_bits
from tests.kernels.test_threads import on_threads, sharing_out
from tinyae.kernels import cloop, compiler
from tinyae.ops import conv

pytestmark = pytest.mark.skipif(BACKEND != "numpy", reason="the compiled loops: tested in the numpy run")

LAYOUTS = ("chwn", "nchw", "sliced", "reversed", "broadcast", "fortran")
SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e38, -1e38, 5e-324])


@pytest.fixture(scope="module")
def compiled():
    if compiler.toolchain().problem is not None:
        pytest.skip(f"no C compiler here ({compiler.toolchain().problem}): the twins run")
    return conv._windows_for(np.dtype(np.float32))


@st.composite
def geometries(draw):
    """(C, H, W, N), kernel, stride, padding and the output size of a valid window geometry."""
    c, n = draw(st.integers(0, 3)), draw(st.integers(0, 5))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 9))
    out_size = ((h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)
    return (c, h, w, n), kernel, stride, padding, out_size


def values(data, shape, dtype) -> np.ndarray:
    """Random values of ``shape``, with some special ones mixed in."""
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    if x.size and data.draw(st.booleans(), label="specials"):
        flat = x.reshape(-1)
        where = rng.integers(0, flat.size, size=min(flat.size, 8))
        flat[where] = rng.choice(SPECIALS, size=where.size).astype(dtype)
    return x


def image(x: np.ndarray, layout: str) -> np.ndarray:
    """``x`` (C, H, W, N), the same values, in memory of the ``layout`` named."""
    if layout == "chwn":
        return x
    if layout == "nchw":  # an (N, C, H, W) array seen as (C, H, W, N), as Conv2d sees its input
        return np.ascontiguousarray(x.transpose(3, 0, 1, 2)).transpose(1, 2, 3, 0)
    if layout == "sliced":
        wide = np.zeros((x.shape[0], x.shape[1], 2 * x.shape[2], 3 * x.shape[3]), x.dtype)
        wide[:, :, ::2, ::3] = x
        return wide[:, :, ::2, ::3]
    if layout == "reversed":
        return np.ascontiguousarray(x[::-1, :, ::-1, ::-1])[::-1, :, ::-1, ::-1]
    if layout == "broadcast":  # every image the same: the batch axis has stride 0
        return np.broadcast_to(x[..., :1], x.shape) if x.shape[3] else x
    return np.asfortranarray(x)


@settings(max_examples=150)  # (cheap: a few ms each)
@given(geometry=geometries(), layout=st.sampled_from(LAYOUTS), dtype=st.sampled_from([np.float32, np.float64]),
       data=st.data())
def test_im2col_gives_the_twins_bits(compiled, geometry, layout, dtype, data):
    shape, kernel, stride, padding, out_size = geometry
    x = image(values(data, shape, dtype), layout)
    got = conv.im2col(x, kernel, stride, out_size, padding)
    assert_same_bits(got, conv.im2col_twin(x, kernel, stride, out_size, padding), f"im2col of a {layout} image")
    assert got.flags.c_contiguous


@settings(max_examples=150)
@given(geometry=geometries(), dtype=st.sampled_from([np.float32, np.float64]), data=st.data())
def test_col2im_gives_the_twins_bits_and_warnings(compiled, geometry, dtype, data):
    shape, kernel, stride, padding, out_size = geometry
    c, _, _, n = shape
    cols = values(data, (c * kernel[0] * kernel[1], out_size[0] * out_size[1] * n), dtype)
    if data.draw(st.booleans(), label="huge"):  # sums that overflow, inf − inf
        with np.errstate(all="ignore"):
            cols = cols * np.asarray(np.finfo(dtype).max / 4, dtype)
    got, got_warnings = warned(lambda: conv.col2im(cols, shape, kernel, stride, out_size, padding))
    want, want_warnings = warned(lambda: conv.col2im_twin(cols, shape, kernel, stride, out_size, padding))
    assert_same_bits(got, want, "col2im")
    assert got_warnings == want_warnings


def warned(compute) -> tuple[np.ndarray, set[str]]:
    """What ``compute()`` returns and the RuntimeWarnings it gave (NumPy's errstate "warn" for all)."""
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
        warnings.simplefilter("always")
        result = compute()
    return result, {str(warning.message) for warning in caught if warning.category is RuntimeWarning}


def test_col2im_raises_where_numpy_is_told_to(compiled):
    cols = np.full((2, 2), np.finfo(np.float32).max, np.float32)  # a 2×1 kernel over a 3×1 image: 2 windows
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow encountered in add"):
        conv.col2im(cols, (1, 3, 1, 1), (2, 1), (1, 1), (2, 1), (0, 0))  # the middle pixel: max + max


SIZE = cloop.PARALLEL_MIN_SIZE
# (C, H, W, N) images (3×3 kernel, stride 1, padding 1) whose cols or x hold fewer elements than
# PARALLEL_MIN_SIZE, exactly as many, or more: calls on the calling thread and shared out
THREAD_SHAPES = [(1, 8, 8, SIZE // 9 // 64), (1, 8, 8, SIZE // 64), (5, 7, 9, 211), (32, 14, 14, 16)]


@pytest.mark.parametrize("shape", THREAD_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_same_bits_on_1_2_and_3_threads(compiled, shape, dtype):
    rng = np.random.default_rng(5)
    kernel, stride, padding, out_size = (3, 3), (1, 1), (1, 1), shape[1:3]
    x = rng.standard_normal(shape).astype(dtype)
    cols = rng.standard_normal((shape[0] * 9, shape[1] * shape[2] * shape[3])).astype(dtype)
    want = (conv.im2col_twin(x, kernel, stride, out_size, padding),
            conv.col2im_twin(cols, shape, kernel, stride, out_size, padding))
    with sharing_out():
        for count in (1, 2, 3):
            with on_threads(count):
                got = (conv.im2col(x, kernel, stride, out_size, padding),
                       conv.col2im(cols, shape, kernel, stride, out_size, padding))
            assert_same_bits(got[0], want[0], f"im2col on {count} threads")
            assert_same_bits(got[1], want[1], f"col2im on {count} threads")


def test_each_threads_floating_point_exceptions_are_reported(compiled):
    shape = (4, 16, 16, 64)  # x of 65,536 elements: shared out by channel, the last channel on the last thread
    cols = np.ones((4 * 9, 16 * 16 * 64), np.float32)
    cols[-9:] = np.finfo(np.float32).max  # the last channel's sums overflow
    want, want_warnings = warned(lambda: conv.col2im_twin(cols, shape, (3, 3), (1, 1), (16, 16), (1, 1)))
    assert want_warnings == {"overflow encountered in add"}
    with sharing_out():
        for count in (1, 2, 3):
            with on_threads(count):
                got, got_warnings = warned(lambda: conv.col2im(cols, shape, (3, 3), (1, 1), (16, 16), (1, 1)))
            assert_same_bits(got, want, f"col2im on {count} threads")
            assert got_warnings == want_warnings, f"on {count} threads"


def test_the_convolutions_take_the_compiled_path(compiled, monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("the twin ran where the compiled loop could")

    monkeypatch.setattr(conv, "im2col_twin", refused)
    monkeypatch.setattr(conv, "col2im_twin", refused)
    import tinyae as ta

    x = ta.tensor(np.ones((2, 3, 8, 8), np.float32), requires_grad=True)
    conv_weight = ta.tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    transpose_weight = ta.tensor(np.ones((4, 2, 4, 4), np.float32), requires_grad=True)
    y = conv.conv_transpose2d(conv.conv2d(x, conv_weight, padding=1), transpose_weight, stride=2, padding=1)
    y.sum().backward()
    assert y.shape == (2, 2, 16, 16) and x.grad is not None


def unaligned_float32(shape) -> np.ndarray:
    memory = np.zeros(4 * int(np.prod(shape)) + 1, np.uint8)
    return np.frombuffer(memory.data, np.float32, offset=1 if memory.ctypes.data % 4 == 0 else 0).reshape(shape)


@pytest.mark.parametrize("array", [np.ones((2, 2, 2, 2), np.float16), np.ones((2, 2, 2, 2), np.int64),
                                   unaligned_float32((2, 2, 2, 2))], ids=["float16", "int64", "unaligned"])
def test_other_dtypes_and_unaligned_memory_take_the_twin(compiled, array):
    assert conv._compiled_windows(array) is None
    assert conv._compiled_windows(np.ones((2, 2, 2, 2), np.float64)) is not None
    cols = conv.im2col(array, (2, 2), (1, 1), (1, 1))
    assert_same_bits(cols, conv.im2col_twin(array, (2, 2), (1, 1), (1, 1)), "im2col of the twin's case")

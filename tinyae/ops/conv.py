"""Convolution as one matrix product (im2col), its adjoint (col2im), and nearest-neighbour upsampling.

conv2d. For x (N, C, H, W), weight w (Cout, C, kh, kw), stride s and zero padding p (per axis):

    y[n, o, a, b] = bias[o] + Σ_{c,i,j} w[o, c, i, j] · xpad[n, c, s·a + i, s·b + j]

where xpad is x with p zeros around each image; y is (N, Cout, OH, OW), OH = ⌊(H + 2p − kh)/s⌋ + 1.

im2col. Copy, for every output pixel (a, b) of every image n, the C·kh·kw values its window sees into one
column:

    cols[(c, i, j), (a, b, n)] = xpad[n, c, s·a + i, s·b + j]              cols: (C·kh·kw, OH·OW·N)

and the whole convolution is ONE matrix product with the weight viewed as a (Cout, C·kh·kw) matrix:

    Y = W · cols        Y: (Cout, OH·OW·N),   y[n, o, a, b] = Y[o, (a, b, n)] + bias[o]

Filling cols needs no loop over pixels: for a fixed kernel offset (i, j), the entries
cols[(c, i, j), (a, b, n)] over all c, a, b, n are the rows i, i+s, …, i+s·(OH−1) and columns j, j+s, …,
j+s·(OW−1) of every image and channel: one strided slice (``_window``), so kh·kw slice copies build the
matrix.

Layout. The whole batch sits in the long axis of cols, so the GEMM is one large contiguous product rather
than N small ones. Within a column index the batch n is innermost: images are handled in a (C, H, W, N)
layout, in which every slice copy of im2col and every slice add of col2im moves contiguous runs of N numbers
(in the (N, C, H, W) layout they would move rows of OW numbers, strided by s, several times slower in
NumPy). The price is one transposing copy from (N, C, H, W) to (C, H, W, N) where an input arrives in
(N, C, H, W) order (``_to_chwn``; the compiled im2col below reads any layout through its strides). On the way
out nothing is copied: the result is returned as an (N, C, H, W) view of its
(C, H, W, N) memory (``_from_chwn``), so the next convolution finds its input already in that layout, and
elementwise kernels in between run over it in memory order (PyTorch's "channels last" idea, with the batch
last). On CuPy, whose kernels allocate C-contiguous outputs, the activations' outputs are (N, C, H, W) arrays
and each convolution copies its input: measured faster there (see ops/activation.py).

Backward. Y = W · cols is a matrix product (see matmul.py), so

    ∂L/∂W = ∂L/∂Y · colsᵀ,    ∂L/∂cols = Wᵀ · ∂L/∂Y,    ∂L/∂bias[o] = Σ_{n,a,b} ∂L/∂y[n, o, a, b]

and ∂L/∂xpad = col2im(∂L/∂cols): a pixel copied into several columns (overlapping windows) receives the sum
of the gradients of all its copies. col2im is the adjoint of im2col: the same kh·kw slices, with += instead
of =; it drops what lands in the padding, which gives ∂L/∂x directly.

Compiled. On NumPy arrays of float32 or float64, im2col and col2im run as two C loops (``WINDOWS_C``, built
as the fused kernels' loops are, ``kernels.compiler``) instead of their slice twins: im2col reads x through its
strides and writes the zero padding itself (no padded copy), and col2im *gathers*: each pixel of x adds up,
in the twin's (i, j) order from 0, the entries of cols that land on it, and is written once (no zero fill,
no read-modify-write of x per offset). The same additions in the same order: the same bits, the same
floating-point warnings. Where the program shares OpenMP's threads with the BLAS (``kernels.threads``), calls
of ``cloop.PARALLEL_MIN_SIZE`` elements or more are shared out among them by channel, each element computed by
one thread in the same order, so any number of threads gives the same bits. Measured on a 2-core EPYC VM
(batch 128, the conv VAE's 32×14×14 layer): im2col 0.66 ms as slices, 0.18 ms compiled on 2 threads; col2im
1.80 ms and 0.23 ms. The twins run on CuPy, on the strict backend and where no compiler works.

conv_transpose2d is the adjoint of conv2d: it maps an image the size of conv2d's output back to one the size
of conv2d's input, with the transposed matrix, so its forward is conv2d's ∂L/∂x computation and its
backward is conv2d's forward. upsample_nearest repeats each pixel s×s times; its backward sums each block.
"""

from __future__ import annotations

import ctypes
import functools
import operator
from typing import TYPE_CHECKING

import numpy as np

from ..autograd import Function
from ..backend import array_module
from ..kernels import cloop, compiler, threads

if TYPE_CHECKING:
    from ..tensor import Tensor

IntOrPair = int | tuple[int, int]

__all__ = ["Conv2d", "ConvTranspose2d", "UpsampleNearest", "conv2d", "conv_transpose2d", "upsample_nearest"]


# Argument checks --------------------------------------------------------------------------------------

def _pair(name: str, what: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each ≥ minimum, as a pair; ValueError naming the function otherwise."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    try:
        if len(values) != 2:
            raise TypeError
        values = tuple(operator.index(v) for v in values)
    except TypeError:
        raise ValueError(f"{name}: expected {what} to be an int or a pair of ints, got {value!r}") from None
    if min(values) < minimum:
        bound = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name}: expected {what} to be {bound}, got {value!r}")
    return values


def _check_operands(name: str, x, weight, bias, x_channels_axis: int, bias_size_axis: int) -> None:
    """Ranks, channel counts, kernel size and dtypes of (x, weight, bias)."""
    if x.ndim != 4:
        raise ValueError(f"{name}: expected input of shape (N, C, H, W) (4-D), got shape {tuple(x.shape)}")
    if weight.ndim != 4:
        layout = "(Cout, C, kh, kw)" if name == "conv2d" else "(Cin, Cout, kh, kw)"
        raise ValueError(f"{name}: expected weight of shape {layout} (4-D), got shape {tuple(weight.shape)}")
    if weight.shape[x_channels_axis] != x.shape[1]:
        raise ValueError(
            f"{name}: expected input with {weight.shape[x_channels_axis]} channels (weight shape "
            f"{tuple(weight.shape)}), got {x.shape[1]} channels (input shape {tuple(x.shape)})"
        )
    if min(weight.shape[2:]) < 1:
        raise ValueError(f"{name}: expected a kernel of positive size, got weight {tuple(weight.shape)}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[bias_size_axis]):
        raise ValueError(
            f"{name}: expected bias of shape ({weight.shape[bias_size_axis]},) (one per output channel), "
            f"got shape {tuple(bias.shape)}"
        )
    dtypes = [x.dtype, weight.dtype] + ([] if bias is None else [bias.dtype])
    if any(dtype != x.dtype for dtype in dtypes):
        got = ", ".join(map(str, dtypes))
        raise ValueError(f"{name}: expected input, weight and bias of one dtype, got {got}")


# Layout, im2col and col2im ----------------------------------------------------------------------------

def _to_chwn(x):
    """x (N, C, H, W) → a contiguous (C, H, W, N) array: the batch goes last. No copy when x is already a
    view of such memory (an output of ``_from_chwn``)."""
    return array_module(x).ascontiguousarray(_chwn_view(x))


def _chwn_view(x):
    """x (N, C, H, W) seen as (C, H, W, N): a view, no copy."""
    return x.transpose(1, 2, 3, 0)


def _padded(x, padding: tuple[int, int]):
    """x (C, H, W, N) → a contiguous (C, H + 2ph, W + 2pw, N) copy with zeros around each image (x itself
    when unpadded and contiguous)."""
    ph, pw = padding
    if ph == pw == 0:
        return array_module(x).ascontiguousarray(x)
    c, h, w, n = x.shape
    padded = array_module(x).zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
    padded[:, ph:ph + h, pw:pw + w, :] = x
    return padded


def _from_chwn(x):
    """(C, H, W, N) memory → the (N, C, H, W) array, as a view: no copy."""
    return x.transpose(3, 0, 1, 2)


def _window(i: int, j: int, stride: tuple[int, int], out_size: tuple[int, int]) -> tuple[slice, ...]:
    """The pixels kernel offset (i, j) sees in all windows: xpad[c, s·a + i, s·b + j, n] for every a, b."""
    (sh, sw), (oh, ow) = stride, out_size
    return (slice(None), slice(i, i + sh * oh, sh), slice(j, j + sw * ow, sw), slice(None))


def im2col(x, kernel: tuple[int, int], stride: tuple[int, int], out_size: tuple[int, int],
           padding: tuple[int, int] = (0, 0)):
    """cols[(c, i, j), (a, b, n)] = xpad[c, s·a + i, s·b + j, n]: every window of the image as one column.

    x is the image in (C, H, W, N) layout, any strides (an (N, C, H, W) array's ``transpose(1, 2, 3, 0)``);
    xpad is x with ``padding`` zeros around each image. Returns a contiguous (C·kh·kw, OH·OW·N) matrix whose
    rows are ordered (c, i, j) like the columns of a (Cout, C, kh, kw) weight viewed as (Cout, C·kh·kw).
    The compiled loop where it runs (``_compiled_windows``), else ``im2col_twin``.
    """
    compiled = _compiled_windows(x)
    if compiled is None:
        return im2col_twin(x, kernel, stride, out_size, padding)
    return compiled.im2col(x, kernel, stride, out_size, padding)


def im2col_twin(x, kernel: tuple[int, int], stride: tuple[int, int], out_size: tuple[int, int],
                padding: tuple[int, int] = (0, 0)):
    """``im2col`` by slices: a padded copy of x, then one strided slice copy per kernel offset (i, j); with the
    batch innermost, each copies runs of N contiguous numbers."""
    xpad = _padded(x, padding)
    c, n = xpad.shape[0], xpad.shape[3]
    (kh, kw), (oh, ow) = kernel, out_size
    cols = array_module(xpad).empty((c, kh, kw, oh, ow, n), dtype=xpad.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xpad[_window(i, j, stride, out_size)]
    return cols.reshape(c * kh * kw, oh * ow * n)


def col2im(cols, shape, kernel: tuple[int, int], stride: tuple[int, int], out_size: tuple[int, int],
           padding: tuple[int, int] = (0, 0)):
    """The adjoint of ``im2col`` followed by cutting the padding off, in one: for all entries,
    x[c, s·a + i − p, s·b + j − p, n] += cols[(c, i, j), (a, b, n)], where that pixel is inside the image.

    cols (C·kh·kw, OH·OW·N) → x of ``shape`` (C, H, W, N), contiguous, unpadded. Overlapping windows add up,
    in the order of (i, j); pixels no window covers are 0; what falls into the padding is dropped. The
    compiled loop where it runs (``_compiled_windows``), else ``col2im_twin``.
    """
    compiled = _compiled_windows(cols)
    if compiled is None:
        return col2im_twin(cols, shape, kernel, stride, out_size, padding)
    return compiled.col2im(cols, shape, kernel, stride, out_size, padding)


def col2im_twin(cols, shape, kernel: tuple[int, int], stride: tuple[int, int], out_size: tuple[int, int],
                padding: tuple[int, int] = (0, 0)):
    """``col2im`` by slices: x = 0, then one strided slice add per kernel offset, clipped to the image; within
    one offset no two entries hit the same pixel, so a plain in-place add is correct (no scatter, no
    numpy.add.at)."""
    c, _, _, n = shape
    (kh, kw), (oh, ow) = kernel, out_size
    cols = cols.reshape(c, kh, kw, oh, ow, n)
    x = array_module(cols).zeros(shape, dtype=cols.dtype)
    for i in range(kh):
        rows = _inside(i, stride[0], oh, padding[0], shape[1])
        for j in range(kw):
            columns = _inside(j, stride[1], ow, padding[1], shape[2])
            if rows and columns:
                window = x[:, rows[1], columns[1], :]  # a view: += writes into x
                window += cols[:, i, j, rows[0], columns[0], :]
    return x


def _inside(offset: int, stride: int, windows: int, pad: int, size: int) -> tuple[slice, slice] | None:
    """(the windows a, the image rows they reach) for kernel offset ``offset``: the a < ``windows`` with
    0 ≤ s·a + offset − pad < size, as two slices; None if there are none."""
    first = max(0, -((offset - pad) // stride))  # ⌈(pad − offset)/s⌉
    last = min(windows, (size - 1 + pad - offset) // stride + 1)
    if last <= first:
        return None
    start = stride * first + offset - pad
    return slice(first, last), slice(start, start + stride * (last - first - 1) + 1, stride)


def _weight_grad(grad_matrix, cols):
    """grad_matrix · colsᵀ, the weight gradient of a convolution (both matrices have the long axis OH·OW·N),
    computed as (cols · grad_matrixᵀ)ᵀ when cols has more rows: OpenBLAS is faster with the larger of the two
    row counts first (2-core EPYC, 2 threads: 64×6272 by 6272×512 in 2.50 ms rather than 2.79; 32×25088 by
    25088×16 the other way round, 0.41 ms rather than 0.52)."""
    if cols.shape[0] > grad_matrix.shape[0]:
        return (cols @ grad_matrix.T).T
    return grad_matrix @ cols.T


# The compiled windows ----------------------------------------------------------------------------------

WINDOWS_C = r"""#include <string.h>
/* T: float or double (a typedef before this text); cloop.HEADER gives tinyae_team and TINYAE_FP_FLAGS.
   size: C, H, W, N of the image x; window: kh, kw, sh, sw, ph, pw, OH, OW. */

/* cols[(c, i, j), (a, b, n)] = x[c, s·a + i − p, s·b + j − p, n], 0 outside the image; x read through its
   strides (in elements), cols contiguous. Shared out among the threads by (c, i, j). */
void im2col(const T *x, const ptrdiff_t *size, const ptrdiff_t *step, const ptrdiff_t *window, T *cols,
            bool parallel) {
    const ptrdiff_t C = size[0], H = size[1], W = size[2], N = size[3];
    const ptrdiff_t kh = window[0], kw = window[1], sh = window[2], sw = window[3];
    const ptrdiff_t ph = window[4], pw = window[5], oh = window[6], ow = window[7];
    const int team = tinyae_team(parallel, C * kh * kw * oh * ow * N);
#pragma omp parallel for num_threads(team) if(team > 1) collapse(3) schedule(static)
    for (ptrdiff_t c = 0; c < C; c++)
        for (ptrdiff_t i = 0; i < kh; i++)
            for (ptrdiff_t j = 0; j < kw; j++) {
                T *out = cols + ((c * kh + i) * kw + j) * oh * ow * N;
                for (ptrdiff_t a = 0; a < oh; a++) {
                    const ptrdiff_t y = sh * a + i - ph;
                    for (ptrdiff_t b = 0; b < ow; b++, out += N) {
                        const ptrdiff_t z = sw * b + j - pw;
                        if (y < 0 || y >= H || z < 0 || z >= W) {  /* in the padding */
                            for (ptrdiff_t n = 0; n < N; n++)
                                out[n] = 0;
                            continue;
                        }
                        const T *in = x + c * step[0] + y * step[1] + z * step[2];
                        if (step[3] == 1)
                            memcpy(out, in, N * sizeof(T));
                        else
                            for (ptrdiff_t n = 0; n < N; n++)
                                out[n] = in[n * step[3]];
                    }
                }
            }
}

/* x[c, y, z, n] = 0 + Σ_{i, j} cols[(c, i, j), (a, b, n)] over the (i, j), in order, with s·a + i − p = y and
   s·b + j − p = z for some a < OH, b < OW; cols and x contiguous. Shared out among the threads by (c, y).
   Returns the floating-point exceptions raised (TINYAE_FP_FLAGS, any thread). */
int col2im(const T *cols, const ptrdiff_t *size, const ptrdiff_t *window, T *x, bool parallel) {
    const ptrdiff_t C = size[0], H = size[1], W = size[2], N = size[3];
    const ptrdiff_t kh = window[0], kw = window[1], sh = window[2], sw = window[3];
    const ptrdiff_t ph = window[4], pw = window[5], oh = window[6], ow = window[7];
    const int team = tinyae_team(parallel, C * H * W * N);
    int flags = 0;
    fenv_t environment;
    fegetenv(&environment);
#pragma omp parallel num_threads(team) if(team > 1) reduction(|: flags)
    {
        fesetenv(&environment);  /* the caller's rounding and flush-to-zero modes */
        feclearexcept(FE_ALL_EXCEPT);
#pragma omp for collapse(2) schedule(static)
        for (ptrdiff_t c = 0; c < C; c++)
            for (ptrdiff_t y = 0; y < H; y++)
                for (ptrdiff_t z = 0; z < W; z++) {
                    T *out = x + ((c * H + y) * W + z) * N;
                    for (ptrdiff_t n = 0; n < N; n++)
                        out[n] = 0;
                    for (ptrdiff_t i = 0; i < kh; i++) {
                        const ptrdiff_t rows = y + ph - i;  /* = s·a for the window a that puts i on y */
                        if (rows < 0 || rows % sh != 0 || rows / sh >= oh)
                            continue;
                        for (ptrdiff_t j = 0; j < kw; j++) {
                            const ptrdiff_t columns = z + pw - j;
                            if (columns < 0 || columns % sw != 0 || columns / sw >= ow)
                                continue;
                            const T *in = cols + ((((c * kh + i) * kw + j) * oh + rows / sh) * ow
                                                  + columns / sw) * N;
                            for (ptrdiff_t n = 0; n < N; n++)
                                out[n] += in[n];
                        }
                    }
                }
        flags |= TINYAE_FP_FLAGS();
    }
    return flags;
}
"""


class CompiledWindows:
    """im2col and col2im as the C loops of ``WINDOWS_C`` for one dtype (a loaded library)."""

    def __init__(self, library: ctypes.CDLL):
        sizes = ctypes.POINTER(ctypes.c_ssize_t)
        library.im2col.argtypes = [ctypes.c_void_p, sizes, sizes, sizes, ctypes.c_void_p, ctypes.c_bool]
        library.im2col.restype = None
        library.col2im.argtypes = [ctypes.c_void_p, sizes, sizes, ctypes.c_void_p, ctypes.c_bool]
        library.col2im.restype = ctypes.c_int
        self.library = library

    def im2col(self, x, kernel, stride, out_size, padding):
        c, n = x.shape[0], x.shape[3]
        (kh, kw), (oh, ow) = kernel, out_size
        cols = np.empty((c * kh * kw, oh * ow * n), dtype=x.dtype)
        step = [stride_bytes // x.itemsize for stride_bytes in x.strides]
        self.library.im2col(x.ctypes.data, _sizes(x.shape), _sizes(step),
                            _sizes((*kernel, *stride, *padding, *out_size)), cols.ctypes.data, threads.parallel)
        return cols

    def col2im(self, cols, shape, kernel, stride, out_size, padding):
        cols = np.ascontiguousarray(cols)
        x = np.empty(shape, dtype=cols.dtype)
        flags = self.library.col2im(cols.ctypes.data, _sizes(shape),
                                    _sizes((*kernel, *stride, *padding, *out_size)), x.ctypes.data,
                                    threads.parallel)
        if flags:
            cloop.report(flags, "add")  # as the twin's += would
        return x


def _sizes(values) -> ctypes.Array:
    return (ctypes.c_ssize_t * len(values))(*values)


def _compiled_windows(array) -> CompiledWindows | None:
    """The compiled im2col/col2im for ``array``; None where the twins run: not a NumPy array (CuPy, strict),
    a dtype other than float32/float64, strides that are not whole elements, or no C compiler."""
    if type(array) is not np.ndarray or array.dtype.type not in (np.float32, np.float64):
        return None
    if not array.flags.aligned or any(stride % array.itemsize for stride in array.strides):
        return None
    return _windows_for(array.dtype)


@functools.cache
def _windows_for(dtype: np.dtype) -> CompiledWindows | None:
    source = f"{cloop.HEADER}typedef {cloop.C_TYPES[dtype].name} T;\n{WINDOWS_C}"
    library = compiler.library(source, [])
    if isinstance(library, str):
        compiler.warn(f"tinyae's im2col and col2im loops do not compile, so their NumPy twins run; this is a "
                      f"bug in tinyae, please report it:\n{library[:1000]}")
    return CompiledWindows(library) if isinstance(library, ctypes.CDLL) else None


# The ops -------------------------------------------------------------------------------------------------

class Conv2d(Function):
    """y = conv2d(x, w) + bias, computed as Y = W · im2col(pad(x)) (see the module docstring).

        y[n, o, a, b] = bias[o] + Σ_{c,i,j} w[o, c, i, j] · xpad[n, c, s·a + i, s·b + j]

    Backward, with cols = im2col(pad(x)), W = w as (Cout, C·kh·kw) and G = ∂L/∂y as (Cout, OH·OW·N):
        ∂L/∂w = G · colsᵀ,   ∂L/∂x = unpad(col2im(Wᵀ · G)),   ∂L/∂bias[o] = Σ_{n,a,b} ∂L/∂y[n, o, a, b].
    Saved: cols (only if ∂L/∂w is needed) and w (only if ∂L/∂x is needed).
    Shapes: x (N, C, H, W), w (Cout, C, kh, kw), bias (Cout,) → y (N, Cout, OH, OW),
    OH = ⌊(H + 2p − kh)/s⌋ + 1; bottom rows (right columns) that no window reaches get a zero gradient.
    """

    def forward(self, x, weight, bias=None, stride=1, padding=0):
        _check_operands("conv2d", x, weight, bias, x_channels_axis=1, bias_size_axis=0)
        stride = _pair("conv2d", "stride", stride, 1)
        padding = _pair("conv2d", "padding", padding, 0)
        n, _, h, w = x.shape
        c_out, kernel = weight.shape[0], weight.shape[2:]
        padded = (h + 2 * padding[0], w + 2 * padding[1])
        if padded[0] < kernel[0] or padded[1] < kernel[1]:
            raise ValueError(
                f"conv2d: expected a padded input of at least the kernel size {tuple(kernel)}, got "
                f"{padded} (input {h}×{w}, padding {padding})"
            )
        out_size = ((padded[0] - kernel[0]) // stride[0] + 1, (padded[1] - kernel[1]) // stride[1] + 1)
        cols = im2col(_chwn_view(x), kernel, stride, out_size, padding)
        weight_matrix = weight.reshape(c_out, -1)
        out = weight_matrix @ cols  # (Cout, OH·OW·N): the one GEMM
        if bias is not None:
            out += bias[:, None]
        need_x, need_weight = self.needs_input_grad[:2]
        self.cols = cols if need_weight else None
        self.weight_matrix = weight_matrix if need_x else None
        self.x_shape, self.weight_shape = x.shape, weight.shape
        self.stride, self.padding, self.out_size = stride, padding, out_size
        return _from_chwn(out.reshape((c_out, *out_size, n)))

    def backward(self, grad_out):
        need_x, need_weight = self.needs_input_grad[:2]
        need_bias = len(self.needs_input_grad) == 3 and self.needs_input_grad[2]
        grad_matrix = _to_chwn(grad_out).reshape(grad_out.shape[1], -1)  # G: (Cout, OH·OW·N)
        grad_x = grad_weight = grad_bias = None
        if need_x:
            n, c, h, w = self.x_shape
            grad_cols = self.weight_matrix.T @ grad_matrix
            grad_x = _from_chwn(col2im(grad_cols, (c, h, w, n), self.weight_shape[2:], self.stride,
                                       self.out_size, self.padding))
        if need_weight:
            grad_weight = _weight_grad(grad_matrix, self.cols).reshape(self.weight_shape)
        if need_bias:
            grad_bias = grad_matrix.sum(axis=1)
        return (grad_x, grad_weight, grad_bias)[:len(self.needs_input_grad)]


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, w) + bias: the adjoint of conv2d(·, w) as a linear map of its input.

    Every input pixel stamps its kernel, scaled, onto the output at stride s; overlaps add:
        ypad[n, o, s·a + i, s·b + j] += Σ_c x[n, c, a, b] · w[c, o, i, j]    (a < H, b < W, i < kh, j < kw)
        y = ypad with p rows/columns cut from each side, + bias[o]
    In matrix form, with X = x as (Cin, H·W·N) and W = w as (Cin, Cout·kh·kw):  y = unpad(col2im(Wᵀ · X)),
    which is conv2d's input-gradient computation with ∂L/∂y replaced by x.

    Backward, with cols = im2col(pad(∂L/∂y)) (Cout·kh·kw, H·W·N), i.e. conv2d's forward:
        ∂L/∂x = W · cols  (= conv2d(∂L/∂y, w)),   ∂L/∂w = X · colsᵀ,
        ∂L/∂bias[o] = Σ_{n,a,b} ∂L/∂y[n, o, a, b].
    Saved: X (only if ∂L/∂w is needed) and w (only if ∂L/∂x is needed).
    Shapes: x (N, Cin, H, W), w (Cin, Cout, kh, kw), bias (Cout,) → y (N, Cout, OH, OW),
    OH = (H − 1)·s − 2p + kh + output_padding. conv2d maps s input sizes to the same H (its last window
    may leave up to s − 1 rows unread), so output_padding < s picks one: it adds rows at the bottom
    (columns at the right) of ypad.
    """

    def forward(self, x, weight, bias=None, stride=1, padding=0, output_padding=0):
        _check_operands("conv_transpose2d", x, weight, bias, x_channels_axis=0, bias_size_axis=1)
        stride = _pair("conv_transpose2d", "stride", stride, 1)
        padding = _pair("conv_transpose2d", "padding", padding, 0)
        output_padding = _pair("conv_transpose2d", "output_padding", output_padding, 0)
        if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
            raise ValueError(
                f"conv_transpose2d: expected output_padding smaller than stride {stride}, "
                f"got {output_padding}"
            )
        n, c_in, h, w = x.shape
        c_out, kernel = weight.shape[1], weight.shape[2:]
        # ypad: rows 0 … (H − 1)·s + kh − 1 receive the stamped kernels; output_padding adds rows below
        padded = (
            (h - 1) * stride[0] + kernel[0] + output_padding[0],
            (w - 1) * stride[1] + kernel[1] + output_padding[1],
        )
        out_size = (padded[0] - 2 * padding[0], padded[1] - 2 * padding[1])
        if min(out_size) < 1:
            raise ValueError(
                f"conv_transpose2d: expected a positive output size, got {out_size} (input {h}×{w}, kernel "
                f"{tuple(kernel)}, stride {stride}, padding {padding}, output_padding {output_padding})"
            )
        x_matrix = _to_chwn(x).reshape(c_in, -1)  # X: (Cin, H·W·N)
        weight_matrix = weight.reshape(c_in, -1)
        cols = weight_matrix.T @ x_matrix  # (Cout·kh·kw, H·W·N): the one GEMM
        out = _from_chwn(col2im(cols, (c_out, *out_size, n), kernel, stride, (h, w), padding))
        if bias is not None:
            out += bias[:, None, None]
        need_x, need_weight = self.needs_input_grad[:2]
        self.x_matrix = x_matrix if need_weight else None
        self.weight_matrix = weight_matrix if need_x else None
        self.x_shape, self.weight_shape = x.shape, weight.shape
        self.stride, self.padding = stride, padding
        return out

    def backward(self, grad_out):
        need_x, need_weight = self.needs_input_grad[:2]
        need_bias = len(self.needs_input_grad) == 3 and self.needs_input_grad[2]
        n, c_in, h, w = self.x_shape
        grad_x = grad_weight = grad_bias = None
        if need_x or need_weight:
            grad_cols = im2col(_chwn_view(grad_out), self.weight_shape[2:], self.stride, (h, w), self.padding)
            if need_x:
                grad_x = _from_chwn((self.weight_matrix @ grad_cols).reshape(c_in, h, w, n))
            if need_weight:
                grad_weight = _weight_grad(self.x_matrix, grad_cols).reshape(self.weight_shape)
        if need_bias:
            grad_bias = grad_out.sum(axis=(0, 2, 3))
        return (grad_x, grad_weight, grad_bias)[:len(self.needs_input_grad)]


class UpsampleNearest(Function):
    """y[n, c, a, b] = x[n, c, ⌊a/sh⌋, ⌊b/sw⌋]: each pixel repeated as an sh×sw block.

    Computed as a broadcast of x (N, C, H, 1, W, 1) to (N, C, H, sh, W, sw), reshaped to (N, C, H·sh, W·sw).
    ∂L/∂x[n, c, a, b] = Σ over the block of ∂L/∂y (reshape to (N, C, H, sh, W, sw), sum axes 3 and 5).
    Saves nothing but the scale.
    """

    def forward(self, x, scale_factor=2):
        if x.ndim != 4:
            raise ValueError(
                f"upsample_nearest: expected input of shape (N, C, H, W) (4-D), got shape {tuple(x.shape)}"
            )
        if isinstance(scale_factor, float) and scale_factor.is_integer():
            scale_factor = int(scale_factor)
        self.scale = sh, sw = _pair("upsample_nearest", "scale_factor", scale_factor, 1)
        n, c, h, w = x.shape
        blocks = array_module(x).broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
        return blocks.reshape(n, c, h * sh, w * sw)

    def backward(self, grad_out):
        n, c, h, w = grad_out.shape
        sh, sw = self.scale
        return grad_out.reshape(n, c, h // sh, sh, w // sw, sw).sum(axis=(3, 5))


# Public functions (PyTorch's names, argument order and defaults) ----------------------------------------

def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntOrPair = 1, padding: IntOrPair = 0
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch) of x (N, C, H, W) with weight (Cout, C, kh, kw).

    ``bias`` (Cout,) or None; ``stride`` ≥ 1 and ``padding`` ≥ 0 (zeros) are ints or (rows, columns) pairs.
    Returns (N, Cout, ⌊(H + 2p − kh)/s⌋ + 1, ⌊(W + 2p − kw)/s⌋ + 1). See ``Conv2d`` for the math.
    """
    operands = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*operands, stride=stride, padding=padding)


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
) -> Tensor:
    """Transposed convolution (the adjoint of conv2d) of x (N, Cin, H, W) with weight (Cin, Cout, kh, kw).

    Returns (N, Cout, (H − 1)·s − 2p + kh + output_padding, …); output_padding must be smaller than
    stride. Arguments as ``conv2d``; see ``ConvTranspose2d`` for the math.
    """
    operands = (x, weight) if bias is None else (x, weight, bias)
    return ConvTranspose2d.apply(*operands, stride=stride, padding=padding, output_padding=output_padding)


def upsample_nearest(x: Tensor, scale_factor: IntOrPair) -> Tensor:
    """Nearest-neighbour upsampling of x (N, C, H, W) by an integer factor (int or pair): (N, C, H·s, W·s)."""
    return UpsampleNearest.apply(x, scale_factor=scale_factor)

"""Activations: relu, leaky_relu, sigmoid, tanh, softplus.

Each is elementwise, so ∂L/∂x = ∂L/∂y ⊙ f′(x). sigmoid and softplus are computed in forms that never
overflow (no warnings even at |x| = 1e4), and each backward reuses what the forward already computed.

The hot ones run as fused kernels (``tinyae.kernels``), defined right above the op they serve: a CUDA body
for the GPU (the same body compiled as a C loop on the CPU) and its NumPy twin, each the formula of the
docstring, side by side.

Layout. On NumPy each kernel's outputs are laid out as its first argument (order 'K'), so a convolution's
output, an (N, C, H, W) view of (C, H, W, N) memory (ops/conv.py), keeps that layout through the activation
and the next convolution copies nothing. ``cupy.ElementwiseKernel`` allocates C-contiguous outputs instead,
and there that is the faster choice: keeping the layout on an H200 (outputs allocated like the input) made
the conv VAE's step slower, 4.28 ms against 3.94 (bench/gpu.py, 3 processes each): every elementwise kernel
then indexes strided memory, which costs more than the one copy each convolution makes of its input.
ReLU's backward lays ∂L/∂x out as its saved output where ∂L/∂y comes in another layout (after a flatten,
reshaped from a Linear's gradient): the compiled loop needs its arrays in one memory order (with two orders
the strided twin runs, 10× slower), and the convolution before it then reads its gradient without a copy.
Measured on a 2-core EPYC, 64×7×7 channels by 128 images: 0.29 ms for the copy and the loop, against 0.48
for the twin and 0.24 for the convolution's copy.
"""

from __future__ import annotations

from ..autograd import Function
from ..backend import array_module
from ..kernels import Kernel, in_layout_of


relu_forward = Kernel(
    "relu_forward", "T x", "T y",
    "y = x <= 0 ? (T)0 : x",  # NaN <= 0 is false, so NaN passes (as np.maximum); −0 → +0
    lambda x: array_module(x).maximum(x, x.dtype.type(0)),
)
relu_backward = Kernel(
    "relu_backward", "T grad_out, T out", "T grad_x",
    "grad_x = out > 0 ? grad_out : (T)0",  # ∂L/∂x = ∂L/∂y · [y > 0]
    lambda grad_out, out: array_module(out).where(out > 0, grad_out, grad_out.dtype.type(0)),
)


class ReLU(Function):
    """y = max(x, 0).   ∂L/∂x = ∂L/∂y ⊙ [x > 0]; at the kink x = 0 the subgradient 0 is used (as PyTorch).

    Saves y ([y > 0] = [x > 0]). NaN passes through, and −0 becomes +0, as ``np.maximum(x, 0)``."""

    def forward(self, x):
        self.out = relu_forward(x)
        return self.out

    def backward(self, grad_out):
        return relu_backward(in_layout_of(grad_out, self.out), self.out)


leaky_relu_backward = Kernel(
    "leaky_relu_backward", "T grad_out, bool positive, T slope", "T grad_x",
    "grad_x = positive ? grad_out : grad_out * slope",  # ∂L/∂x = ∂L/∂y · (1 if x > 0 else s)
    # (the twin selects the factor first: grad_out * slope where x > 0, unused, would warn about inf * 0)
    lambda grad_out, positive, slope: grad_out * array_module(grad_out).where(
        positive, grad_out.dtype.type(1), slope),
)


class LeakyReLU(Function):
    """y = x if x > 0 else s·x  (s = negative_slope).

    ∂L/∂x = ∂L/∂y if x > 0 else s·∂L/∂y; at x = 0 the slope s is used (as PyTorch). Saves [x > 0].
    """

    def forward(self, x, negative_slope=0.01):
        xp = array_module(x)
        self.positive = x > 0
        self.negative_slope = negative_slope
        return xp.where(self.positive, x, x * negative_slope)

    def backward(self, grad_out):
        return leaky_relu_backward(grad_out, self.positive, self.negative_slope)


def stable_sigmoid(x):
    """σ(x) = 1/(1 + e⁻ˣ), evaluated with e = e^(−|x|) ≤ 1 so nothing overflows:
    σ(x) = 1/(1 + e) for x ≥ 0 and e/(1 + e) for x < 0 (both exact rewritings, accurate in both tails)."""
    xp = array_module(x)
    e = xp.exp(-abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


sigmoid_backward = Kernel(
    "sigmoid_backward", "T grad_out, T out", "T grad_x",
    "grad_x = grad_out * (out * (1 - out))",  # ∂L/∂x = ∂L/∂y · y(1 − y)
    lambda grad_out, out: grad_out * (out * (1 - out)),
)


class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ).   ∂L/∂x = ∂L/∂y ⊙ y(1 − y)   (saves y)."""

    def forward(self, x):
        self.out = stable_sigmoid(x)
        return self.out

    def backward(self, grad_out):
        return sigmoid_backward(grad_out, self.out)


tanh_backward = Kernel(
    "tanh_backward", "T grad_out, T out", "T grad_x",
    "grad_x = grad_out * (1 - out * out)",  # ∂L/∂x = ∂L/∂y · (1 − y²)
    lambda grad_out, out: grad_out * (1 - out * out),
)


class Tanh(Function):
    """y = tanh x.   ∂L/∂x = ∂L/∂y ⊙ (1 − y²)   (saves y)."""

    def forward(self, x):
        self.out = array_module(x).tanh(x)
        return self.out

    def backward(self, grad_out):
        return tanh_backward(grad_out, self.out)


softplus_backward = Kernel(
    "softplus_backward", "T grad_out, T exp_scaled, bool linear", "T grad_x",
    # ∂L/∂x = ∂L/∂y · σ(βx) = ∂L/∂y · e^(βx)/(e^(βx) + 1), or ∂L/∂y past the threshold
    "grad_x = linear ? grad_out : grad_out * (exp_scaled / (exp_scaled + 1))",
    lambda grad_out, exp_scaled, linear: grad_out * array_module(grad_out).where(
        linear, grad_out.dtype.type(1), exp_scaled / (exp_scaled + 1)),
)


class Softplus(Function):
    """y = (1/β) log(1 + e^(βx)), and y = x where βx > threshold (PyTorch's definition).

    Stable form: log1p(e^(min(βx, threshold)))/β, so e^(βx) is never evaluated past the threshold.
    ∂L/∂x = ∂L/∂y ⊙ σ(βx) where βx ≤ threshold, else ∂L/∂y. Saves e^(min(βx, threshold)) and [βx > threshold].
    """

    def forward(self, x, beta=1.0, threshold=20.0):
        xp = array_module(x)
        scaled = x * beta
        self.linear = scaled > threshold
        self.exp_scaled = xp.exp(xp.minimum(scaled, x.dtype.type(threshold)))
        return xp.where(self.linear, x, xp.log1p(self.exp_scaled) / beta)

    def backward(self, grad_out):
        return softplus_backward(grad_out, self.exp_scaled, self.linear)

"""Convolution and upsampling layers (PyTorch's layouts and default initialization)."""

from __future__ import annotations

import math

from .. import functional as F
from ..tensor import Tensor
from . import init
from .layers import _positive
from .module import Module, Parameter


def _pair(layer: str, name: str, value, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum for v in pair):
        raise ValueError(f"{layer}: {name} must be an int or a pair of ints >= {minimum}, got {value!r}")
    return pair


class _ConvNd(Module):
    """Shared setup: sizes, validation, and the U(±1/√fan_in) initialization of weight and bias."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, bias, weight_shape):
        super().__init__()
        layer = type(self).__name__
        _positive(layer, in_channels=in_channels, out_channels=out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(layer, "kernel_size", kernel_size, 1)
        self.stride = _pair(layer, "stride", stride, 1)
        self.padding = _pair(layer, "padding", padding, 0)
        self.weight = Parameter.zeros(weight_shape + self.kernel_size)
        fan_in, _ = init.fan_in_and_fan_out(self.weight)
        bound = 1 / math.sqrt(fan_in)
        init.uniform_(self.weight, -bound, bound)
        self.register_parameter("bias", init.uniform_(Parameter.zeros((out_channels,)), -bound, bound) if bias else None)

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input channels, got shape {x.shape}")

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation, as PyTorch): weight (out, in, kh, kw), bias (out,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, (out_channels, in_channels))

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        height, width = x.shape[2] + 2 * self.padding[0], x.shape[3] + 2 * self.padding[1]
        if height < self.kernel_size[0] or width < self.kernel_size[1]:
            raise ValueError(
                f"{self!r}: the padded input is {height}×{width}, smaller than the kernel {self.kernel_size}; "
                f"got shape {x.shape}"
            )
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution, the adjoint of Conv2d: weight (in, out, kh, kw), bias (out,).

    Output size per axis: (H − 1)·stride − 2·padding + kernel_size + output_padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, (in_channels, out_channels))
        self.output_padding = _pair("ConvTranspose2d", "output_padding", output_padding, 0)
        if any(o >= s for o, s in zip(self.output_padding, self.stride)):
            raise ValueError(
                f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than stride {self.stride}"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)

    def extra_repr(self) -> str:
        extra = f", output_padding={self.output_padding}" if self.output_padding != (0, 0) else ""
        return super().extra_repr() + extra


class Upsample(Module):
    """Nearest-neighbour upsampling by an integer ``scale_factor`` (int or pair): each pixel becomes a block."""

    def __init__(self, scale_factor, mode: str = "nearest"):
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"Upsample: only mode='nearest' is supported, got {mode!r}")
        self.scale_factor = _pair("Upsample", "scale_factor", scale_factor, 1)
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"{self!r}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
        return F.upsample_nearest(x, self.scale_factor)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}"

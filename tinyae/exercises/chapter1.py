"""Checkers for the exercises of chapter 1 (docs/tutorial/01-structure.md): the sizes a convolutional
encoder shrinks an image to, and the sizes a transposed-convolution decoder grows it back to.

    from tinyae.exercises import chapter1
    chapter1.check_conv_output_size(conv_output_size)                  # (n, kernel, stride, padding) -> int
    chapter1.check_conv_transpose_output_size(conv_transpose_output_size)
"""

from __future__ import annotations

import numpy as np

import tinyae
from tinyae.exercises import checker
from tinyae import functional as F

# (input size n, kernel k, stride s, padding p): the tutorial's models' layers and a few odd ones
CASES = [(28, 4, 2, 1), (14, 4, 2, 1), (7, 3, 1, 1), (28, 3, 1, 0), (9, 3, 2, 0), (10, 3, 2, 1), (5, 5, 3, 2),
         (1, 1, 1, 0), (12, 2, 3, 0), (8, 3, 3, 0), (20, 5, 4, 2)]


def _measured(n: int, kernel: int, stride: int, padding: int, transpose: bool) -> int:
    """The height tinyae's convolution actually produces for an n×n input."""
    x = tinyae.tensor(np.zeros((1, 1, n, n)))
    weight = tinyae.tensor(np.zeros((1, 1, kernel, kernel)))
    convolve = F.conv_transpose2d if transpose else F.conv2d
    return convolve(x, weight, stride=stride, padding=padding).shape[2]


def _check(size_of, transpose: bool, hint: str) -> None:
    name = getattr(size_of, "__name__", repr(size_of))
    op = "conv_transpose2d" if transpose else "conv2d"
    for n, kernel, stride, padding in CASES:
        if not transpose and n + 2 * padding < kernel:
            continue
        expected = _measured(n, kernel, stride, padding, transpose)
        got = size_of(n, kernel, stride, padding)
        assert isinstance(got, (int, np.integer)) and not isinstance(got, bool), (
            f"{name}({n}, {kernel}, {stride}, {padding}) returned {got!r} ({type(got).__name__}); "
            "expected an int")
        assert got == expected, (
            f"{name}(n={n}, kernel={kernel}, stride={stride}, padding={padding}) = {got}, but tinyae's "
            f"{op} makes {expected}. {hint}")
    print(f"✓ {name} agrees with tinyae's {op} on {len(CASES)} layers")


@checker
def check_conv_output_size(conv_output_size) -> None:
    """``conv_output_size(n, kernel, stride, padding)``: the output size of a convolution over n pixels."""
    _check(conv_output_size, False, "Pad n on both sides, count how many window positions fit "
           "(the last window must lie inside), and round down where the stride does not divide evenly")


@checker
def check_conv_transpose_output_size(conv_transpose_output_size) -> None:
    """``conv_transpose_output_size(n, kernel, stride, padding)``: the output size of a transposed
    convolution over n pixels (output_padding 0)."""
    _check(conv_transpose_output_size, True, "Each of the n inputs stamps a kernel-sized patch, stride "
           "pixels after the previous one; then padding pixels are cut from each side")

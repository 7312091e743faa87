"""Reference solutions of chapter 1's exercises (docs/tutorial/01-structure.md)."""


def conv_output_size(n, kernel, stride, padding):
    """⌊(n + 2p − k)/s⌋ + 1 window positions."""
    return (n + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(n, kernel, stride, padding):
    """(n − 1)·s + k stamped pixels, less p on each side."""
    return (n - 1) * stride + kernel - 2 * padding

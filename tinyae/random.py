"""Random numbers from one seeded generator per backend (never NumPy's global ``np.random`` state).

``manual_seed(seed)`` reseeds every backend, so a run repeats exactly. The numpy and strict backends draw
the same stream for the same seed; CuPy's stream (cuRAND) differs. To compare a run on CuPy with one on
NumPy, pass noise in explicitly (``reparameterize(mu, logvar, eps=...)``), or run both inside
``host_streams()``, where CuPy's draws come from NumPy's stream too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from . import backend

_seed: int | None = None
_generators: dict[str, object] = {}
_host_streams = False


def manual_seed(seed: int) -> None:
    """Seed the generators of every backend (the CuPy one when it is first used)."""
    global _seed
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer, got {seed!r}")
    _seed = int(seed)
    _generators.clear()


@contextlib.contextmanager
def host_streams() -> Iterator[None]:
    """Within the block, every backend draws NumPy's numbers for the seed, on the host (copied to the GPU
    for CuPy): a run on CuPy then sees the noise the same run on NumPy sees. For parity tests (a host draw
    and a copy each: slower). The block's generators are its own, seeded by ``manual_seed`` as the others:
    the streams outside it go on where they were."""
    global _host_streams
    previous, _host_streams = _host_streams, True
    try:
        yield
    finally:
        _host_streams = previous


def _on_device(name: str) -> bool:
    """Whether ``name``'s draws come from CuPy's own generator."""
    return name == "cupy" and not _host_streams


def _generator(name: str):
    key = f"{name}, inside host_streams" if _host_streams else name
    generator = _generators.get(key)
    if generator is None:
        if _on_device(name):
            generator = backend.module("cupy").random.RandomState(_seed)
        else:
            generator = np.random.default_rng(_seed)
        _generators[key] = generator
    return generator


def _resolve(dtype, backend_name: str | None) -> tuple[np.dtype, str]:
    return np.dtype(dtype or backend.get_default_dtype()), backend_name or backend.get_backend()


def standard_normal(shape, dtype=None, backend_name: str | None = None):
    """An array of N(0, 1) draws on ``backend_name`` (default: the active backend)."""
    dtype, name = _resolve(dtype, backend_name)
    generator = _generator(name)
    if _on_device(name):
        return generator.standard_normal(shape, dtype=dtype)
    draws = generator.standard_normal(shape, dtype=dtype)
    return draws if name == "numpy" else backend.to_backend(draws, name)


def uniform(shape, low: float = 0.0, high: float = 1.0, dtype=None, backend_name: str | None = None):
    """An array of U[low, high) draws on ``backend_name`` (default: the active backend)."""
    dtype, name = _resolve(dtype, backend_name)
    generator = _generator(name)
    if _on_device(name):
        draws = generator.random_sample(shape, dtype=dtype)
    else:
        draws = backend.to_backend(generator.random(shape, dtype=dtype), name)
    if low == 0.0 and high == 1.0:
        return draws
    return draws * (high - low) + low

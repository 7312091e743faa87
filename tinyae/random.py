"""Random numbers from one seeded generator per backend (never NumPy's global ``np.random`` state).

``manual_seed(seed)`` reseeds every backend, so a run repeats exactly. The numpy and strict backends draw
the same stream for the same seed; CuPy's stream (cuRAND) differs, so parity tests draw noise on the host
and pass it in explicitly (e.g. ``reparameterize(mu, logvar, eps=...)``).
"""

from __future__ import annotations

import numpy as np

from . import backend

_seed: int | None = None
_generators: dict[str, object] = {}


def manual_seed(seed: int) -> None:
    """Seed the generators of every backend (the CuPy one when it is first used)."""
    global _seed
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer, got {seed!r}")
    _seed = int(seed)
    _generators.clear()


def _generator(name: str):
    generator = _generators.get(name)
    if generator is None:
        if name == "cupy":
            generator = backend.module("cupy").random.RandomState(_seed)
        else:
            generator = np.random.default_rng(_seed)
        _generators[name] = generator
    return generator


def _resolve(dtype, backend_name: str | None) -> tuple[np.dtype, str]:
    return np.dtype(dtype or backend.get_default_dtype()), backend_name or backend.get_backend()


def standard_normal(shape, dtype=None, backend_name: str | None = None):
    """An array of N(0, 1) draws on ``backend_name`` (default: the active backend)."""
    dtype, name = _resolve(dtype, backend_name)
    generator = _generator(name)
    if name == "cupy":
        return generator.standard_normal(shape, dtype=dtype)
    draws = generator.standard_normal(shape, dtype=dtype)
    return draws if name == "numpy" else backend.to_backend(draws, name)


def uniform(shape, low: float = 0.0, high: float = 1.0, dtype=None, backend_name: str | None = None):
    """An array of U[low, high) draws on ``backend_name`` (default: the active backend)."""
    dtype, name = _resolve(dtype, backend_name)
    generator = _generator(name)
    if name == "cupy":
        draws = generator.random_sample(shape, dtype=dtype)
    else:
        draws = backend.to_backend(generator.random(shape, dtype=dtype), name)
    if low == 0.0 and high == 1.0:
        return draws
    return draws * (high - low) + low

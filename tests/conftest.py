"""Test setup: Hypothesis profiles, the backend under test, and the gpu marker.

The backend is chosen for the whole run by TINYAE_BACKEND (numpy or strict in CI); every test creates its
tensors with tinyae.tensor(...) so that they land on it.
"""

import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinyae
from tinyae import backend
from tinyae.kernels import threads

# The compiled CPU kernels are cached in a folder of this run (subprocesses inherit it), never in ~/.cache.
KERNEL_CACHE = tempfile.mkdtemp(prefix="tinyae-test-cache-")
os.environ["TINYAE_CACHE_DIR"] = KERNEL_CACHE

settings.register_profile(
    "ci", max_examples=20, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKEND = os.environ.get("TINYAE_BACKEND", "numpy")


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _cupy_available() -> bool:
    try:
        backend.module("cupy")
    except RuntimeError:
        return False
    return True


def pytest_report_header(config):
    torch = "PyTorch-parity tests run" if _torch_available() else (
        "PyTorch not installed: the PyTorch-parity tests (-m torch) are skipped; pip install -e '.[torch]'")
    return f"tinyae backend: {BACKEND}; hypothesis profile: {settings._current_profile}; {torch}"


def pytest_unconfigure(config):
    shutil.rmtree(KERNEL_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    skips = {}
    if not _cupy_available():
        skips["gpu"] = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    if not _torch_available():
        skips["torch"] = pytest.mark.skip(reason="needs PyTorch: pip install -e '.[torch]'")
    for item in items:
        for marker, skip in skips.items():
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Each test starts on the backend under test with float32 as the default dtype, and no device assert
    left pending by another test (one that failed before reading its result would report it here), and the
    compiled loops on the calling thread, OpenBLAS on its own threads, whatever ran the command in this
    process before (``main`` shares OpenMP's threads with OpenBLAS; the ``shared`` fixtures share anew)."""
    tinyae.set_backend(BACKEND)
    tinyae.set_default_dtype("float32")
    backend._device_asserts.clear()
    threads.stop_sharing()
    yield
    tinyae.set_backend(BACKEND)
    tinyae.set_default_dtype("float32")
    backend._device_asserts.clear()


@pytest.fixture
def xp():
    """The array module of the backend under test."""
    return backend.module(BACKEND)


def to_numpy(value) -> np.ndarray:
    """Any backend array or Tensor as a NumPy array (explicit host copy)."""
    if isinstance(value, tinyae.Tensor):
        return value.numpy()
    return backend.to_backend(value, "numpy")

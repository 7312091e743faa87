"""Backend switching and the strict backend's CuPy-like refusals."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest

import tinyae as ta
from tinyae import backend
from tinyae.backend.strict import StrictArray, namespace as strict_xp
from tests.conftest import BACKEND, _cupy_available, to_numpy


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="numpy, cupy, strict"):
        ta.set_backend("torch")


@pytest.mark.skipif(_cupy_available(), reason="CuPy and a GPU are present")
def test_cupy_without_cupy_says_what_to_install():
    with pytest.raises(RuntimeError, match=r'pip install "cupy-cuda12x\[ctk\]>=14.2" where .*CUDA Version: 12.*'
                                           r'pip install "cupy-cuda13x\[ctk\]>=14.2" where it shows 13.x'):
        ta.set_backend("cupy")
    assert ta.get_backend() == BACKEND


def test_environment_variable_selects_the_backend():
    env = dict(os.environ, TINYAE_BACKEND="strict")
    code = "import tinyae; print(tinyae.get_backend(), type(tinyae.tensor([1.0]).data).__name__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["strict", "StrictArray"]


def test_set_backend_changes_where_new_tensors_live():
    ta.set_backend("strict")
    assert ta.get_backend() == "strict" and ta.tensor([1.0]).backend == "strict"
    ta.set_backend("numpy")
    assert type(ta.tensor([1.0]).data) is np.ndarray


def test_strict_refuses_implicit_conversion_to_numpy():
    a = strict_xp.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError, match="0-dimensional"):
        float(a)
    assert float(a[1]) == 1.0 and a.sum().item() == 3.0
    assert np.array_equal(a.get(), np.arange(3.0))


def test_strict_refuses_mixing_with_numpy_arrays():
    a = strict_xp.asarray(np.arange(3.0))
    host = np.ones(3)
    for mix in (lambda: a + host, lambda: host + a, lambda: a * host, lambda: strict_xp.maximum(a, host),
                lambda: strict_xp.where(a > 0, a, host)):
        with pytest.raises(TypeError):
            mix()
    with pytest.raises(ValueError, match="cannot be assigned a ndarray"):  # CuPy's error type here
        a[:] = host
    assert to_numpy(a + 1.0).tolist() == [1.0, 2.0, 3.0]
    assert to_numpy(a * np.float32(2)).tolist() == [0.0, 2.0, 4.0]


def test_strict_returns_arrays_not_numpy_scalars():
    a = strict_xp.asarray(np.arange(4.0).reshape(2, 2))
    for result in (a.sum(), a.max(), strict_xp.exp(a[0, 0]), a[1, 1], a.mean()):
        assert type(result) is StrictArray and result.shape == ()


def test_strict_namespace_has_only_the_cupy_like_api():
    with pytest.raises(AttributeError):
        strict_xp.nanpercentile  # noqa: B018 - NumPy has it, CuPy-like code must not rely on it
    with pytest.raises(AttributeError, match="not part of the CuPy-like API"):
        strict_xp.asarray(np.ones(2)).tofile  # noqa: B018


def test_to_backend_round_trip():
    host = np.arange(6.0).reshape(2, 3)
    strict = backend.to_backend(host, "strict")
    assert backend.backend_of(strict) == "strict"
    assert np.array_equal(backend.to_backend(strict, "numpy"), host)
    assert backend.to_backend(host, "numpy") is host


def test_scatter_add_accumulates_repeated_indices(xp):
    target = xp.zeros(4)
    backend.scatter_add(target, xp.asarray(np.array([1, 1, 3])), xp.asarray(np.array([1.0, 2.0, 5.0])))
    assert to_numpy(target).tolist() == [0.0, 3.0, 0.0, 5.0]


# CuPy arrays made before tinyae's cupy backend was loaded ---------------------------------------------

def cupy_stand_in(module_name: str) -> type:
    """A class named as ``cupy.ndarray`` is (``cupy.ndarray`` or ``cupy._core.core.ndarray``), holding a NumPy
    array and refusing implicit conversion to NumPy as CuPy does."""
    class ndarray:  # noqa: N801 - CuPy's name
        def __init__(self, host):
            self.host = np.array(host)

        dtype = property(lambda self: self.host.dtype)
        shape = property(lambda self: self.host.shape)

        def __array__(self, *args, **kwargs):
            raise TypeError("Implicit conversion to a NumPy array is not allowed")

        def astype(self, dtype):
            return ndarray(self.host.astype(dtype))

        def get(self):
            return self.host.copy()

    ndarray.__module__ = module_name
    return ndarray


@pytest.mark.skipif(_cupy_available(), reason="CuPy and a GPU are present")
@pytest.mark.parametrize("module_name", ["cupy", "cupy._core.core"])
def test_a_cupy_array_loads_the_cupy_backend_on_sight(module_name):
    """It took the host branch before (np.asarray: CuPy's TypeError); now it loads CuPy, which fails here."""
    with pytest.raises(RuntimeError, match=r"cupy-cuda12x\[ctk\]"):
        ta.tensor(cupy_stand_in(module_name)([1.0, 2.0]))


@pytest.mark.parametrize("module_name", ["cupy", "cupy._core.core"])
def test_a_cupy_array_is_recognised_before_the_cupy_backend_is_loaded(monkeypatch, module_name):
    cupy_array = cupy_stand_in(module_name)
    cupy = types.SimpleNamespace(
        ndarray=cupy_array, asarray=lambda value: value if type(value) is cupy_array else cupy_array(value))
    loads = []
    monkeypatch.setattr(backend, "_cupy", None)

    def load_cupy():
        loads.append(1)
        monkeypatch.setattr(backend, "_cupy", cupy)
        return cupy

    monkeypatch.setattr(backend, "_load_cupy", load_cupy)
    data = cupy_array(np.arange(3.0))
    assert backend.is_array(data) and backend.array_module(data) is cupy
    assert backend.backend_of(data) == "cupy"
    t = ta.tensor(data)
    assert type(t.data) is cupy_array and t.backend == "cupy" and t.dtype == np.float64 and loads == [1]
    assert t.numpy().tolist() == [0.0, 1.0, 2.0] and t.data is not data  # a copy, on the device
    assert ta.tensor(cupy_array([1, 2])).dtype == np.float32  # integers get the default dtype, as elsewhere


def test_an_array_type_named_ndarray_elsewhere_is_no_cupy_array(monkeypatch):
    monkeypatch.setattr(backend, "_load_cupy", lambda: pytest.fail("CuPy loaded for a type not CuPy's"))
    impostor = cupy_stand_in("cupyx_like")([1.0])
    assert not backend.is_array(impostor)
    with pytest.raises(TypeError, match="expected a NumPy, CuPy or strict array, got ndarray"):
        backend.array_module(impostor)


def test_two_cupy_packages_are_one_clear_error(tmp_path, monkeypatch):
    """CuPy only warns when two of its packages are installed (and then fails in odd ways)."""
    fake = tmp_path / "cupy"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import warnings\nwarnings.warn('CuPy may not function correctly because multiple CuPy packages are "
        "installed\\n  in your environment:\\n\\n    cupy-cuda12x, cupy-cuda13x\\n\\n  Follow these steps')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "cupy", None)  # (so that the real module, if any, comes back after)
    del sys.modules["cupy"]
    monkeypatch.setattr(backend, "_cupy", None)
    with pytest.raises(RuntimeError, match=r"two CuPy packages are installed \(cupy-cuda12x, cupy-cuda13x\); "
                                           r"keep the one for your CUDA: pip uninstall -y cupy-cuda12x cupy-cuda13x, "
                                           r"then pip install \"cupy-cuda12x"):
        backend._load_cupy()

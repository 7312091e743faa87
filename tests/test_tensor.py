"""Tensor construction, dtype rules, attributes, host transfer and bad input."""

import numpy as np
import pytest

import tinyae as ta
from tinyae import backend
from tests.conftest import BACKEND, to_numpy


@pytest.mark.parametrize(
    "data, expected",
    [(3.0, "float32"), ([1, 2], "float32"), ([[1.5]], "float32"), (np.arange(3), "float32"),
     (np.array([True]), "float32"), (np.ones(2, np.float64), "float64"), (np.ones(2, np.float16), "float16")],
)
def test_dtype_rules(data, expected):
    assert ta.tensor(data).dtype == np.dtype(expected)


@pytest.mark.parametrize("dtype", ["float64", np.float64, np.dtype("float64")])
def test_set_default_dtype_accepts_strings_and_numpy_dtypes(dtype):
    ta.set_default_dtype(dtype)
    assert ta.get_default_dtype() == np.float64
    assert ta.tensor([1, 2]).dtype == np.float64
    assert ta.tensor(np.ones(2, np.float32)).dtype == np.float32


def test_set_default_dtype_rejects_non_floats():
    with pytest.raises(ValueError, match="int32"):
        ta.set_default_dtype("int32")


def test_explicit_dtype_wins():
    assert ta.tensor([1, 2], dtype="float64").dtype == np.float64
    assert ta.tensor(np.ones(2), dtype=np.float32).dtype == np.float32


def test_tensor_lands_on_the_active_backend_and_copies(xp):
    source = np.arange(4.0)
    t = ta.Tensor(source)
    assert t.backend == BACKEND
    assert isinstance(t.data, xp.ndarray)
    source[0] = 100.0
    assert to_numpy(t)[0] == 0.0


def test_attributes():
    t = ta.tensor(np.zeros((2, 3, 4)), requires_grad=True)
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.size == 24 and len(t) == 2
    assert t.dtype == np.float64 and t.requires_grad and t.is_leaf and t.grad is None
    assert (t * 2).is_leaf is False


def test_data_is_writable_in_place():
    t = ta.tensor([1.0, 2.0])
    t.data[0] = 5.0
    t.data *= 2
    assert to_numpy(t).tolist() == [10.0, 4.0]


def test_numpy_returns_a_host_copy():
    t = ta.tensor([1.0, 2.0])
    host = t.numpy()
    assert type(host) is np.ndarray
    host[0] = 9.0
    assert to_numpy(t)[0] == 1.0


def test_item():
    assert ta.tensor([[2.5]]).item() == 2.5
    assert isinstance(ta.tensor(2.0).item(), float)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        ta.tensor([1.0, 2.0]).item()


def test_detach_shares_data_and_leaves_graph():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.is_leaf
    z = x.detach()
    z.data[0] = 7.0
    assert to_numpy(x)[0] == 7.0


def test_requires_grad_():
    x = ta.tensor([1.0])
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="int64"):
        ta.tensor([1, 2], dtype="int64", requires_grad=True)
    t = ta.tensor([1, 2], dtype="int32")
    with pytest.raises(TypeError, match="floating"):
        t.requires_grad_()


def test_retain_grad_needs_requires_grad():
    with pytest.raises(RuntimeError):
        ta.tensor([1.0]).retain_grad()


def test_comparisons_give_boolean_tensors_without_grad():
    x = ta.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result, expected in [
        (x < 2, [True, False, False]), (x <= 2, [True, True, False]), (x > 2, [False, False, True]),
        (x >= 2, [False, True, True]), (x == 2, [False, True, False]), (x != 2, [True, False, True]),
        (2 < x, [False, False, True]), (x > ta.tensor([0.0, 5.0, 1.0]), [True, False, True]),
    ]:
        assert result.dtype == np.bool_ and not result.requires_grad
        assert to_numpy(result).tolist() == expected


def test_numpy_array_on_the_left_uses_reflected_ops():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    if BACKEND == "numpy":
        y = np.array([3.0, 4.0]) * x
        assert isinstance(y, ta.Tensor)
        y.sum().backward()
        np.testing.assert_allclose(to_numpy(x.grad), [3.0, 4.0])
    else:
        with pytest.raises(TypeError, match="numpy"):
            np.array([3.0, 4.0]) * x


def test_lists_are_accepted_as_operands():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    y = [10, 20] + x * [1.0, 3.0]
    assert to_numpy(y).tolist() == [11.0, 26.0]
    assert y.dtype == np.float32


def test_python_scalars_keep_float32():
    x = ta.tensor([1.0, 2.0])
    for y in (x + 1, 2.5 * x, x / 3, 1 / x, x**2, 2.0**x, -x, x - 0.5, 0.5 - x):
        assert y.dtype == np.float32


@pytest.mark.parametrize(
    "make, shapes",
    [
        (lambda a, b: a @ b, ["(2, 3)", "(2, 3)"]),
        (lambda a, b: a + b, ["(2, 3)", "(2,)"]),
        (lambda a, b: a * b, ["(2, 3)", "(2,)"]),
        (lambda a, b: ta.concatenate([a, b], axis=0), ["(2, 3)", "(2,)"]),
        (lambda a, b: ta.stack([a, b]), ["(2, 3)", "(2,)"]),
        (lambda a, b: ta.maximum(a, b), ["(2, 3)", "(2,)"]),
    ],
)
def test_shape_mismatches_raise_value_error_naming_both_shapes(make, shapes):
    a = ta.tensor(np.ones((2, 3)), requires_grad=True)
    b = ta.tensor(np.ones((2,) if shapes[1] == "(2,)" else (2, 3)), requires_grad=True)
    with pytest.raises(ValueError) as error:
        make(a, b)
    for shape in shapes:
        assert shape in str(error.value)


def test_repr_shows_values_dtype_and_grad():
    text = repr(ta.tensor([1.0, 2.0], requires_grad=True))
    assert "1." in text and "float32" in text and "requires_grad=True" in text


def test_to_moves_between_backends_and_back_differentiably():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    other = "numpy" if BACKEND == "strict" else "strict"
    moved = x.to(other)
    assert moved.backend == other and x.to(BACKEND) is x
    (moved * 3.0).sum().backward()
    assert backend.backend_of(x.grad) == BACKEND
    np.testing.assert_allclose(to_numpy(x.grad), [3.0, 3.0])


def test_mixing_backends_raises_type_error_naming_both():
    x = ta.tensor([1.0, 2.0], requires_grad=True)
    other_backend = "strict" if BACKEND == "numpy" else "numpy"
    other = x.detach().to(other_backend)
    for combine in (lambda: x + other, lambda: x * other.data, lambda: ta.concatenate([x, other]),
                    lambda: x @ other, lambda: x < other):
        with pytest.raises(TypeError) as error:
            combine()
        assert BACKEND in str(error.value) and other_backend in str(error.value)
    (x * 2.0).sum().backward()  # nothing half-built remains
    np.testing.assert_allclose(to_numpy(x.grad), [2.0, 2.0])

"""The engine: ordering, accumulation, broadcasting, graph release, no_grad, retain_grad, errors."""

import gc
import weakref

import numpy as np
import pytest

import tinyae as ta
from tinyae.ops.arithmetic import sum_to_shape
from tinyae import backend
from tests.conftest import BACKEND, to_numpy


def leaf(values, dtype="float64"):
    return ta.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def test_long_chain_backpropagates_without_recursion():
    x = leaf([0.5])
    y = x
    for _ in range(50_000):
        y = y * 1.0
        y = y + 0.0
    y.sum().backward()
    assert to_numpy(x.grad) == pytest.approx([1.0])


def test_tensor_used_twice_accumulates_gradient():
    x = leaf([1.0, -2.0, 3.0])
    (x * x + x).sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), 2 * np.array([1.0, -2.0, 3.0]) + 1)


def test_diamond_graph_sums_both_paths():
    x = leaf([2.0])
    a = x * 3.0
    b = x.exp()
    (a * b).sum().backward()  # d/dx (3x·eˣ) = 3eˣ + 3x·eˣ
    np.testing.assert_allclose(to_numpy(x.grad), 3 * np.exp(2.0) * (1 + 2.0))


def test_a_tensor_waits_for_consumers_on_a_long_path_and_other_graphs_are_left_alone():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    other = (x * 5.0).sum()  # ops recorded in between, not on the root's graph
    long = h
    for _ in range(5):
        long = long * 1.5
    (long + h).sum().backward()  # h has two consumers: the last op, and the first of the long path
    np.testing.assert_allclose(to_numpy(x.grad), [2 * 1.5**5 + 2] * 2)
    other.backward()  # untouched by the first backward
    np.testing.assert_allclose(to_numpy(x.grad), [2 * 1.5**5 + 7] * 2)


@pytest.mark.parametrize(
    "grad_shape, target",
    [((2, 3), ()), ((4, 3), (3,)), ((2, 3, 4), (3, 1)), ((2, 3, 4), (2, 1, 4)), ((5,), (1,)), ((2, 2), (2, 2))],
)
def test_sum_to_shape_sums_broadcast_axes(xp, grad_shape, target):
    grad = np.arange(np.prod(grad_shape), dtype=np.float64).reshape(grad_shape)
    result = to_numpy(sum_to_shape(xp.asarray(grad), target))
    expected = grad
    while expected.ndim > len(target):
        expected = expected.sum(axis=0)
    for axis, size in enumerate(target):
        if size == 1:
            expected = expected.sum(axis=axis, keepdims=True)
    assert result.shape == target
    np.testing.assert_allclose(result, expected)


def test_bias_gradient_sums_over_batch():
    x = leaf(np.ones((4, 3)))
    bias = leaf([1.0, 2.0, 3.0])
    ((x + bias) * leaf(np.arange(12.0).reshape(4, 3))).sum().backward()
    np.testing.assert_allclose(to_numpy(bias.grad), np.arange(12.0).reshape(4, 3).sum(axis=0))


def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), [6.0, 6.0])


def test_second_backward_through_freed_graph_raises_clearly():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(to_numpy(x.grad), 4 * np.exp([1.0, 2.0]))


def test_intermediate_buffers_are_freed_after_backward():
    x = leaf(np.ones((3, 3)))
    hidden = (x * 2.0).exp()
    probe = weakref.ref(hidden)
    loss = (hidden * 3.0).sum()
    del hidden
    gc.collect()
    assert probe() is not None  # the graph keeps it alive until backward
    loss.backward()
    gc.collect()
    assert probe() is None
    assert x.grad is not None


def test_backward_on_non_scalar_without_grad_raises():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(RuntimeError, match="single-element"):
        y.backward()


def test_backward_with_explicit_grad(xp):
    x = leaf([1.0, 2.0])
    (x * 3.0).backward(xp.asarray(np.array([1.0, 10.0])))
    np.testing.assert_allclose(to_numpy(x.grad), [3.0, 30.0])


def test_backward_grad_of_wrong_shape_raises(xp):
    y = leaf([1.0, 2.0]) * 3.0
    with pytest.raises(ValueError, match=r"\(3,\)"):
        y.backward(xp.asarray(np.ones(3)))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ta.tensor([1.0]).sum().backward()


def test_non_leaf_keeps_no_grad_unless_retained():
    x = leaf([1.0, 2.0])
    hidden = x * 2.0
    kept = x * 3.0
    kept.retain_grad()
    (hidden + kept).sum().backward()
    assert hidden.grad is None
    np.testing.assert_allclose(to_numpy(kept.grad), [1.0, 1.0])
    np.testing.assert_allclose(to_numpy(x.grad), [5.0, 5.0])


def test_no_grad_as_context_manager_and_decorator():
    x = leaf([1.0])
    with ta.no_grad():
        assert not ta.is_grad_enabled()
        y = x * 2.0
    assert ta.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf

    @ta.no_grad()
    def double(t):
        return t * 2.0

    assert not double(x).requires_grad
    assert (x * 2.0).requires_grad


def test_no_grad_restores_state_after_exception():
    with pytest.raises(ZeroDivisionError):
        with ta.no_grad():
            1 / 0
    assert ta.is_grad_enabled()


def test_leaf_gradients_never_share_memory():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()  # Add passes the same gradient array to both inputs
    a.grad *= 10
    np.testing.assert_allclose(to_numpy(b.grad), [1.0, 1.0])


def test_backward_is_deterministic_to_the_last_bit():
    values = np.random.default_rng(0).standard_normal((5, 4))
    grads = []
    for _ in range(2):
        x = leaf(values)
        ta.logsumexp(x.sigmoid() @ x.T, axis=1).sum().backward()
        grads.append(to_numpy(x.grad))
    assert np.array_equal(grads[0], grads[1])


def test_zero_output_gradient_gives_zero_gradients(xp):
    x = leaf(np.random.default_rng(1).standard_normal((3, 2)))
    (x.tanh() * x).backward(xp.zeros((3, 2)))
    assert not to_numpy(x.grad).any()


def test_failed_op_leaves_no_half_built_graph():
    x = leaf(np.ones((2, 3)))
    with pytest.raises(ValueError):
        x @ leaf(np.ones((2, 3)))
    with pytest.raises(ValueError):
        x + leaf(np.ones(4))
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), np.full((2, 3), 2.0))


def test_gradient_dtype_matches_input_dtype():
    x = leaf(np.ones((2, 3)), dtype="float32")
    y = ((x * 0.5 + 1) / 3.0) ** 2
    (ta.logsumexp(y.sigmoid(), axis=0).mean() * 2.5).backward()
    assert y.dtype == np.float32
    assert x.grad.dtype == np.float32


def test_explicit_grad_is_cast_to_the_tensor_dtype(xp):
    x = leaf(np.ones(3), dtype="float32")
    (x * 2.0).backward(xp.asarray(np.ones(3)))  # a float64 upstream gradient
    assert x.grad.dtype == np.float32


def test_gradients_keep_each_input_dtype_in_mixed_precision_ops():
    weight = leaf(np.ones((2, 3)), dtype="float32")
    x = ta.tensor(np.ones((4, 3)))  # float64: NumPy's promotion makes the product float64
    (x @ weight.T).sum().backward()
    assert weight.grad.dtype == np.float32


# The engine checks what every backward returns ------------------------------------------------------------
class ReturnsGivenGradients(ta.Function):
    """y = a + b (or y = a with one input); backward returns whatever ``make(grad_out)`` gives."""

    make = staticmethod(lambda grad_out: (grad_out, grad_out))

    def forward(self, a, b=None):
        return a + b if b is not None else a * 1.0

    def backward(self, grad_out):
        return type(self).make(grad_out)


def returning(make):
    return type("BadBackward", (ReturnsGivenGradients,), {"make": staticmethod(make)})


def test_a_gradient_of_the_wrong_shape_raises_naming_the_op_and_the_input():
    x = leaf(np.ones((4, 3)))
    y = returning(lambda grad_out: grad_out[:1]).apply(x)
    with pytest.raises(RuntimeError) as error:
        y.sum().backward()
    for part in ("BadBackward.backward", "input 0", "(1, 3)", "(4, 3)"):
        assert part in str(error.value)
    assert x.grad is None


def test_too_few_gradients_raise():
    a, b = leaf([1.0]), leaf([2.0])
    y = returning(lambda grad_out: grad_out).apply(a, b)  # one gradient for two inputs
    with pytest.raises(RuntimeError, match=r"BadBackward.backward returned 1 gradient\(s\) for 2 input\(s\)"):
        y.sum().backward()


def test_extra_gradients_raise_unless_they_are_trailing_nones():
    a = leaf([1.0])
    returning(lambda grad_out: (grad_out, None)).apply(a).sum().backward()  # an optional input left out
    np.testing.assert_allclose(to_numpy(a.grad), [1.0])
    with pytest.raises(RuntimeError, match=r"returned 2 gradient\(s\) for 1 input\(s\)"):
        returning(lambda grad_out: (grad_out, grad_out)).apply(a).sum().backward()


def test_a_gradient_on_another_backend_raises():
    other = "strict" if BACKEND != "strict" else "numpy"
    x = leaf([1.0, 2.0])
    y = returning(lambda grad_out: backend.to_backend(grad_out, other)).apply(x)
    with pytest.raises(RuntimeError, match=f"input 0 that is a {other} array, but the input is a {BACKEND}"):
        y.sum().backward()


def test_a_gradient_that_is_not_an_array_raises():
    with pytest.raises(RuntimeError, match="input 0 that is float"):
        returning(lambda grad_out: 1.0).apply(leaf([1.0])).sum().backward()


def test_a_gradient_of_a_non_float_dtype_raises_and_a_float_one_is_cast():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="input 0 of dtype int64, but the input has dtype float64"):
        returning(lambda grad_out: grad_out.astype("int64")).apply(x).sum().backward()
    returning(lambda grad_out: grad_out.astype("float32")).apply(x).sum().backward()  # the documented cast
    assert x.grad.dtype == np.float64


def test_a_numpy_scalar_from_a_backward_becomes_a_0d_array():
    x = leaf(2.0)
    returning(lambda grad_out: (grad_out * 3.0).sum()).apply(x).backward()  # NumPy: a scalar, strict: 0-d
    assert type(x.grad) is type(x.data) and x.grad.shape == ()
    assert to_numpy(x.grad) == 3.0


def test_summed_0d_gradients_stay_arrays_in_the_engine_and_in_grad():
    x = leaf(2.0)
    (x * 3.0 + x * 4.0).backward()  # two 0-d gradients meet in the engine's sum
    assert type(x.grad) is type(x.data) and x.grad.shape == ()
    (x * 5.0).backward()  # and in .grad's accumulation
    assert type(x.grad) is type(x.data) and x.grad.shape == ()
    assert to_numpy(x.grad) == 12.0

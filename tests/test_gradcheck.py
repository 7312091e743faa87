"""The gradient checker itself: it passes correct gradients and catches wrong ones."""

from pathlib import Path

import numpy as np
import pytest

import tinyae as ta
from tinyae.autograd import Function


class WrongSquare(Function):
    """y = x², with a backward that forgets the factor 2 (a negative control)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad_out):
        return grad_out * self.x


def random_leaf(shape, seed=0, dtype="float64"):
    values = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return ta.tensor(values, requires_grad=True)


def test_correct_gradient_passes():
    assert ta.gradcheck(lambda a, b: (a @ b).tanh(), [random_leaf((3, 4)), random_leaf((4, 2), 1)]) is True


def test_wrong_backward_is_caught_and_named():
    with pytest.raises(ta.GradcheckError) as error:
        ta.gradcheck(lambda x: WrongSquare.apply(x), [random_leaf((2, 3))])
    message = str(error.value)
    for part in ("input 0", "element (", "analytic", "numeric", "max abs error", "max rel error"):
        assert part in message


def test_float32_inputs_are_checked_in_float64():
    x = random_leaf((3,), dtype="float32")
    assert ta.gradcheck(lambda x: x.exp() * 3.0, [x])
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensor is untouched


def test_only_inputs_that_require_grad_are_checked():
    constant = ta.tensor(np.ones((2, 2)))
    assert ta.gradcheck(lambda x, c: x * c, [random_leaf((2, 2)), constant])
    with pytest.raises(ValueError, match="nothing to check"):
        ta.gradcheck(lambda c: c * 2.0, [constant])


def test_tuple_outputs_are_checked_together():
    assert ta.gradcheck(lambda x: (x.exp(), x.sum(axis=0)), [random_leaf((2, 3))])


def test_downcasting_function_is_refused():
    with pytest.raises(ta.GradcheckError, match="float64"):
        ta.gradcheck(lambda x: ta.tensor(x.numpy().astype(np.float32), requires_grad=True), [random_leaf((2,))])


def test_gradient_that_is_missing_counts_as_zero_and_fails():
    x = random_leaf((2,))
    with pytest.raises(ta.GradcheckError):
        ta.gradcheck(lambda x: x.detach() * 2.0 + x * 0.0, [x])


def test_an_input_that_fn_ignores_is_reported_not_passed():
    used, ignored = random_leaf((3,)), random_leaf((2,), seed=1)
    with pytest.raises(ta.GradcheckError, match="does not influence"):
        ta.gradcheck(lambda x, w: x * 2.0, [used, ignored])


class DriftingSquare(Function):
    """y = x², with a backward that changes what it reads (a negative control for reentrancy)."""

    def forward(self, x):
        self.x = x.copy()
        return x * x

    def backward(self, grad_out):
        grad = grad_out * 2 * self.x
        self.x = self.x + 1e-3
        return grad


class WrongWhenOnlyBNeedsGrad(Function):
    """y = a ⊙ b, whose backward is right when both inputs need a gradient and wrong when only b does."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad_out):
        need_a, need_b = self.needs_input_grad
        if need_a and need_b:
            return grad_out * self.b, grad_out * self.a
        return (grad_out * self.b if need_a else None), (grad_out * self.b if need_b else None)


def test_a_backward_that_is_not_reentrant_is_caught():
    with pytest.raises(ta.GradcheckError, match="input 0 .*running backward twice .* not reentrant"):
        ta.gradcheck(DriftingSquare.apply, [random_leaf((2, 3))])


def test_a_needs_input_grad_branch_is_checked_by_switching_inputs_off():
    a, b = random_leaf((2, 3)), random_leaf((2, 3), seed=1)
    with pytest.raises(ta.GradcheckError, match="input 1 .* changed when input 0 stopped requiring one"):
        ta.gradcheck(WrongWhenOnlyBNeedsGrad.apply, [a, b])


def test_an_input_that_does_not_require_grad_must_receive_none():
    def gives_the_constant_a_gradient(x, c):
        c.grad = c.data * 0.0  # as a broken engine or op would
        return x * c

    with pytest.raises(ta.GradcheckError, match="input 1 .* does not require a gradient but received one"):
        ta.gradcheck(gives_the_constant_a_gradient, [random_leaf((2,)), ta.tensor(np.ones(2))])


def test_the_custom_op_example_of_the_docs_runs():
    """The code block of docs/backprop.md's "Writing your own op", executed as written."""
    text = (Path(__file__).parents[1] / "docs" / "backprop.md").read_text(encoding="utf-8")
    section = text.split("## 18. Writing your own op", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "docs/backprop.md", "exec"), namespace)  # it asserts gradcheck's verdict itself
    hypot = namespace["Hypot"]
    assert issubclass(hypot, ta.Function)
    a, b = namespace["a"], namespace["b"]
    expected = np.hypot(a.numpy(), b.numpy())
    np.testing.assert_allclose(hypot.apply(a, b).numpy(), expected, rtol=1e-12)


# The directional check (for inputs too large to go element by element) -------------------------------------

from tinyae.testing.gradcheck import compare, directional_gradients  # noqa: E402


def _directional_passes(fn, inputs, seed=0):
    for position, shape, analytic, numeric in directional_gradients(fn, inputs, seed=seed):
        compare(position, shape, analytic, numeric, 1e-5, 1e-3)
    return True


def test_directional_check_passes_a_correct_gradient_and_catches_a_wrong_one():
    x, w = random_leaf((50, 40)), random_leaf((40, 30), seed=1)
    assert _directional_passes(lambda x, w: (x @ w).tanh().sum(), [x, w])
    rows = directional_gradients(lambda x, w: (x @ w).tanh().sum(), [x, w])
    assert [(position, shape) for position, shape, _, _ in rows] == [(0, (50, 40)), (1, (40, 30))]
    with pytest.raises(ta.GradcheckError, match="input 0"):
        _directional_passes(lambda x: WrongSquare.apply(x).sum(), [random_leaf((200,))])


def test_directional_check_steps_around_a_kink_near_the_point():
    values = np.array([1.5, 3e-7, -0.8, 0.6])  # x₁ lies within the step (1e-6) of relu's kink, beyond 1e-7
    x = ta.tensor(values, requires_grad=True)
    assert _directional_passes(lambda x: ta.functional.relu(x).sum() * 3.0, [x])


def test_directional_check_refuses_a_point_on_a_kink():
    values = np.random.default_rng(0).uniform(0.5, 2.0, 100)
    values[3] = 0.0  # every direction crosses the kink of relu at 0: there is no derivative to check
    with pytest.raises(ta.GradcheckError, match="crossed a kink"):
        directional_gradients(lambda x: ta.functional.relu(x).sum(), [ta.tensor(values, requires_grad=True)])

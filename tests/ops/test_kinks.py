"""The conventions at kinks and ties, pinned (every other test keeps its inputs away from them).

README "Semantics worth knowing": relu and abs use the subgradient 0 at 0; leaky_relu uses its slope at 0
(as PyTorch); clip passes the gradient at the bounds; max, maximum and minimum split the gradient evenly
between ties. Where PyTorch is installed, each convention is also checked against it.
"""

import numpy as np
import pytest

import tinyae as ta
from tinyae import functional as F
from tests.conftest import to_numpy

GRAD = np.array([1.0, 2.0, 4.0])  # distinct per element, so a gradient sent to the wrong place shows


def grad_of(function, values):
    x = ta.tensor(np.array(values, dtype=np.float64), requires_grad=True)
    function(x).backward(ta.tensor(GRAD[: len(values)]))
    return to_numpy(x.grad)


def torch_grad_of(function, values):
    import torch
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    function(x).backward(torch.tensor(GRAD[: len(values)]))
    return x.grad.numpy()


CASES = {  # name → (tinyae function, torch function, inputs at the kink, the documented gradient)
    "relu at 0 and -0": (F.relu, lambda x: x.relu(), [0.0, -0.0, 1.0], [0.0, 0.0, 4.0]),
    "leaky_relu at 0 takes the slope": (lambda x: F.leaky_relu(x, 0.25),
                                        lambda x: __import__("torch").nn.functional.leaky_relu(x, 0.25),
                                        [0.0, -1.0, 1.0], [0.25, 0.5, 4.0]),
    "abs at 0": (lambda x: x.abs(), lambda x: x.abs(), [0.0, -0.0, -3.0], [0.0, 0.0, -4.0]),
    "clip passes at both bounds": (lambda x: x.clip(-1.0, 1.0), lambda x: x.clamp(-1.0, 1.0),
                                   [-1.0, 1.0, 1.5], [1.0, 2.0, 0.0]),
    "clip with min only passes at it": (lambda x: x.clip(min=0.5), lambda x: x.clamp(min=0.5),
                                        [0.5, 0.25, 2.0], [1.0, 0.0, 4.0]),
    "clip with max only passes at it": (lambda x: x.clip(max=0.5), lambda x: x.clamp(max=0.5),
                                        [0.5, 0.75, -2.0], [1.0, 0.0, 4.0]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_at_the_kink_is_the_documented_one(name):
    function, _, values, expected = CASES[name]
    np.testing.assert_array_equal(grad_of(function, values), expected)


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_at_the_kink_is_pytorchs(name):
    function, torch_function, values, _ = CASES[name]
    np.testing.assert_array_equal(grad_of(function, values), torch_grad_of(torch_function, values))


def test_maximum_and_minimum_split_ties_evenly():
    for combine in (ta.maximum, ta.minimum):
        a = ta.tensor(np.array([2.0, 1.0, 3.0]), requires_grad=True)
        b = ta.tensor(np.array([2.0, 5.0, 0.0]), requires_grad=True)
        combine(a, b).backward(ta.tensor(GRAD))
        larger = combine is ta.maximum
        np.testing.assert_array_equal(to_numpy(a.grad), [0.5, 0.0 if larger else 2.0, 4.0 if larger else 0.0])
        np.testing.assert_array_equal(to_numpy(b.grad), [0.5, 2.0 if larger else 0.0, 0.0 if larger else 4.0])


def test_max_reduction_splits_ties_evenly():
    x = ta.tensor(np.array([[3.0, 1.0, 3.0], [0.0, 2.0, 2.0]]), requires_grad=True)
    x.max(axis=1).backward(ta.tensor(np.array([6.0, 4.0])))
    np.testing.assert_array_equal(to_numpy(x.grad), [[3.0, 0.0, 3.0], [0.0, 2.0, 2.0]])


@pytest.mark.parametrize("axes", [(1, 2, 0), (2, 0, 1)], ids=["3-cycle", "its inverse"])
def test_transpose_backward_applies_the_inverse_permutation(axes):
    """A 3-cycle is its own inverse's inverse, not its own: using the forward permutation in the backward
    gives a gradient of the wrong shape here (a 2-cycle, which Hypothesis drew, hides that bug)."""
    values = np.arange(24.0).reshape(2, 3, 4)
    x = ta.tensor(values, requires_grad=True)
    y = x.transpose(axes)
    grad = np.arange(100.0, 124.0).reshape(y.shape)
    y.backward(ta.tensor(grad))
    assert x.grad.shape == values.shape
    np.testing.assert_array_equal(to_numpy(x.grad), grad.transpose(np.argsort(axes)))

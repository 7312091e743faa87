"""Version counters: an in-place write through tinyae between a forward and its backward is caught, as in
PyTorch; views share their base's count; ops that saved nothing, and writes into .data, are not checked."""

import numpy as np
import pytest

import tinyae as ta
from tinyae import nn, optim
from tinyae.backend import array_module
from tests.conftest import to_numpy


def leaf(values, dtype="float64"):
    return ta.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


OPTIMIZERS = {  # each update path of each optimizer
    "SGD": lambda params: optim.SGD(params, lr=5.0),
    "SGD momentum": lambda params: optim.SGD(params, lr=0.1, momentum=0.9),
    "Adam (fused)": lambda params: optim.Adam(params, lr=0.1),
    "Adam (per parameter)": lambda params: optim.Adam(params, lr=0.1, amsgrad=True),
    "AdamW (fused)": lambda params: optim.AdamW(params, lr=0.1),
    "AdamW (per parameter)": lambda params: optim.AdamW(params, lr=0.1, maximize=True),
}


def test_a_step_between_forward_and_backward_raises_instead_of_using_the_new_weights():
    w = leaf([1.0, 2.0])
    w.grad = array_module(w.data).ones_like(w.data)
    loss = (w * w).sum()  # the recorded graph's gradient is 2w = [2, 4]
    optim.SGD([w], lr=5.0).step()  # w becomes [-4, -3]: the saved w now gives [-8, -6]
    with pytest.raises(RuntimeError) as error:
        loss.backward()
    message = str(error.value)
    for part in ("Mul", "input 0", "(2,)", "version 1", "version 0", "optimizer.step()"):
        assert part in message


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_every_optimizer_path_bumps_every_updated_parameter_once(make_optimizer):
    weight, bias, unused = leaf(np.ones((3, 2))), leaf(np.zeros(3)), leaf(np.ones(2))
    x = ta.tensor(np.arange(8.0).reshape(4, 2), requires_grad=True)
    loss = ((x @ weight.T + bias) ** 2).sum()
    loss.backward(retain_graph=True)
    optimizer = make_optimizer([weight, bias, unused])
    optimizer.step()
    assert (weight._version, bias._version, unused._version) == (1, 1, 0)  # unused has no grad: skipped
    with pytest.raises(RuntimeError, match="MatMul.backward needs input 1"):
        loss.backward()
    optimizer.step()
    assert (weight._version, bias._version) == (2, 2)


@pytest.mark.parametrize("view", [
    lambda w: w.T,
    lambda w: w.reshape(6),
    lambda w: w[1:],
    lambda w: w[..., 0],
    lambda w: w.broadcast_to((2, 3, 2)),
    lambda w: w.detach(),
], ids=["transpose", "reshape", "slice", "integer index", "broadcast_to", "detach"])
@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "under no_grad"])
def test_a_view_shares_its_base_version(view, recorded):
    w = leaf(np.arange(6.0).reshape(3, 2))
    w.grad = array_module(w.data).ones_like(w.data)
    if recorded:
        y = view(w)
    else:
        with ta.no_grad():
            y = view(w)
    x = leaf(np.ones(y.shape))
    loss = (y * x).sum()  # Mul saves y (x needs a gradient)
    optim.SGD([w], lr=0.1).step()
    assert y._version == w._version == 1
    with pytest.raises(RuntimeError, match="Mul.backward needs input 0"):
        loss.backward()


def test_the_transposed_weight_case_raises_exactly_when_pytorch_does():
    """``y = w.T; loss = (y @ x).sum(); step; backward``: MatMul keeps y only for x's gradient, so it raises
    when x requires one and gives the recorded graph's gradient when it does not (as PyTorch 2.13)."""
    for x_requires_grad in (True, False):
        w = leaf(np.ones((2, 3)))
        x = ta.tensor(np.ones((2, 4)), requires_grad=x_requires_grad)
        loss = (w.T @ x).sum()
        w.grad = array_module(w.data).ones_like(w.data)
        optim.Adam([w], lr=0.1).step()
        w.grad = None
        if x_requires_grad:
            with pytest.raises(RuntimeError, match=r"MatMul.backward needs input 0 \(shape \(3, 2\)\)"):
                loss.backward()
        else:
            loss.backward()
            np.testing.assert_allclose(to_numpy(w.grad), np.full((2, 3), 4.0))


def test_bumping_a_view_bumps_its_base():
    w = leaf(np.ones((2, 3)))
    y = w.T
    y._bump_version()
    assert w._version == 1


def test_advanced_indexing_copies_so_a_later_step_does_not_matter():
    w = leaf(np.arange(3.0))
    w.grad = array_module(w.data).ones_like(w.data)
    x = leaf(np.ones(2))
    y = w[[0, 2]]  # a copy, as in NumPy and PyTorch
    loss = (y * x).sum()
    optim.SGD([w], lr=1.0).step()
    assert y._version == 0
    loss.backward()
    np.testing.assert_allclose(to_numpy(x.grad), [0.0, 2.0])  # the values y had when it was made


def test_an_op_that_saved_nothing_is_not_affected_by_a_step():
    w, x = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    w.grad = array_module(w.data).ones_like(w.data)
    loss = ((w + x) * 2.0).sum()  # Add keeps only shapes, Mul only the constant 2
    optim.SGD([w], lr=1.0).step()
    loss.backward()  # as PyTorch: nothing the backward reads has changed
    np.testing.assert_allclose(to_numpy(x.grad), [2.0, 2.0])


def test_a_saved_output_changed_in_place_is_caught():
    x = leaf([0.0, 1.0])
    hidden = x.exp()  # Exp saves its output
    hidden.retain_grad()
    loss = (hidden * 2.0).sum()
    loss.backward(retain_graph=True)
    optim.SGD([hidden], lr=0.1).step()  # an optimizer may update a retained non-leaf
    with pytest.raises(RuntimeError, match=r"Exp.backward needs its output \(shape \(2,\)\)"):
        loss.backward()


def test_load_state_dict_and_init_fills_bump_the_version():
    layer = nn.Linear(2, 3)
    x = ta.tensor(np.ones((4, 2)), dtype="float32", requires_grad=True)
    loss = layer(x).sum()  # Linear saves the weight (x needs a gradient)
    before = layer.weight._version, layer.bias._version  # (the layer's own initialization filled them)
    layer.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(3)})
    assert (layer.weight._version, layer.bias._version) == (before[0] + 1, before[1] + 1)
    with pytest.raises(RuntimeError, match="Linear.backward needs input 1"):
        loss.backward()
    fills = [nn.init.uniform_, nn.init.normal_, nn.init.zeros_, nn.init.kaiming_uniform_,
             nn.init.xavier_uniform_]
    for count, fill in enumerate(fills, start=2):
        fill(layer.weight)
        assert layer.weight._version == before[0] + count


def test_writing_into_data_directly_is_the_unchecked_escape_hatch():
    w = leaf([1.0, 2.0])
    loss = (w * w).sum()
    w.data[...] = 0.0
    assert w._version == 0
    loss.backward()  # not caught, by design (as PyTorch's .data): the gradient uses the new values
    assert not to_numpy(w.grad).any()


def test_versions_start_at_zero_for_every_kind_of_tensor():
    w = leaf([1.0])
    assert w._version == (w * 2.0)._version == w.detach()._version == nn.Parameter(w)._version == 0


class SavesAView(ta.Function):
    """y = 2x, saving x reshaped to 1-D (a view: found by memory, not by identity)."""

    def forward(self, x):
        self.flat = x.reshape(-1)
        return x * 2.0

    def backward(self, grad_out):
        return array_module(grad_out).ones_like(self.flat).reshape(grad_out.shape) * 2.0


class ReturnsItsInput(ta.Function):
    """y = x, returning the input array itself: the output shares the input's counter."""

    def forward(self, x):
        return x

    def backward(self, grad_out):
        return grad_out


def test_a_custom_op_saving_a_view_of_its_input_is_checked():
    w = leaf(np.ones((2, 2)))
    loss = SavesAView.apply(w).sum()
    w._bump_version()
    with pytest.raises(RuntimeError, match="SavesAView.backward needs input 0"):
        loss.backward()


def test_an_output_that_is_its_input_shares_the_counter():
    w = leaf([1.0, 2.0])
    y = ReturnsItsInput.apply(w)
    w._bump_version()
    assert y._version == 1


def test_a_write_into_another_tensor_is_not_an_error():
    w, other = leaf([1.0, 2.0]), leaf([3.0])
    loss = (w * w).sum()
    nn.init.zeros_(other)  # a write happened since the forward, but not into anything Mul saved
    loss.backward()
    np.testing.assert_allclose(to_numpy(w.grad), [2.0, 4.0])


class FlattensAndSavesItsOutput(ta.Function):
    """y = x viewed as 1-D, keeping y (a view of x's memory, so y shares x's counter)."""

    def forward(self, x):
        self.shape, self.out = x.shape, x.reshape(-1)
        return self.out

    def backward(self, grad_out):
        return grad_out.reshape(self.shape)


def test_an_output_viewing_a_written_input_records_the_version_it_had():
    w = leaf(np.ones((2, 2)))
    nn.init.zeros_(w)  # w (and so y) are at version 1 before the op runs
    loss = FlattensAndSavesItsOutput.apply(w).sum()
    nn.init.zeros_(leaf([0.0]))  # a write elsewhere: backward compares versions
    loss.backward()
    np.testing.assert_allclose(to_numpy(w.grad), np.ones((2, 2)))
    loss = FlattensAndSavesItsOutput.apply(w).sum()
    nn.init.zeros_(w)
    with pytest.raises(RuntimeError, match="FlattensAndSavesItsOutput.backward needs input 0"):
        loss.backward()

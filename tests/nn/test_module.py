"""Module: registration, dotted names, state_dict round trips and errors, modes, backends, repr."""

import numpy as np
import pytest

import tinyae as ta
from tinyae import nn
from tests.conftest import BACKEND, to_numpy


class TinyAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
        self.decoder = nn.Sequential(nn.Linear(2, 6, bias=False), nn.Sigmoid())
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))

    def forward(self, x):
        return self.decoder(self.encoder(x)) * self.scale


def test_named_parameters_follow_registration_order():
    model = TinyAE()
    own_first = [name for name, _ in model.named_parameters(recurse=False)]
    assert own_first == ["scale"]
    assert [name for name, _ in model.named_parameters()] == [
        "scale", "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias", "decoder.0.weight",
    ]
    assert len(list(model.parameters())) == 6
    assert [name for name, _ in model.named_modules()] == [
        "", "encoder", "encoder.0", "encoder.1", "encoder.2", "decoder", "decoder.0", "decoder.1",
    ]


def test_state_dict_round_trip_through_numpy():
    source, target = TinyAE(), TinyAE()
    host_copy = {name: to_numpy(array).astype(np.float64) for name, array in source.state_dict().items()}
    result = target.load_state_dict(host_copy)
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = ta.tensor(np.random.default_rng(0).standard_normal((3, 6)))
    np.testing.assert_array_equal(to_numpy(source(x)), to_numpy(target(x)))
    for parameter in target.parameters():
        assert parameter.dtype == np.float32 and parameter.backend == BACKEND


def test_state_dict_shares_the_parameter_arrays():
    model = TinyAE()
    assert model.state_dict()["scale"] is model.scale.data


def test_load_state_dict_lists_every_problem():
    model = TinyAE()
    state = {name: to_numpy(array) for name, array in model.state_dict().items()}
    del state["encoder.0.bias"]
    state["extra.weight"] = np.zeros(3)
    state["decoder.0.weight"] = np.zeros((5, 5))
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    assert "encoder.0.bias" in message and "extra.weight" in message
    assert "decoder.0.weight" in message and "(5, 5)" in message and "(6, 2)" in message


def test_load_state_dict_non_strict_reports_keys_but_refuses_shape_mismatch():
    model = TinyAE()
    state = {"scale": np.full(1, 3.0), "unknown": np.zeros(1)}
    result = model.load_state_dict(state, strict=False)
    assert "unknown" in result.unexpected_keys and "encoder.0.weight" in result.missing_keys
    assert to_numpy(model.scale).tolist() == [3.0]
    with pytest.raises(RuntimeError, match="shape"):
        model.load_state_dict({"scale": np.zeros(2)}, strict=False)


def test_load_state_dict_accepts_tensors_and_keeps_parameter_identity():
    model = TinyAE()
    before = model.scale
    model.load_state_dict({"scale": ta.tensor([2.0])}, strict=False)
    assert model.scale is before and to_numpy(model.scale).tolist() == [2.0]


def test_train_eval_recurse():
    model = TinyAE()
    assert model.eval() is model
    assert not any(module.training for module in model.modules())
    model.train()
    assert all(module.training for module in model.modules())


def test_zero_grad():
    model = TinyAE()
    model(ta.tensor(np.ones((2, 6)))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(not to_numpy(p.grad).any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_moves_parameters_between_backends():
    model = TinyAE()
    other = "numpy" if BACKEND == "strict" else "strict"
    weights = to_numpy(model.encoder[0].weight)
    assert model.to(other) is model
    assert all(p.backend == other for p in model.parameters())
    np.testing.assert_array_equal(to_numpy(model.encoder[0].weight), weights)
    ta.set_backend(other)
    model(ta.tensor(np.ones((2, 6)))).sum().backward()
    assert all(ta.backend.backend_of(p.grad) == other for p in model.parameters())


def test_parameter_always_requires_grad():
    assert nn.Parameter(np.zeros(3)).requires_grad
    assert nn.Parameter(ta.tensor([1.0, 2.0])).requires_grad


def test_assignment_before_super_init_is_explained():
    class Forgetful(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Forgetful()


def test_assigning_a_plain_tensor_to_a_parameter_slot_is_refused():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="weight"):
        layer.weight = ta.tensor(np.zeros((2, 2)))


def test_repr_is_nested_and_readable():
    text = repr(TinyAE())
    assert "(encoder): Sequential(" in text and "(0): Linear(in_features=6, out_features=4, bias=True)" in text
    assert "(1): Sigmoid()" in text

"""Conv2d, ConvTranspose2d, Upsample and Dropout modules: layouts, init, forward, and bad input."""

import math

import numpy as np
import pytest

import tinyae as ta
from tinyae import functional as F
from tinyae import nn
from tests.conftest import to_numpy


def images(*shape, seed=0):
    return ta.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_conv2d_layout_init_and_forward():
    layer = nn.Conv2d(3, 8, kernel_size=(3, 5), stride=2, padding=(1, 2))
    assert layer.weight.shape == (8, 3, 3, 5) and layer.bias.shape == (8,)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    bound = 1 / math.sqrt(3 * 3 * 5)
    assert np.abs(to_numpy(layer.weight)).max() <= bound and np.abs(to_numpy(layer.bias)).max() <= bound
    x = images(2, 3, 9, 10)
    out = layer(x)
    assert out.shape == (2, 8, 5, 5) and out.dtype == np.float32
    expected = F.conv2d(x, layer.weight, layer.bias, stride=2, padding=(1, 2))
    np.testing.assert_array_equal(to_numpy(out), to_numpy(expected))


def test_conv_transpose2d_layout_and_output_size():
    layer = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
    assert layer.weight.shape == (64, 32, 4, 4)  # (in, out, kh, kw), PyTorch's layout
    bound = 1 / math.sqrt(32 * 4 * 4)  # PyTorch's fan_in of a transposed conv: out_channels · kh · kw
    assert np.abs(to_numpy(layer.weight)).max() <= bound
    assert layer(images(2, 64, 7, 7)).shape == (2, 32, 14, 14)
    assert nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1)(images(1, 4, 5, 5)).shape == (1, 2, 12, 12)


def test_bias_false_registers_no_bias():
    layer = nn.Conv2d(1, 2, 3, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]


def test_upsample_repeats_pixels():
    x = ta.tensor(np.arange(4.0).reshape(1, 1, 2, 2))
    out = to_numpy(nn.Upsample(scale_factor=2)(x))
    np.testing.assert_array_equal(out[0, 0], np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3.0]]))
    assert nn.Upsample((1, 3))(x).shape == (1, 1, 2, 6)
    with pytest.raises(ValueError, match="nearest"):
        nn.Upsample(2, mode="bilinear")


def test_dropout_module_follows_train_and_eval():
    layer = nn.Dropout(0.5)
    x = ta.tensor(np.ones((200, 50)))
    kept = to_numpy(layer(x))
    assert set(np.unique(kept)) == {0.0, 2.0}
    layer.eval()
    np.testing.assert_array_equal(to_numpy(layer(x)), np.ones((200, 50)))
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


@pytest.mark.parametrize(
    "layer, shape, expected",
    [
        (nn.Conv2d(3, 8, 3), (2, 4, 8, 8), "3 input channels"),
        (nn.Conv2d(3, 8, 3), (3, 8, 8), "4-D input"),
        (nn.Conv2d(1, 8, 5), (2, 1, 4, 4), "smaller than the kernel"),
        (nn.ConvTranspose2d(8, 3, 3), (2, 3, 5, 5), "8 input channels"),
        (nn.Upsample(2), (4, 4), "4-D input"),
    ],
)
def test_bad_inputs_name_the_layer_and_what_it_expected(layer, shape, expected):
    with pytest.raises(ValueError) as error:
        layer(ta.tensor(np.zeros(shape, np.float32)))
    message = str(error.value)
    assert type(layer).__name__ in message and expected in message and str(shape) in message


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Conv2d(0, 4, 3), lambda: nn.Conv2d(1, -4, 3), lambda: nn.Conv2d(1, 4, 0),
        lambda: nn.Conv2d(1, 4, 3, stride=0), lambda: nn.Conv2d(1, 4, 3, padding=-1),
        lambda: nn.Conv2d(1, 4, (3, 3, 3)), lambda: nn.ConvTranspose2d(1, 4, 3, stride=2, output_padding=2),
        lambda: nn.Upsample(0),
    ],
)
def test_bad_sizes_are_refused_at_construction(make):
    with pytest.raises(ValueError):
        make()


def test_conv_stack_state_dict_keys_match_pytorch_naming():
    model = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.Flatten(),
                          nn.Linear(64 * 7 * 7, 20))
    shapes = {name: tuple(array.shape) for name, array in model.state_dict().items()}
    assert shapes == {"0.weight": (32, 1, 4, 4), "0.bias": (32,), "2.weight": (64, 32, 4, 4), "2.bias": (64,),
                      "4.weight": (20, 3136), "4.bias": (20,)}
    assert model(images(2, 1, 28, 28)).shape == (2, 20)

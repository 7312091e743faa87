"""Modules and layers, following ``torch.nn`` (names, arguments, parameter layouts, state_dict keys)."""

from . import init, utils
from .conv import Conv2d, ConvTranspose2d, Upsample
from .layers import Dropout, Flatten, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Softplus, Tanh, Unflatten
from .module import Module, Parameter

__all__ = [
    "Conv2d", "ConvTranspose2d", "Dropout", "Flatten", "LeakyReLU", "Linear", "Module", "Parameter", "ReLU",
    "Sequential", "Sigmoid", "Softplus", "Tanh", "Unflatten", "Upsample", "init", "utils",
]

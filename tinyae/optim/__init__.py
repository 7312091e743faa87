"""Optimizers, following ``torch.optim``: they update ``param.data`` in place and never build a graph."""

from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]

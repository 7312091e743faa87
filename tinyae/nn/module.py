"""Module and Parameter: PyTorch's way of bundling parameters with the computation that uses them.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, in assignment order, so
``named_parameters()`` yields dotted names (``encoder.0.weight``) identical to PyTorch's for the same
architecture, and ``state_dict()`` / ``load_state_dict()`` move weights between the two.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator

import numpy as np

from .. import backend
from ..tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class StateDictError(RuntimeError):
    """Weights that don't fit a module: missing or unexpected keys, or shape mismatches (all listed)."""


class Parameter(Tensor):
    """A Tensor that is a module's learnable weight: always requires grad.

    ``Parameter(data)`` copies ``data`` (an array or a Tensor) with ``Tensor``'s dtype rules.
    """

    __slots__ = ()

    def __init__(self, data):
        super().__init__(data, requires_grad=True)

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> Parameter:
        """A zero parameter of the default dtype on the active backend (layers then initialize it)."""
        xp = backend.module(backend.get_backend())
        return cls(xp.zeros(shape, dtype=backend.get_default_dtype()))

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: override ``forward``; call the module to run it."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # Registration ---------------------------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before assigning {name!r}")
        parameters, modules = self._parameters, self._modules
        if isinstance(value, Parameter):
            modules.pop(name, None)
            parameters[name] = value
        elif isinstance(value, Module):
            parameters.pop(name, None)
            modules[name] = value
        elif name in parameters:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} (Parameter or None expected)")
            parameters[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} (Module or None expected)")
            modules[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, parameter: Parameter | None) -> None:
        """Register ``parameter`` (or None, a declared but absent parameter such as ``bias=False``)."""
        self._parameters[name] = parameter
        object.__setattr__(self, name, parameter)

    # Traversal ------------------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((name, module) for name, module in self._modules.items() if module is not None)

    def children(self) -> Iterator[Module]:
        return (module for _, module in self.named_children())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and all below it, depth first, with dotted names ('' for this one)."""
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            children = [(f"{name}.{child}" if name else child, sub) for child, sub in module.named_children()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        return (module for _, module in self.named_modules())

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs in registration order, each parameter once."""
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, parameter in module._parameters.items():
                if parameter is None or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                yield (f"{module_name}.{name}" if module_name else name), parameter

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (parameter for _, parameter in self.named_parameters(recurse=recurse))

    # Modes and gradients --------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active) on this module and all below it."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the accumulated gradients (set to None, or to zeros with ``set_to_none=False``)."""
        for parameter in self.parameters():
            if set_to_none or parameter.grad is None:
                parameter.grad = None
            else:
                parameter.grad = backend.array_module(parameter.data).zeros_like(parameter.data)

    def to(self, backend_name: str) -> Module:
        """Move every parameter (and its gradient) to ``backend_name``, in place; returns self."""
        backend._check_name(backend_name)
        for parameter in self.parameters():
            parameter.data = backend.to_backend(parameter.data, backend_name)
            if parameter.grad is not None:
                parameter.grad = backend.to_backend(parameter.grad, backend_name)
        return self

    # Weights in and out ---------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """Dotted parameter name → the parameter's backend array (shared, not copied, as in PyTorch)."""
        return OrderedDict((name, parameter.data) for name, parameter in self.named_parameters())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (NumPy, CuPy, strict, or Tensors) into the parameters, in place.

        Values are cast to each parameter's dtype and moved to its backend; each written parameter's version
        is bumped (a graph recorded before can no longer be backpropagated). Shape mismatches always raise;
        with ``strict`` (the default), missing and unexpected keys raise too. The error lists every problem.
        """
        own = dict(self.named_parameters())
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        mismatched = []
        for name, parameter in own.items():
            if name in state_dict and tuple(_shape_of(state_dict[name])) != parameter.shape:
                mismatched.append(f"{name}: checkpoint {tuple(_shape_of(state_dict[name]))}, model {parameter.shape}")
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            raise StateDictError(f"error loading state_dict into {type(self).__name__}: " + " | ".join(problems))
        for name, parameter in own.items():
            if name in state_dict:
                value = state_dict[name]
                value = value.data if isinstance(value, Tensor) else value
                if not backend.is_array(value):
                    value = np.asarray(value)
                value = backend.to_backend(value, parameter.backend).astype(parameter.dtype)
                parameter.data[...] = value
                parameter._bump_version()
        return IncompatibleKeys(missing, unexpected)

    # Printing -------------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The settings shown between the parentheses of this module's repr."""
        return ""

    def __repr__(self) -> str:
        children = [f"({name}): " + repr(module).replace("\n", "\n  ") for name, module in self.named_children()]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [self.extra_repr()] if self.extra_repr() else []
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines + children) + "\n)"


def _shape_of(value) -> tuple[int, ...]:
    return value.shape if hasattr(value, "shape") else np.shape(value)

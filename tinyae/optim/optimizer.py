"""Optimizer: the bookkeeping shared by SGD, Adam and AdamW, following ``torch.optim.Optimizer``.

An optimizer holds *parameter groups*: ``param_groups`` is a list of dicts, each with a ``"params"`` list
of Tensors plus one value per hyperparameter (``"lr"``, ``"weight_decay"``, ...). A group that does not
name a hyperparameter takes the optimizer's default. Per-parameter state (momentum buffers, Adam's moment
estimates) lives in ``state[param]``, a dict created on the parameter's first update.

``step()`` reads every ``param.grad`` (never writes it: other code may hold that array) and updates
``param.data`` in place, on raw backend arrays, so no graph is ever built. Parameters whose ``grad`` is
None are skipped, as in PyTorch; each updated parameter's version is bumped, so a backward through a graph
recorded before the step raises instead of using the new values (see tinyae.autograd). Hyperparameters
enter the arithmetic as Python floats, so float32 parameters stay float32 (NumPy 2 would promote
``float32_array * numpy.float64(x)`` to float64).

``state_dict()`` has PyTorch's layout: ``{"state": {index: {...}}, "param_groups": [{..., "params":
[index, ...]}]}`` where ``index`` numbers the parameters in group order. One difference: the arrays in it
are *copies*, so the saved state stays as it was while training goes on (PyTorch hands out references and
relies on ``torch.save`` copying them at once). A new optimizer built over the same parameters and given
that dict with ``load_state_dict`` continues bit for bit like the one that saved it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..tensor import Tensor

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class: parameter groups, ``step``, ``zero_grad``, ``state_dict`` / ``load_state_dict``.

    Subclasses pass their default hyperparameters to ``__init__`` and implement ``_step_group(group)``,
    which updates in place every parameter of one group that has a gradient (``step`` then bumps their
    versions, whichever update path ran); ``_check_hyperparameters(group)`` may raise ValueError for bad
    values (it runs on the defaults and on every group, including groups loaded from a state dict).
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params given to the optimizer should be an iterable of Tensors or of dicts, "
                "got a single Tensor; wrap it in a list: [tensor]"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(_SET_MESSAGE)
        self._check_hyperparameters(defaults)
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # Parameter groups ------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Append a group (a dict with ``"params"`` and optional hyperparameters) to ``param_groups``.

        Missing hyperparameters take the optimizer's defaults. The dict passed in is copied, not modified.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs a 'params' entry (a list of Tensors)")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(_SET_MESSAGE)
        params = list(params)
        position = len(self.param_groups)
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError(f"an optimizer can only optimize Tensors, but group {position} holds a "
                                f"{type(param).__name__}")
            if not param.is_leaf and not param._retains_grad:
                raise ValueError("can't optimize a non-leaf Tensor (one computed by an op); optimize the "
                                 "leaf it was computed from, or a .detach().requires_grad_() copy")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"parameter group {position} holds the same parameter twice")
        taken = {id(p) for existing in self.param_groups for p in existing["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_hyperparameters(group, f" in parameter group {position}")
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict[str, Any], where: str = "") -> None:
        """Raise ValueError naming the argument when a hyperparameter is out of range (overridden)."""

    # Steps and gradients -----------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()`` (run first) or None.

        ``closure``, when given, re-evaluates the model (zero_grad, forward, backward) and returns the loss.
        """
        loss = closure() if closure is not None else None
        with no_grad():
            for group in self.param_groups:
                self._step_group(group)
                for param in group["params"]:
                    if param.grad is not None:
                        param._bump_version()
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``grad = None`` (the default), or fresh zero arrays if ``set_to_none=False``.

        Unlike PyTorch, ``set_to_none=False`` does not overwrite the old gradient array in place but gives
        each parameter a new zero array, so code still holding the old gradient keeps its values. (The
        engine accumulates out of place, so in-place zeroing would save nothing.)
        """
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad = backend.array_module(param.grad).zeros_like(param.grad)

    # Saving and resuming --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: value}}, "param_groups": [{hyperparameters, "params": [index...]}]}``.

        Parameters are numbered 0, 1, ... in group order; state arrays are copies on the parameters'
        backend, step counts are Python ints.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {name: copy.deepcopy(value) for name, value in group.items() if name != "params"}
            packed["params"] = [index.setdefault(id(param), len(index)) for param in group["params"]]
            groups.append(packed)
        state = {
            index[id(param)]: {name: _copy_value(value) for name, value in entry.items()}
            for param, entry in self.state.items()
        }
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take over hyperparameters and state saved by ``state_dict()`` of an optimizer of the same kind.

        The optimizer must have as many groups, of the same sizes, as the saved one; parameters are matched
        by position. Arrays are copied to each parameter's backend and (float state) dtype; their shapes must
        match the parameters'. Everything is checked before anything changes.
        """
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= state_dict.keys():
            raise ValueError("load_state_dict expects a dict with 'state' and 'param_groups' entries, "
                             "as returned by Optimizer.state_dict()")
        saved_groups = state_dict["param_groups"]
        name = type(self).__name__
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, but this {name} "
                             f"has {len(self.param_groups)}")
        id_map: dict[int, Tensor] = {}
        new_groups = []
        for position, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {position} of the loaded state dict has {len(saved['params'])} "
                    f"parameters, but group {position} of this {name} has {len(group['params'])}"
                )
            missing = sorted(set(self.defaults) - set(saved))
            if missing:
                raise ValueError(f"parameter group {position} of the loaded state dict lacks the {name} "
                                 f"hyperparameters {missing}; was it saved by another kind of optimizer?")
            id_map.update(zip(saved["params"], group["params"]))
            new_group = {key: copy.deepcopy(value) for key, value in saved.items() if key != "params"}
            new_group["params"] = group["params"]
            self._check_hyperparameters(new_group, f" in loaded parameter group {position}")
            new_groups.append(new_group)
        new_state: dict[Tensor, dict[str, Any]] = {}
        for index, entry in state_dict["state"].items():
            if index not in id_map:
                raise ValueError(f"loaded state dict has state for parameter {index!r}, which is in none of "
                                 "its param_groups")
            param = id_map[index]
            new_state[param] = {key: _load_value(param, index, key, value) for key, value in entry.items()}
        self.param_groups = new_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for position, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {position}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines + [")"])


_SET_MESSAGE = ("optimizer parameters must be in an ordered collection (a list), not a set: the order of a "
                "set changes between runs, and state_dict numbers parameters by their order")


def check_nonnegative(value: float, label: str, where: str) -> None:
    """ValueError unless ``0 <= value`` (NaN fails too); ``label`` names the argument, e.g. ``"lr"``."""
    if not 0.0 <= value:
        raise ValueError(f"Invalid {label}={value!r}{where}: it must be >= 0")


def _copy_value(value: Any) -> Any:
    return value.copy() if backend.is_array(value) else copy.deepcopy(value)


def _load_value(param: Tensor, index: Any, key: str, value: Any) -> Any:
    """A state entry made ready for ``param``: step counts as ints; arrays on its backend and dtype."""
    if key == "step":
        return int(value)
    if not backend.is_array(value):
        return copy.deepcopy(value)
    if tuple(value.shape) != param.shape:
        raise ValueError(f"loaded state '{key}' of parameter {index!r} has shape {tuple(value.shape)}, but "
                         f"the parameter has shape {param.shape}")
    moved = backend.to_backend(value, param.backend)
    dtype = param.dtype if np.dtype(value.dtype).kind == "f" else value.dtype
    return moved.astype(dtype)  # astype copies: the optimizer never shares arrays with the dict

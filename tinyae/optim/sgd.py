"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay (L2).

The update of one parameter θ with gradient g, learning rate γ, momentum μ, dampening τ, weight decay λ,
exactly as ``torch.optim.SGD`` (its single-tensor ``foreach=False`` path), step t = 1, 2, ...:

    g ← −g                        if maximize
    g ← g + λ·θ                   if λ ≠ 0
    if μ ≠ 0:
        b ← g                     at t = 1 (a copy; no dampening on the first step)
        b ← μ·b + (1 − τ)·g       at t > 1
        g ← g + μ·b               if nesterov
        g ← b                     otherwise
    θ ← θ − γ·g
"""

from __future__ import annotations

from typing import Any

from .optimizer import Optimizer, ParamsT, check_nonnegative


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False)``.

    Same arguments and defaults as ``torch.optim.SGD`` (torch 2.x, whose default lr is 1e-3). The state of a
    parameter is ``{"momentum_buffer": b}`` once it has been updated with μ ≠ 0, and empty otherwise.
    Nesterov momentum needs μ > 0 and τ = 0.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any], where: str = "") -> None:
        check_nonnegative(group["lr"], "learning rate lr", where)
        check_nonnegative(group["momentum"], "momentum value momentum", where)
        check_nonnegative(group["weight_decay"], "weight_decay value weight_decay", where)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires a momentum > 0 and zero dampening{where} "
                             f"(got momentum={group['momentum']!r}, dampening={group['dampening']!r})")

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, momentum = float(group["lr"]), float(group["momentum"])
        dampening, weight_decay = float(group["dampening"]), float(group["weight_decay"])
        nesterov, maximize = bool(group["nesterov"]), bool(group["maximize"])
        for param in group["params"]:
            if param.grad is None:
                continue
            grad = -param.grad if maximize else param.grad  # read only: every change below makes a new array
            if weight_decay != 0:
                grad = grad + weight_decay * param.data
            if momentum != 0:
                state = self.state.setdefault(param, {})
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = grad.copy() if grad is param.grad else grad
                    state["momentum_buffer"] = buffer
                else:
                    buffer *= momentum
                    buffer += (1.0 - dampening) * grad
                grad = grad + momentum * buffer if nesterov else buffer
            weights = param.data
            weights -= lr * grad  # in place: θ ← θ − γ·g

"""Adam and AdamW: gradient steps scaled per coordinate by running moment estimates.

The update of one parameter θ with gradient g at step t = 1, 2, ..., learning rate γ, betas (β₁, β₂),
eps ε and weight decay λ, exactly as ``torch.optim.Adam`` / ``AdamW`` (single-tensor ``foreach=False``):

    g ← −g                                  if maximize
    θ ← θ·(1 − γλ)                          if λ ≠ 0 and decoupled (AdamW)
    g ← g + λ·θ                             if λ ≠ 0 and not decoupled (Adam: L2 penalty in the gradient)
    m ← m + (1 − β₁)·(g − m)                first moment  (= β₁·m + (1 − β₁)·g, computed as torch.lerp)
    v ← β₂·v + (1 − β₂)·g·g                 second moment
    v_max ← max(v_max, v)                   if amsgrad (then v_max replaces v below)
    θ ← θ − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

i.e. θ ← θ − γ·m̂ / (√v̂ + ε) with the bias-corrected m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ): ε is added *after*
the square root and the bias correction, as in PyTorch. m, v (and v_max) start at zero; t counts the updates
of that parameter (a Python int in the state).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..backend import array_module
from ..kernels import Kernel
from .optimizer import Optimizer, ParamsT, check_nonnegative

CHUNK = 65536  # elements per slice of the Adam twin: its 13 passes then run in cache, not in main memory


def _adam_twin(grad, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps,
               weight_decay, decoupled_decay, param, exp_avg, exp_avg_sq):
    """The update in array operations, slice by slice over the flattened arrays (elementwise: slicing
    changes no bit, and each slice's 13 passes stay in cache)."""
    scalars = (one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps, weight_decay,
               decoupled_decay)
    updated = (param, exp_avg, exp_avg_sq)
    if param.size <= CHUNK or not all(array.flags.c_contiguous for array in updated):
        return _adam_slice(grad, *scalars, param, exp_avg, exp_avg_sq)
    # views of the arrays to update (grad's may be a copy: it is only read)
    grad, param, exp_avg, exp_avg_sq = (array.reshape(-1) for array in (grad, *updated))
    for start in range(0, param.size, CHUNK):
        part = slice(start, start + CHUNK)
        _adam_slice(grad[part], *scalars, param[part], exp_avg[part], exp_avg_sq[part])


def _adam_slice(grad, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps,
                weight_decay, decoupled_decay, param, exp_avg, exp_avg_sq):
    if decoupled_decay != 1.0:
        param *= decoupled_decay
    if weight_decay != 0.0:
        grad = grad + weight_decay * param
    difference = grad - exp_avg  # m ← m + (1 − β₁)(g − m), torch.lerp's form for weights < ½
    difference *= one_minus_beta1
    exp_avg += difference
    squared = grad * one_minus_beta2
    squared *= grad
    exp_avg_sq *= beta2
    exp_avg_sq += squared
    denom = array_module(exp_avg_sq).sqrt(exp_avg_sq)
    denom /= bias_correction2_sqrt
    denom += eps
    update = exp_avg * -step_size
    update /= denom
    param += update


adam_update = Kernel(
    "adam_update",
    "T grad, T one_minus_beta1, T beta2, T one_minus_beta2, T step_size, T bias_correction2_sqrt, T eps, "
    "T weight_decay, T decoupled_decay",
    "T param, T exp_avg, T exp_avg_sq",
    """
    param = param * decoupled_decay;
    T g = weight_decay == 0 ? grad : grad + weight_decay * param;  /* as the twin: 0*inf would be NaN */
    exp_avg += (g - exp_avg) * one_minus_beta1;
    exp_avg_sq = exp_avg_sq * beta2 + g * one_minus_beta2 * g;
    param += -step_size * exp_avg / (sqrt(exp_avg_sq) / bias_correction2_sqrt + eps);
    """,
    _adam_twin,
    min_compiled_size=0,  # the twin makes 13 passes: a compiled call is cheaper at any size
)
"""One Adam step in place (decoupled_decay = 1 − γλ for AdamW, weight_decay = λ for Adam's L2 term, else 1
and 0): m ← m + (1 − β₁)(g − m);  v ← β₂v + (1 − β₂)g²;  θ ← θ − step_size·m / (√v/√(1 − β₂ᵗ) + ε)."""


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    maximize=False, decoupled_weight_decay=False)``, as ``torch.optim.Adam``.

    Per-parameter state: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with amsgrad,
    ``max_exp_avg_sq`` (v_max). ``decoupled_weight_decay=True`` makes it AdamW.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "amsgrad": amsgrad, "maximize": maximize,
                    "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any], where: str = "") -> None:
        check_nonnegative(group["lr"], "learning rate lr", where)
        check_nonnegative(group["eps"], "epsilon value eps", where)
        check_nonnegative(group["weight_decay"], "weight_decay value weight_decay", where)
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2){where}, got {betas!r}")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(
                    f"Invalid beta parameter betas[{index}]={beta!r}{where}: it must be in [0, 1)"
                )

    def _step_group(self, group: dict[str, Any]) -> None:
        if self._fused_step(group):
            return
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(beta) for beta in group["betas"])
        amsgrad, maximize = bool(group["amsgrad"]), bool(group["maximize"])
        decoupled = bool(group["decoupled_weight_decay"])
        for param in group["params"]:
            if param.grad is None:
                continue
            weights = param.data
            xp = backend.array_module(weights)
            state = self.state.setdefault(param, {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = xp.zeros_like(weights)
                state["exp_avg_sq"] = xp.zeros_like(weights)
            if amsgrad and "max_exp_avg_sq" not in state:  # also when amsgrad is switched on mid-run
                state["max_exp_avg_sq"] = xp.zeros_like(weights)
            state["step"] += 1
            step = state["step"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

            grad = -param.grad if maximize else param.grad  # read only: every change makes a new array
            if weight_decay != 0:
                if decoupled:
                    weights *= 1.0 - lr * weight_decay
                else:
                    grad = grad + weight_decay * weights
            lerp_(exp_avg, grad, 1.0 - beta1)
            squared = grad * (1.0 - beta2)
            squared *= grad
            exp_avg_sq *= beta2
            exp_avg_sq += squared

            bias_correction1 = 1.0 - beta1**step
            bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
            step_size = lr / bias_correction1
            if amsgrad:
                max_exp_avg_sq = state["max_exp_avg_sq"]
                xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
                denom = xp.sqrt(max_exp_avg_sq)
            else:
                denom = xp.sqrt(exp_avg_sq)
            denom /= bias_correction2_sqrt
            denom += eps
            update = exp_avg * -step_size
            update /= denom
            weights += update  # in place: θ ← θ − step_size · m / denom


    # The multi-tensor path: one kernel call over every parameter ----------------------------------------
    def _fused_step(self, group: dict[str, Any]) -> bool:
        """Update the whole group with ``adam_update.foreach``; False if it can't.

        On the CPU one compiled call walks every parameter, its gradient and moments in place (the arrays
        stay the parameters' own: a ``state_dict()`` taken before keeps following them); on the GPU it is
        one launch per parameter. Used when every parameter of the group has a gradient, all share dtype,
        backend and step count, and neither amsgrad nor maximize is on. It computes exactly what the
        per-parameter loop computes, in the same order of operations.
        """
        params = group["params"]
        beta1, beta2 = (float(beta) for beta in group["betas"])
        if group["amsgrad"] or group["maximize"] or beta1 <= 0.5 or not params:
            return False  # (torch's lerp takes its other branch for weights ≥ ½)
        first = params[0].data
        steps = {self.state[p]["step"] if self.state.get(p) else 0 for p in params}
        if len(steps) != 1 or any(p.grad is None or type(p.data) is not type(first) or p.data.dtype != first.dtype
                                  for p in params):
            return False
        step = steps.pop() + 1
        states = []
        for param in params:
            state = self.state.setdefault(param, {})
            if not state:
                xp = array_module(param.data)
                state["exp_avg"], state["exp_avg_sq"] = xp.zeros_like(param.data), xp.zeros_like(param.data)
            state["step"] = step
            states.append(state)
        lr, weight_decay = float(group["lr"]), float(group["weight_decay"])
        decoupled = bool(group["decoupled_weight_decay"])
        scalars = (1.0 - beta1, beta2, 1.0 - beta2, lr / (1.0 - beta1**step), (1.0 - beta2**step) ** 0.5,
                   float(group["eps"]), 0.0 if decoupled else weight_decay,
                   1.0 - lr * weight_decay if decoupled else 1.0)
        adam_update.foreach([p.grad for p in params], *scalars, [p.data for p in params],
                            [state["exp_avg"] for state in states], [state["exp_avg_sq"] for state in states])
        return True


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
    maximize=False)``, as ``torch.optim.AdamW``: Adam with decoupled weight decay θ ← θ·(1 − γλ), applied
    before the moment updates, so the decay never enters m or v.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As ``Optimizer.load_state_dict``; the weight decay stays decoupled whatever the dict says."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def lerp_(start, end, weight: float) -> None:
    """``start ← start + weight·(end − start)`` in place, in the two-branch form of ``torch.lerp``.

    For |weight| < 0.5 it computes start + weight·(end − start); otherwise end − (end − start)·(1 − weight),
    which is exact at weight = 1. (PyTorch may fuse the multiply-add, so the last bit can differ.)
    """
    difference = end - start
    if abs(weight) < 0.5:
        difference *= weight
        start += difference
    else:
        difference *= 1.0 - weight
        backend.array_module(start).subtract(end, difference, out=start)

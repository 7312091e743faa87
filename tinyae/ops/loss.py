"""Losses: mse, binary cross-entropy (on probabilities and on logits), the VAE's Gaussian KL, and the
sparse autoencoder's L1 and KL-sparsity penalties.

Each loss is ONE fused op: the forward evaluates the elementwise loss in a numerically safe form and
reduces it; the backward is the derivative written out by hand. Composing the same formula from
primitive ops would give the same gradient (the tests check that to 1e-10), but the fused op saves fewer
arrays, never evaluates log(0) or exp(large), and keeps PyTorch's conventions at the edges.

Reductions (PyTorch's): ``"none"`` returns the elementwise loss ℓᵢ; ``"sum"`` returns Σᵢ ℓᵢ;
``"mean"`` returns (1/n) Σᵢ ℓᵢ over all n elements. Backward: ∂L/∂ℓᵢ is ∂L/∂y itself (none), the scalar
∂L/∂y for every i (sum), or ∂L/∂y / n (mean); each input's gradient is that times ∂ℓᵢ/∂input.

Inputs and targets must have the same shape (no silent broadcasting: a (N, 1) prediction against a (N,)
target would otherwise broadcast to (N, N)). A target may be a Tensor or a backend array; one of another
dtype is cast to the input's dtype, so a float32 model stays float32 (its gradient is cast back).
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import Function
from ..backend import array_module, device_assert, is_array
from ..kernels import Kernel
from ..tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")

# PyTorch clamps (1 − p)·p from below by EPSILON = 1e-12 declared as a C++ float, i.e. 1e-12 rounded to
# float32 (9.99999996e-13), in the backward of binary_cross_entropy, in float32 and float64 alike.
BCE_EPSILON = float(np.float32(1e-12))
LOG_FLOOR = -100.0  # PyTorch's lower clamp of log p and log(1 − p) in binary_cross_entropy


# Shared pieces -----------------------------------------------------------------------------------------

def _reduce(loss, reduction: str):
    """The elementwise loss reduced as ``reduction`` says ("mean" of nothing is NaN, as in PyTorch)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if loss.size == 0:
        return array_module(loss).full((), math.nan, dtype=loss.dtype)
    return loss.mean()


def _grad_per_element(grad_out, reduction: str, size: int):
    """∂L/∂ℓᵢ: the reduction's backward (a 0-d array for sum and mean, broadcast by the caller)."""
    return grad_out / size if reduction == "mean" else grad_out


def _cast_like(value, dtype):
    """``value`` in ``dtype`` (Python scalars are left alone: NumPy 2 treats them as weak)."""
    return value.astype(dtype) if hasattr(value, "astype") and value.dtype != dtype else value


def _back_to(grad, dtype):
    """A gradient in the dtype of the operand it belongs to (the target may have been cast)."""
    return grad.astype(dtype) if grad.dtype != dtype else grad


def _clamped_logs(p):
    """(max(log p, −100), max(log(1 − p), −100)) for p in [0, 1], never evaluating log 0.

    log(1 − p) is computed as log1p(−p), exact for small p. Where p = 0 (resp. 1) the log is −∞, so the
    clamp gives −100; the argument is sanitized first (to 1, resp. 0) so that no warning is raised.
    """
    xp = array_module(p)
    one, zero, floor = p.dtype.type(1), p.dtype.type(0), p.dtype.type(LOG_FLOOR)
    positive, below_one = p > 0, p < 1
    log_p = xp.where(positive, xp.maximum(xp.log(xp.where(positive, p, one)), floor), floor)
    log_1mp = xp.where(below_one, xp.maximum(xp.log1p(-xp.where(below_one, p, zero)), floor), floor)
    return log_p, log_1mp


def _bce_slope(p, t):
    """∂/∂p of −[t log p + (1 − t) log(1 − p)] = (p − t) / (p(1 − p)), denominator clamped at
    BCE_EPSILON as PyTorch does, so p = 0 or 1 gives a large finite gradient instead of ±∞ or NaN."""
    return (p - t) / array_module(p).maximum((1 - p) * p, p.dtype.type(BCE_EPSILON))


# Losses ------------------------------------------------------------------------------------------------

class MSELoss(Function):
    """ℓᵢ = (xᵢ − tᵢ)².

    Computed directly (no stability issue). ∂ℓᵢ/∂xᵢ = 2(xᵢ − tᵢ), ∂ℓᵢ/∂tᵢ = −2(xᵢ − tᵢ).
    Saves the difference x − t. Shapes: x and t alike; output 0-d, or x's shape for "none".
    """

    def forward(self, input, target, reduction="mean"):
        self.target_dtype, self.reduction, self.size = getattr(target, "dtype", None), reduction, input.size
        self.diff = input - _cast_like(target, input.dtype)
        return _reduce(self.diff * self.diff, reduction)

    def backward(self, grad_out):
        need_input, need_target = self.needs_input_grad
        grad = _grad_per_element(grad_out, self.reduction, self.size) * (2 * self.diff)
        return (grad if need_input else None, _back_to(-grad, self.target_dtype) if need_target else None)


class BinaryCrossEntropy(Function):
    """ℓᵢ = −[tᵢ log pᵢ + (1 − tᵢ) log(1 − pᵢ)] for probabilities p ∈ [0, 1] and targets t ∈ [0, 1].

    As PyTorch: each log is clamped at −100 (so p = 0 or 1 gives a finite loss), log(1 − p) is log1p(−p),
    and ℓ = (t − 1)·max(log1p(−p), −100) − t·max(log p, −100).
    ∂ℓ/∂p = (p − t) / max(p(1 − p), ε) with PyTorch's ε = float32(1e-12).
    ∂ℓ/∂t = max(log(1 − p), −100) − max(log p, −100), the derivative of the clamped loss (PyTorch's
    −logit(p) wherever no clamp is active; finite, ±100, where p is 0 or 1 and PyTorch's is ±∞).
    Saves p and t (for ∂/∂p) and the two clamped logs (for ∂/∂t), each only if needed.
    """

    def forward(self, input, target, reduction="mean"):
        need_input, need_target = self.needs_input_grad
        target_cast = _cast_like(target, input.dtype)
        log_p, log_1mp = _clamped_logs(input)
        self.reduction, self.size, self.target_dtype = reduction, input.size, getattr(target, "dtype", None)
        self.p, self.t = (input, target_cast) if need_input else (None, None)
        self.log_p, self.log_1mp = (log_p, log_1mp) if need_target else (None, None)
        return _reduce((target_cast - 1) * log_1mp - target_cast * log_p, reduction)

    def backward(self, grad_out):
        need_input, need_target = self.needs_input_grad
        grad = _grad_per_element(grad_out, self.reduction, self.size)
        return (
            grad * _bce_slope(self.p, self.t) if need_input else None,
            _back_to(grad * (self.log_1mp - self.log_p), self.target_dtype) if need_target else None,
        )


def _bce_with_logits_twin(x, target):
    """The kernel's arithmetic in array operations, arranged for speed on the CPU (about 2× fewer
    nanoseconds per element than the textbook form: no ``where``, no ``log1p``, which NumPy does not
    vectorize). The textbook form beside it is in the kernels' tests."""
    xp = array_module(x)
    positive = x >= 0
    e = xp.empty_like(x)
    xp.abs(x, out=e)
    xp.negative(e, out=e)
    xp.exp(e, out=e)  # e = e^(−|x|) ∈ (0, 1]
    u = e + 1
    log1p_e = xp.log(u)  # log1p(e) = log(u) − ((u − 1) − e)/u: exact to rounding even when u rounds to 1
    correction = u - 1
    correction -= e
    correction /= u
    log1p_e -= correction
    loss = positive - target  # (1 − t) where x ≥ 0, (0 − t) where x < 0: times x, max(x, 0) − x·t
    loss *= x
    loss += log1p_e
    slope = xp.maximum(e, positive)  # σ(x) = 1/(1 + e) for x ≥ 0 (where e ≤ 1) and e/(1 + e) for x < 0
    slope /= u
    slope -= target
    return loss, slope


bce_with_logits = Kernel(
    "bce_with_logits", "T x, T target", "T loss, T slope",
    """
    T e = exp(-fabs(x));
    loss = (x >= 0 ? (1 - target) * x : -(target * x)) + log1p(e);
    slope = (x >= 0 ? 1 / (1 + e) : e / (1 + e)) - target;
    """,
    _bce_with_logits_twin,
)
"""ℓ = max(x, 0) − x·t + log1p(e^(−|x|)) and its slope ∂ℓ/∂x = σ(x) − t, in one pass."""


class BinaryCrossEntropyWithLogits(Function):
    """ℓᵢ = −[tᵢ log σ(xᵢ) + (1 − tᵢ) log(1 − σ(xᵢ))] for logits x (any real) and targets t.

    Stable form: ℓ = max(x, 0) − x·t + log1p(e^(−|x|)); e^(−|x|) ≤ 1 never overflows, and log1p keeps the
    tail accurate (ℓ ≈ e^(−|x|) when the prediction is confidently right). Finite at |x| = 1e4.
    max(x, 0) − x·t is evaluated as (1 − t)·x where x ≥ 0 and as −t·x where x < 0: the same number, but
    a single product loses no digits, whereas x − x·t with t ≈ 1 cancels down to the rounding of x·t.
    ∂ℓ/∂x = σ(x) − t, with σ from the saved e = e^(−|x|): 1/(1 + e) for x ≥ 0, e/(1 + e) for x < 0.
    ∂ℓ/∂t = −x.
    The loss and the slope σ(x) − t come from one fused kernel (``bce_with_logits``, above).
    Saves the slope (for ∂/∂x) and x (for ∂/∂t), as needed.
    """

    def forward(self, input, target, reduction="mean"):
        loss, slope = bce_with_logits(input, _cast_like(target, input.dtype))
        need_input, need_target = self.needs_input_grad
        self.reduction, self.size, self.target_dtype = reduction, input.size, getattr(target, "dtype", None)
        self.x = input if need_target else None
        self.slope = slope if need_input else None
        return _reduce(loss, reduction)

    def backward(self, grad_out):
        need_input, need_target = self.needs_input_grad
        grad = _grad_per_element(grad_out, self.reduction, self.size)
        grad_input = grad_target = None
        if need_input:
            grad_input = grad * self.slope
        if need_target:
            grad_target = _back_to(-(grad * self.x), self.target_dtype)
        return grad_input, grad_target


def _gaussian_kl_twin(mu, logvar):
    half_expm1 = 0.5 * array_module(logvar).expm1(logvar)
    return 0.5 * (mu * mu - logvar) + half_expm1, half_expm1


gaussian_kl_terms = Kernel(
    "gaussian_kl_terms", "T mu, T logvar", "T kl, T half_expm1",
    """
    half_expm1 = (T)0.5 * expm1(logvar);
    kl = (T)0.5 * (mu * mu - logvar) + half_expm1;
    """,  # (T)0.5: a bare 0.5 is a double, and would make float32 arithmetic run in double
    _gaussian_kl_twin,
)
"""ℓ = ½(μ² − lv) + ½(e^lv − 1) and ∂ℓ/∂lv = ½(e^lv − 1) (∂ℓ/∂μ = μ needs no kernel)."""


class GaussianKL(Function):
    """ℓᵢ = KL(N(μᵢ, σᵢ²) ‖ N(0, 1)) = ½(μᵢ² + σᵢ² − log σᵢ² − 1), with logvar = log σ².

    Stable form: ½(μ² + (expm1(logvar) − logvar)); e^lv − 1 − lv as expm1(lv) − lv keeps the small
    divergence near logvar = 0 accurate (naively it is a difference of numbers near 1).
    ∂ℓ/∂μ = μ,  ∂ℓ/∂logvar = ½(e^logvar − 1) = ½·expm1(logvar).
    Saves μ and ½·expm1(logvar), each only if needed; both terms come from one fused kernel
    (``gaussian_kl_terms``, above). Where e^logvar overflows (logvar > ~88 in float32) the KL is +∞ and
    NumPy warns: that is the true value, and a sign that training has diverged.
    """

    def forward(self, mu, logvar, reduction="sum"):
        kl, half_expm1 = gaussian_kl_terms(mu, _cast_like(logvar, mu.dtype))
        need_mu, need_logvar = self.needs_input_grad
        self.reduction, self.size = reduction, mu.size
        self.mu = mu if need_mu else None
        self.half_expm1 = half_expm1 if need_logvar else None
        return _reduce(kl, reduction)

    def backward(self, grad_out):
        need_mu, need_logvar = self.needs_input_grad
        grad = _grad_per_element(grad_out, self.reduction, self.size)
        return (
            grad * self.mu if need_mu else None,
            grad * self.half_expm1 if need_logvar else None,
        )


class L1Penalty(Function):
    """ℓᵢ = |cᵢ|.   ∂ℓ/∂c = sign(c), with the subgradient sign(0) = 0 at the kink.   Saves sign(c)."""

    def forward(self, code, reduction="sum"):
        self.reduction, self.size = reduction, code.size
        self.sign = array_module(code).sign(code)
        return _reduce(abs(code), reduction)

    def backward(self, grad_out):
        return _grad_per_element(grad_out, self.reduction, self.size) * self.sign


class KLSparsity(Function):
    """y = Σⱼ KL(Bernoulli(ρ) ‖ Bernoulli(ρ̂ⱼ)) = Σⱼ ρ log(ρ/ρ̂ⱼ) + (1 − ρ) log((1 − ρ)/(1 − ρ̂ⱼ)).

    Computed as Σⱼ ρ(log ρ − log ρ̂ⱼ) + (1 − ρ)(log(1 − ρ) − log(1 − ρ̂ⱼ)), with log ρ, log(1 − ρ) in
    Python double precision and the logs of ρ̂ clamped at −100 exactly as binary_cross_entropy does: the
    KL is that cross-entropy minus the entropy of ρ, so a unit whose mean activation saturates at 0 or 1
    gives a large finite penalty instead of ∞ and a warning.
    ∂y/∂ρ̂ⱼ = (1 − ρ)/(1 − ρ̂ⱼ) − ρ/ρ̂ⱼ = (ρ̂ⱼ − ρ) / max(ρ̂ⱼ(1 − ρ̂ⱼ), ε), ε as binary_cross_entropy.
    Saves ρ̂ and ρ. Output 0-d (summed over every element of ρ̂).
    """

    def forward(self, rho_hat, rho=0.05):
        log_rho_hat, log_1m_rho_hat = _clamped_logs(rho_hat)
        self.rho_hat, self.rho = rho_hat, rho
        log_rho, log_1m_rho = math.log(rho), math.log1p(-rho)
        return (rho * (log_rho - log_rho_hat) + (1 - rho) * (log_1m_rho - log_1m_rho_hat)).sum()

    def backward(self, grad_out):
        rho_hat = self.rho_hat
        return grad_out * _bce_slope(rho_hat, rho_hat.dtype.type(self.rho))


# Public functions (torch.nn.functional's names, argument order and defaults) ------------------------------

def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean squared error: reduce((input − target)²). Differentiable in input and target."""
    _check("mse_loss", input, target, reduction)
    return MSELoss.apply(input, target, reduction=reduction)


def binary_cross_entropy(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Cross-entropy of probabilities ``input`` ∈ [0, 1] against targets ∈ [0, 1], logs clamped at −100
    (see BinaryCrossEntropy). Values outside [0, 1] (or NaN) raise ValueError, as PyTorch's check does: at
    once for host data, at the next host read on a device (``backend.device_assert``: no sync)."""
    _check("binary_cross_entropy", input, target, reduction)
    _check_unit_interval("binary_cross_entropy", "input", input)
    _check_unit_interval("binary_cross_entropy", "target", target)
    return BinaryCrossEntropy.apply(input, target, reduction=reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """binary_cross_entropy(sigmoid(input), target) in one overflow-free op; differentiable in both."""
    _check("binary_cross_entropy_with_logits", input, target, reduction)
    return BinaryCrossEntropyWithLogits.apply(input, target, reduction=reduction)


def gaussian_kl(mu: Tensor, logvar: Tensor, reduction: str = "sum") -> Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) = −½ Σ (1 + logvar − mu² − exp(logvar)), elementwise terms reduced.

    "sum" (the default) sums over every element, latent dimensions AND batch; "mean" averages over all
    elements (batch × latent, PyTorch's meaning of mean); "none" returns the elementwise terms.
    The usual per-example VAE loss is ``gaussian_kl(mu, logvar) / batch_size`` (equivalently
    ``gaussian_kl(mu, logvar, "none").sum(axis=1).mean()``), paired with a reconstruction loss summed
    over pixels and averaged over the batch.
    """
    _check("gaussian_kl", mu, logvar, reduction, names=("mu", "logvar"))
    return GaussianKL.apply(mu, logvar, reduction=reduction)


def l1_penalty(code: Tensor, reduction: str = "sum") -> Tensor:
    """Σ|code| (sparsity penalty on a code); subgradient 0 at code = 0. "mean" averages over all elements."""
    _check_reduction("l1_penalty", reduction)
    _check_floating("l1_penalty", "code", code)
    return L1Penalty.apply(code, reduction=reduction)


def kl_sparsity(rho: float, rho_hat: Tensor) -> Tensor:
    """Σⱼ KL(Bernoulli(rho) ‖ Bernoulli(rho_hatⱼ)), summed over every element of ``rho_hat``.

    ``rho`` is the target mean activation, a float in (0, 1); ``rho_hat`` the observed mean activation of
    each unit (e.g. ``sigmoid(h).mean(axis=0)``), values in [0, 1] (checked as binary_cross_entropy's).
    Differentiable in rho_hat only.
    """
    if isinstance(rho, bool) or not isinstance(rho, (int, float, np.integer, np.floating)):
        raise TypeError(f"kl_sparsity: rho must be a Python float in (0, 1), got {type(rho).__name__}")
    if not 0 < rho < 1:  # also rejects NaN
        raise ValueError(f"kl_sparsity: rho must lie strictly between 0 and 1, got {rho!r}")
    _check_floating("kl_sparsity", "rho_hat", rho_hat)
    _check_unit_interval("kl_sparsity", "rho_hat", rho_hat)
    return KLSparsity.apply(rho_hat, rho=float(rho))


# Argument checks ----------------------------------------------------------------------------------------

def _data(value):
    return value.data if isinstance(value, Tensor) else value


def _check_reduction(name: str, reduction) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{name}: reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}, got {reduction!r}"
        )


def _check_floating(name: str, what: str, value) -> None:
    data = _data(value)
    if not is_array(data) or data.dtype.kind != "f":
        kind = data.dtype if is_array(data) else type(data).__name__
        raise TypeError(f"{name}: {what} must be a floating-point Tensor or array, got {kind}")


def _check(name: str, first, second, reduction, names=("input", "target")) -> None:
    """Reduction valid, first operand floating, and both operands of the same shape."""
    _check_reduction(name, reduction)
    _check_floating(name, names[0], first)
    first_shape = tuple(_data(first).shape)
    second_shape = tuple(getattr(_data(second), "shape", ()))
    if first_shape != second_shape:
        raise ValueError(
            f"{name}: {names[0]} has shape {first_shape} but {names[1]} has shape {second_shape}; "
            "they must be equal (losses do not broadcast)"
        )


def _check_unit_interval(name: str, what: str, value) -> None:
    """Every element in [0, 1] (NaN fails too), as PyTorch checks. Host data (NumPy, Python numbers) is
    checked at once; a device array by a device assert, which costs no sync: a failure raises at the next
    host read (the trainer reads the loss every ``sync_every`` steps), as PyTorch's CUDA kernels' assert."""
    data = _data(value)
    inside = (data >= 0) & (data <= 1)
    device_assert(inside.all() if is_array(inside) else inside,
                  ValueError(f"{name}: all elements of {what} must lie in [0, 1]"))

"""Fused elementwise kernels: one pass over memory where NumPy-style code would make several.

Each ``Kernel`` is defined twice, side by side: a CUDA body run by ``cupy.ElementwiseKernel`` (one launch,
every intermediate in registers) and a NumPy *twin* computing the same thing with array operations. The
array type of the first argument picks the implementation:

* ``cupy.ndarray``: the compiled ElementwiseKernel (compiled once, on first use);
* ``numpy.ndarray``: the same CUDA body compiled as a C loop (``ckernels.CompiledLoop``) where that loop
  vectorizes, else the twin (small or strided first arguments, no C compiler, ``exp``/``log`` without a
  SIMD C library);
* the strict backend: ``strict_call``, which checks the call against the kernel's declared signature as
  CuPy would (argument count, dtypes of typed and type-placeholder parameters, scalar vs array, that the
  body assigns every output) and then runs the twin. A call that CuPy would reject fails in CI this way.

Output parameters may also be passed in (after the inputs) to be updated in place, as CuPy allows; the
kernel then reads and writes them (the Adam update does).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from . import backend
from .ckernels import CompiledLoop
from .testing import strict

MIN_COMPILED_SIZE = 1024  # below this, a compiled call's ~7 µs of Python and ctypes costs more than a short twin
_PARAM = re.compile(r"^(raw\s+)?(\w+)\s+(\w+)$")


def _parse(params: str) -> list[tuple[str, str]]:
    """'T grad, float32 out' → [('T', 'grad'), ('float32', 'out')]."""
    parsed = []
    for part in filter(None, (p.strip() for p in params.split(","))):
        match = _PARAM.match(part)
        if match is None or match.group(1):
            raise ValueError(f"kernel parameter {part!r}: expected 'TYPE name' (raw parameters are not used here)")
        parsed.append((match.group(2), match.group(3)))
    return parsed


class Kernel:
    """A fused elementwise computation: ``in_params``/``out_params``/``operation`` for CuPy, ``twin`` for NumPy."""

    def __init__(self, name: str, in_params: str, out_params: str, operation: str, twin: Callable,
                 preamble: str = "", min_compiled_size: int = MIN_COMPILED_SIZE):
        self.name, self.in_params, self.out_params = name, in_params, out_params
        self.min_compiled_size = min_compiled_size  # smaller arrays take the twin on the CPU
        self.operation, self.twin, self.preamble = operation, twin, preamble
        self.inputs, self.outputs = _parse(in_params), _parse(out_params)
        for _, output in self.outputs:
            if not re.search(rf"\b{output}\s*(=|\+=|-=|\*=|/=)(?!=)", operation):
                raise ValueError(f"kernel {name}: the body never assigns its output {output!r}")
        for _, parameter in self.inputs + self.outputs:
            if parameter in ("i", "n") or parameter.startswith("_"):
                raise ValueError(f"kernel {name}: {parameter!r} is reserved by CuPy")
        self._cupy_kernel = None
        self.cpu_loop = CompiledLoop(name, self.inputs, self.outputs, operation, preamble)

    def __call__(self, *args):
        kind = type(args[0])
        if kind is np.ndarray:
            result = self.cpu_loop(*args) if args[0].size >= self.min_compiled_size else NotImplemented
            return self.twin(*args) if result is NotImplemented else result
        if kind is strict.StrictArray:
            return strict_call(self, args)
        if self._cupy_kernel is None:
            import cupy

            self._cupy_kernel = cupy.ElementwiseKernel(self.in_params, self.out_params, self.operation, self.name,
                                                    preamble=self.preamble)
        return self._cupy_kernel(*args)

    def foreach(self, *args) -> None:
        """The kernel over several tensors at once, updating its outputs in place (PyTorch's multi-tensor
        "foreach" ops): one call where a loop over tensors would make one each.

        Each array input is a list of arrays, one per tensor, or one flat array holding all the tensors back
        to back (tensor j is its next ``size_j`` elements); scalars are shared; outputs are flat arrays,
        passed. The first argument is a list and gives the sizes. On the CPU one compiled call walks the
        tensors (``CompiledLoop.foreach``; else the kernel runs per tensor on views of the flat arrays); on
        the GPU (and strict) the lists are gathered into flat buffers for one launch.
        """
        sizes = [array.size for array in args[0]]
        for (_, name), value in zip(self.inputs + self.outputs, args):
            if isinstance(value, list) and [array.size for array in value] != sizes:
                raise ValueError(f"kernel {self.name}.foreach: the list {name!r} holds tensors of sizes "
                                 f"{[array.size for array in value]}, expected {sizes} (as the first argument)")
            if _is_flat_array(value) and value.size != sum(sizes):
                raise ValueError(f"kernel {self.name}.foreach: the flat array {name!r} has {value.size} elements, "
                                 f"expected {sum(sizes)} (the sizes of the first argument's tensors, summed)")
        if type(args[0][0]) is np.ndarray:
            if self.cpu_loop.foreach(*args) is not NotImplemented:
                return
            offset = 0
            for index, size in enumerate(sizes):
                self(*(value[index].reshape(-1) if isinstance(value, list) else
                       value[offset: offset + size] if _is_flat_array(value) else value for value in args))
                offset += size
            return
        xp = backend.array_module(args[0][0])
        self(*(xp.concatenate([array.reshape(-1) for array in value]) if isinstance(value, list) else value
               for value in args))

    def __repr__(self) -> str:
        return f"Kernel({self.name}: ({self.in_params}) -> ({self.out_params}))"


def _is_flat_array(value) -> bool:
    return hasattr(value, "ndim") and value.ndim == 1


def strict_call(kernel: Kernel, args: tuple):
    """Check a call as ``cupy.ElementwiseKernel`` would, then run the twin on the unwrapped arrays."""
    declared = kernel.inputs + kernel.outputs
    if len(args) not in (len(kernel.inputs), len(declared)):
        raise TypeError(f"kernel {kernel.name} takes {len(kernel.inputs)} inputs (or {len(declared)} with its "
                        f"outputs), got {len(args)} arguments")
    placeholders: dict[str, np.dtype] = {}
    for (type_name, name), value in zip(declared, args):
        if isinstance(value, np.ndarray):
            raise TypeError(f"kernel {kernel.name}: argument {name!r} is a numpy.ndarray; CuPy needs device arrays")
        if not isinstance(value, strict.StrictArray):
            if not isinstance(value, (int, float, bool, np.generic)):
                raise TypeError(f"kernel {kernel.name}: argument {name!r} is a {type(value).__name__}")
            continue
        if len(type_name) == 1 and type_name.isupper():  # a type placeholder: all its arrays share one dtype
            if placeholders.setdefault(type_name, value.dtype) != value.dtype:
                raise TypeError(f"kernel {kernel.name}: {name!r} has dtype {value.dtype}, but {type_name} is "
                                f"{placeholders[type_name]} from an earlier argument")
        elif np.dtype(type_name) != value.dtype:
            raise TypeError(f"kernel {kernel.name}: {name!r} is declared {type_name}, got {value.dtype}")
    unwrapped = [value._array if isinstance(value, strict.StrictArray) else value for value in args]
    result = kernel.twin(*unwrapped)
    if isinstance(result, tuple):
        return tuple(strict.StrictArray(np.asarray(r)) for r in result)
    return None if result is None else strict.StrictArray(np.asarray(result))


# Activations: ReLU's forward (np.maximum's NaN handling makes it slow on the CPU), and the backwards, each
# ∂L/∂x from ∂L/∂y and the saved output y (or mask) ---------------------------------------------------------

relu = Kernel(
    "relu", "T x", "T y", "y = x <= 0 ? (T)0 : x",  # NaN <= 0 is false: NaN passes (as np.maximum); −0 → +0
    lambda x: np.maximum(x, x.dtype.type(0)),
)

relu_backward = Kernel(
    "relu_backward", "T grad, T out", "T grad_in", "grad_in = out > 0 ? grad : (T)0",
    lambda grad, out: grad * (out > 0),
)
leaky_relu_backward = Kernel(
    "leaky_relu_backward", "T grad, bool positive, T slope", "T grad_in",
    "grad_in = positive ? grad : grad * slope",
    lambda grad, positive, slope: np.where(positive, grad, grad * slope),
)
sigmoid_backward = Kernel(
    "sigmoid_backward", "T grad, T out", "T grad_in", "grad_in = grad * (out * (1 - out))",
    lambda grad, out: grad * (out * (1 - out)),
)
tanh_backward = Kernel(
    "tanh_backward", "T grad, T out", "T grad_in", "grad_in = grad * (1 - out * out)",
    lambda grad, out: grad * (1 - out * out),
)
softplus_backward = Kernel(
    "softplus_backward", "T grad, T exp_scaled, bool linear", "T grad_in",
    "grad_in = linear ? grad : grad * (exp_scaled / (exp_scaled + 1))",
    lambda grad, exp_scaled, linear: np.where(linear, grad, grad * (exp_scaled / (exp_scaled + 1))),
)


# The VAE's loss terms and sampling ------------------------------------------------------------------------

def _bce_with_logits_twin(x, t):
    """The kernel's arithmetic in NumPy, arranged for speed on the CPU (about 2× fewer nanoseconds per
    element than the textbook form: no ``where``, no ``log1p``, which NumPy does not vectorize)."""
    positive = x >= 0
    e = np.empty_like(x)
    np.abs(x, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = e^(−|x|) ∈ (0, 1]
    u = e + 1
    log1p_e = np.log(u)  # log1p(e) = log(u) − ((u − 1) − e)/u: exact to rounding even when u rounds to 1
    correction = u - 1
    correction -= e
    correction /= u
    log1p_e -= correction
    loss = positive - t  # (1 − t) where x ≥ 0, (0 − t) where x < 0: times x, that is max(x, 0) − x·t
    loss *= x
    loss += log1p_e
    slope = np.maximum(e, positive)  # σ(x) = 1/(1 + e) for x ≥ 0 (where e ≤ 1) and e/(1 + e) for x < 0
    slope /= u
    slope -= t
    return loss, slope


bce_with_logits = Kernel(
    "bce_with_logits", "T x, T t", "T loss, T slope",
    """
    T e = exp(-fabs(x));
    loss = (x >= 0 ? (1 - t) * x : -(t * x)) + log1p(e);
    slope = (x >= 0 ? 1 / (1 + e) : e / (1 + e)) - t;
    """,
    _bce_with_logits_twin,
)
"""ℓ = max(x, 0) − x·t + log1p(e^(−|x|)) and its slope ∂ℓ/∂x = σ(x) − t, in one pass (see ops/loss.py)."""


def _gaussian_kl_twin(mu, logvar):
    half_expm1 = 0.5 * np.expm1(logvar)
    return 0.5 * (mu * mu - logvar) + half_expm1, half_expm1


gaussian_kl = Kernel(
    "gaussian_kl", "T mu, T logvar", "T kl, T half_expm1",
    """
    half_expm1 = 0.5 * expm1(logvar);
    kl = 0.5 * (mu * mu - logvar) + half_expm1;
    """,
    _gaussian_kl_twin,
)
"""ℓ = ½(μ² + e^lv − lv − 1) and ∂ℓ/∂lv = ½(e^lv − 1) (∂ℓ/∂μ = μ needs no kernel)."""


def _reparameterize_twin(mu, logvar, eps):
    half_std_eps = np.exp(0.5 * logvar) * eps
    z = mu + half_std_eps
    half_std_eps *= 0.5
    return z, half_std_eps


reparameterize = Kernel(
    "reparameterize", "T mu, T logvar, T eps", "T z, T half_std_eps",
    """
    T std_eps = exp((T)0.5 * logvar) * eps;
    z = mu + std_eps;
    half_std_eps = 0.5 * std_eps;
    """,
    _reparameterize_twin,
)
"""z = μ + e^(lv/2)·ε and ∂z/∂lv = ½·e^(lv/2)·ε (∂z/∂μ = 1)."""


# The Adam update, in place, for one flat buffer of parameters ----------------------------------------------

CHUNK = 65536  # elements per slice of the Adam twin: its 13 passes then run in cache, not in main memory


def _adam_twin(grad, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps,
               weight_decay, decoupled_decay, param, exp_avg, exp_avg_sq):
    """The update in NumPy, slice by slice over the flattened arrays (elementwise: slicing changes no bit)."""
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
    denom = np.sqrt(exp_avg_sq)
    denom /= bias_correction2_sqrt
    denom += eps
    update = exp_avg * -step_size
    update /= denom
    param += update


adam = Kernel(
    "adam",
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
"""Adam (decoupled_decay = 1 − γλ for AdamW, weight_decay = λ for Adam's L2 term, else 1 and 0):
m ← m + (1 − β₁)(g − m);  v ← β₂v + (1 − β₂)g²;  θ ← θ − step_size·m / (√v/√(1 − β₂ᵗ) + ε)."""

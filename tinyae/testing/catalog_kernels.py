"""The catalogue's entries for the fused kernels' compiled bodies (``tinyae.kernels.all_kernels()``).

The op entries draw tiny shapes, below ``Kernel.min_compiled_size``, so on NumPy they run each kernel's NumPy
twin, never the C loop compiled from its CUDA body. Here each kernel's op is checked on an input of
``min_compiled_size`` elements or more (up to one ``cloop.BLOCK`` further, so that some calls cross a block
boundary; some inputs laid out transposed), element by element, and the check *requires* the compiled loop to
have run: a spy on ``Kernel.cpu_loop`` counts the calls it computed. Where the loop cannot run here (no
compiler, ``TINYAE_CPU_KERNELS=numpy``, an exp or log without a SIMD version), tinyae runs the twin and so
does the check, and the row says why. On the strict backend the twin runs behind CuPy's argument checks; on
CuPy the CUDA body itself.

``adam_update`` computes no gradient: its entry runs three Adam steps through the kernel and through its twin
and requires the same bits (its body is arithmetic and ``sqrt``, which the loop rounds as the twin does).
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..backend import get_backend, to_backend
from ..kernels import Kernel, cloop, compiler
from ..ops import activation, loss, sampling
from ..optim import adam
from .catalog import CATALOGUE, Case, Entry, _constant, _leaf, _reduction, _setting, _values
from .gradcheck import GradcheckError

KERNEL_DRAWS = 2  # draws per kernel entry: each checks a thousand elements or more


class _Spy:
    """Stands in for a kernel's ``cpu_loop``, counting the calls that the compiled loop computed."""

    def __init__(self, loop: cloop.CompiledLoop):
        self.loop, self.computed = loop, 0

    def __call__(self, *args):
        result = self.loop(*args)
        self.computed += result is not NotImplemented
        return result

    def __getattr__(self, name: str):
        return getattr(self.loop, name)


def twin_reason(kernel: Kernel) -> str | None:
    """Why ``kernel`` runs its twin on NumPy arrays here, or None where its compiled loop runs."""
    problem = compiler.toolchain().problem
    if problem is not None:
        return f"no compiled loops here: {problem.splitlines()[0][:80]}"
    if not kernel.cpu_loop.vectorizes:
        return f"its {', '.join(sorted(kernel.cpu_loop.math_calls))} would not vectorize here"
    return None


def requiring_compiled(kernel: Kernel):
    """A ``Case.runner``: the measurement with a spy on ``kernel.cpu_loop``; on the NumPy backend, a
    GradcheckError when the compiled loop could run here but computed none of the calls."""

    def run(measure):
        spy = _Spy(kernel.cpu_loop)
        kernel.cpu_loop = spy
        try:
            measured = measure()
        finally:
            kernel.cpu_loop = spy.loop
        if get_backend() == "numpy" and not spy.computed and twin_reason(kernel) is None:
            raise GradcheckError(f"gradcheck: the compiled C loop of kernel {kernel.name} never ran (every "
                                 "call took the twin), so its CUDA body was not checked")
        return measured

    return run


def _path(kernel: Kernel) -> str:
    """Which body the row checks, in words."""
    backend = get_backend()
    if backend == "cupy":
        return "CUDA body"
    if backend == "strict":
        return "twin (strict backend)"
    reason = twin_reason(kernel)
    return "C loop" if reason is None else f"twin ({reason})"


def _shape(rng: np.random.Generator, kernel: Kernel) -> tuple[int, int]:
    """Two sides whose product is at least ``min_compiled_size`` (and at least one element) and at most one
    ``cloop.BLOCK`` more."""
    size = int(rng.integers(max(kernel.min_compiled_size, 1), kernel.min_compiled_size + cloop.BLOCK))
    columns = int(rng.integers(1, 9))
    return -(-size // columns), columns


def _array(rng: np.random.Generator, shape, low=-2.0, high=2.0, avoid=(), transposed=False) -> np.ndarray:
    """``_values``, laid out in C order or, with ``transposed``, as the transpose of C-ordered memory."""
    if not transposed:
        return _values(rng, shape, low, high, avoid)
    return _values(rng, shape[::-1], low, high, avoid).T


def _register(kernel: Kernel, fn_and_inputs) -> None:
    """An entry "kernel.NAME": ``fn_and_inputs(rng, shape, transposed)`` gives (settings, fn, inputs)."""

    def draw(rng: np.random.Generator) -> Case:
        shape, transposed = _shape(rng, kernel), bool(rng.random() < 0.3)
        settings, fn, inputs = fn_and_inputs(rng, shape, transposed)
        layout = ", transposed" if transposed else ""
        return Case(f"{_path(kernel)}: x {shape}{layout}{settings}", fn, inputs,
                    runner=requiring_compiled(kernel))

    CATALOGUE.append(Entry(f"kernel.{kernel.name}", (kernel,), draw, KERNEL_DRAWS))


def _unary(fn, low=-2.0, high=2.0, avoid=()):
    def fn_and_inputs(rng, shape, transposed):
        return "", fn, [_leaf(_array(rng, shape, low, high, avoid, transposed))]

    return fn_and_inputs


def _leaky_relu(rng, shape, transposed):
    slope = _setting(rng, 0.01, 0.5)
    return f", negative_slope {slope}", lambda x: F.leaky_relu(x, slope), [
        _leaf(_array(rng, shape, avoid=(0.0,), transposed=transposed))]


def _softplus(rng, shape, transposed):
    beta, threshold = _setting(rng, 0.5, 2.0), _setting(rng, 1.0, 3.0)
    x = _array(rng, shape, -3.0, 3.0, (threshold / beta,), transposed)
    return f", beta {beta}, threshold {threshold}", lambda x: F.softplus(x, beta, threshold), [_leaf(x)]


def _bce_with_logits(rng, shape, transposed):
    reduction = _reduction(rng)
    logits, target = _array(rng, shape, -4.0, 4.0, transposed=transposed), _values(rng, shape, 0.05, 0.95)
    return (f", target {shape}, reduction {reduction}",
            lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
            [_leaf(logits), _leaf(target)])


def _gaussian_kl(rng, shape, transposed):
    reduction = _reduction(rng)
    return (f", logvar {shape}, reduction {reduction}",
            lambda mu, logvar: F.gaussian_kl(mu, logvar, reduction=reduction),
            [_leaf(_array(rng, shape, transposed=transposed)), _leaf(_values(rng, shape))])


def _reparameterize(rng, shape, transposed):
    eps = _constant(rng.standard_normal(shape))
    return (", logvar and eps alike", lambda mu, logvar: F.reparameterize(mu, logvar, eps=eps),
            [_leaf(_array(rng, shape, transposed=transposed)), _leaf(_values(rng, shape))])


_register(activation.relu_forward, _unary(F.relu, avoid=(0.0,)))
_register(activation.relu_backward, _unary(F.relu, avoid=(0.0,)))
_register(activation.leaky_relu_backward, _leaky_relu)
_register(activation.sigmoid_backward, _unary(F.sigmoid, -4.0, 4.0))
_register(activation.tanh_backward, _unary(F.tanh, -3.0, 3.0))
_register(activation.softplus_backward, _softplus)
_register(loss.bce_with_logits, _bce_with_logits)
_register(loss.gaussian_kl_terms, _gaussian_kl)
_register(sampling.reparameterize_terms, _reparameterize)


# Adam: the kernel's update against its twin's ------------------------------------------------------------

ADAM_STEPS = 3


def _adam_steps(update, grads, scalars: list[tuple], state: tuple) -> tuple:
    """``ADAM_STEPS`` updates of (param, exp_avg, exp_avg_sq), copies of ``state``, by ``update``."""
    state = tuple(array.copy() for array in state)
    for grad, step_scalars in zip(grads, scalars):
        update(grad, *step_scalars, *state)
    return state


def _draw_adam(rng: np.random.Generator) -> Case:
    kernel = adam.adam_update
    shape = _shape(rng, kernel)
    lr, beta1, beta2 = _setting(rng, 1e-3, 0.1), _setting(rng, 0.5, 0.95), _setting(rng, 0.9, 0.999)
    eps = 1e-8
    weight_decay, decoupled = _setting(rng, 0.0, 0.1), bool(rng.random() < 0.5)
    scalars = []
    for step in range(1, ADAM_STEPS + 1):
        step_size, correction2 = lr / (1 - beta1**step), (1 - beta2**step) ** 0.5
        scalars.append((1 - beta1, beta2, 1 - beta2, step_size, correction2, eps,
                        0.0 if decoupled else weight_decay, 1 - lr * weight_decay if decoupled else 1.0))
    grads = [_values(rng, shape) for _ in range(ADAM_STEPS)]
    state = (_values(rng, shape), np.zeros(shape), np.zeros(shape))

    def measure() -> list:
        """The kernel's (param, exp_avg, exp_avg_sq) after the steps against the twin's, which must be the
        same bits; as (position, shape, computed, expected) rows."""
        backend = get_backend()
        computed = _adam_steps(kernel, [to_backend(grad, backend) for grad in grads], scalars,
                               tuple(to_backend(array, backend) for array in state))
        expected = _adam_steps(kernel.twin, grads, scalars, state)
        rows = []
        for position, (name, array, reference) in enumerate(zip(NAMES, computed, expected)):
            array = to_backend(array, "numpy")
            if not np.array_equal(array, reference):
                difference = float(np.max(np.abs(array - reference)))
                raise GradcheckError(f"gradcheck: kernel {kernel.name} updated {name} differently from its "
                                     f"twin (max difference {difference:.3g}); they must agree bit for bit")
            rows.append((position, shape, array, reference))
        return rows

    settings = (f"{_path(kernel)} against the twin, bit for bit: x {shape}, {ADAM_STEPS} steps, lr {lr}, "
                f"betas ({beta1}, {beta2}), weight_decay {weight_decay}{', decoupled' if decoupled else ''}")
    return Case(settings, None, [], runner=lambda _: requiring_compiled(kernel)(measure))


NAMES = ("param", "exp_avg", "exp_avg_sq")


CATALOGUE.append(Entry("kernel.adam_update", (adam.adam_update,), _draw_adam, KERNEL_DRAWS))


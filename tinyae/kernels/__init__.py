"""Fused elementwise kernels, the mechanism: one pass over memory where NumPy-style code would make several.

A ``Kernel`` is written twice, side by side, in the module of the op it serves (``ops/activation.py``,
``ops/loss.py``, ``ops/sampling.py``, ``optim/adam.py``): a CUDA body run by ``cupy.ElementwiseKernel`` (one
launch, every intermediate in registers) and a NumPy *twin* computing the same formula with array operations,
the same operations in the same order. A twin takes the inputs and returns the outputs; the twin of a kernel
whose body reads its outputs (``in_place``: adam_update, which updates its state) takes them too and updates
them. The first argument's array type picks the path:

* ``cupy.ndarray``: the compiled ElementwiseKernel (compiled once, on first use);
* ``numpy.ndarray`` (or a NumPy scalar, taken as a 0-d array): the same CUDA body compiled as a C loop
  (``Kernel.cpu_loop``, a ``cloop.CompiledLoop``) from ``min_compiled_size`` elements on, where that loop
  takes the arguments; else the twin (a strided, broadcast, negative-stride or misaligned first argument;
  no C compiler; ``exp``/``log`` without a SIMD C library);
* the strict backend: ``strict_call``, which checks the call as CuPy would (argument count, dtypes of typed
  and placeholder parameters, scalar vs array, outputs' shapes) and runs the twin, returning its outputs in
  C order as CuPy allocates them. A call that CuPy would reject fails in CI.

Arguments are taken as CuPy takes them: arrays, broadcast together, and scalars, each cast to its
parameter's dtype (a NumPy float64 scalar leaves a float32 kernel float32). Outputs may be passed in after
the inputs (an in-place kernel's must be): they are updated and returned themselves. Every path returns one
array, or a tuple of them, of the first argument's backend and of the arguments' broadcast shape: 0-d arrays
for 0-d arguments and NumPy scalars, never NumPy scalars.

The contract between the paths (``tests/kernels/test_differential.py`` holds it):

* values. The C loop runs the body's operations in the body's order, each rounded to the dtype, without
  fused multiply-adds (``-ffp-contract=off``), as the twin does. So:

  - a body of arithmetic (and ``sqrt``, ``fabs``, comparisons, selections) gives the twin's results bit for
    bit: NaN where NaN, and the same sign of zero;
  - a body that calls ``exp``, ``expm1``, ``log`` or ``log1p`` gives them bit for bit wherever the two
    libraries return the same value (``expm1(x) = x`` for tiny x, ``exp(x) = 0`` past underflow); elsewhere
    each library is within 4 ulp of the exact function (glibc documents libmvec within 4 ulp; NumPy's own
    accuracy tests allow at most 4), so the two differ by at most 8 ulp of the call, and the results by at
    most ``16·eps·|c| + eps·|result|`` (plus 16 subnormal steps), ``c`` the term of the formula that holds
    the call: log1p(e^−|x|) or σ(x) in BCE, ½·expm1(lv) in the KL, e^(lv/2)·ε in the reparameterization.
    No bound relative to the result alone exists: the other terms may cancel it (the KL near μ = 0,
    lv = 0). (bce_with_logits' faster twin gets log1p(e) as log(1 + e), corrected: a library call by other
    means.)
  - every path is within twice the first-order error bound of the textbook formula computed in the dtype
    (each operation off by half an ulp, each library call by 4 ulp) of that formula's exact value: the
    kernels compute stable rearrangements of it (BCE's (1 − t)·x for max(x, 0) − x·t), whose own bounds
    are at most twice as large.

  CuPy compiles with fused multiply-adds, flushes float32 subnormals to zero and documents its exp, expm1,
  log1p within 2 ulp: it keeps these bounds, plus the flushed subnormals (each under the smallest normal).
* warnings and errors: the same whichever path runs, under every ``np.errstate``. The twin warns (or
  raises, calls, logs) as NumPy does. The C loop returns the floating-point exceptions it raised: all the
  twin's, since it performs every operation whose result the twin uses and a twin computes nothing else
  (it selects before it multiplies: ∂L/∂y·(1 if x > 0 else s), not where(x > 0, ∂L/∂y, s·∂L/∂y)); maybe
  others (C's ``<`` signals on NaN; the compiler may evaluate both arms of a ``?:``). So where it raised
  one that ``np.geterr`` acts on, the call is run again by the twin. A call updating its outputs can't be
  run again: only in-place kernels run the loop in place (their bodies raise exactly the twin's
  exceptions: tested), and report them as NumPy would ("overflow encountered in adam_update",
  ``cloop.report``); the others run it into fresh arrays, copied into the outputs passed in. (CuPy never
  warns.)
* layouts: any, on every path, sizes 0 and 0-d included. The C loop takes a dense first argument (C order,
  or a transpose of dense memory) and copies any input laid out otherwise into its layout; outputs passed
  in must share it. An output may be an input itself: every element's inputs are read before its outputs
  are written, on every path (the twin of an in-place kernel gets such an input copied).
* threads: the C loop gives the same bits on any number of threads (``cloop``; it runs on several only where
  the program shares OpenMP's threads with the BLAS: ``threads``).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable

import numpy as np

from .. import backend
from ..backend import strict
from . import cloop
from .cloop import CompiledLoop

MIN_COMPILED_SIZE = 1024  # below this, a compiled call's ~7 µs of Python and ctypes costs more than a short twin
# the C loop's foreach names its locals _t, _count, _sizes, _offset, _flags: a parameter t (passed as the
# pointer _t) would be shadowed, and the loop counter passed as an address
KERNEL_MODULES = ("tinyae.ops.activation", "tinyae.ops.loss", "tinyae.ops.sampling", "tinyae.optim.adam")
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
        for called in sorted(cloop.calls(preamble + "\n" + operation) - cloop.MATH_FUNCTIONS):
            if len(called) == 1 and called.isupper() or called in ("float", "double", "bool"):
                raise ValueError(f"kernel {name}: {called}(...) is a C++ cast, which the CPU's C loop can't "
                                 f"compile; write ({called})(...)")
            raise ValueError(f"kernel {name}: the body calls {called}(), but a body may call only "
                             f"{', '.join(sorted(cloop.MATH_FUNCTIONS))} (cloop.MATH_FUNCTIONS: those the "
                             f"CPU's C loop can vectorize)")
        arity = len(inspect.signature(twin).parameters)
        if arity not in (len(self.inputs), len(self.inputs) + len(self.outputs)):
            raise ValueError(f"kernel {name}: the twin takes {arity} arguments; expected the "
                             f"{len(self.inputs)} inputs (it returns the outputs) or all "
                             f"{len(self.inputs) + len(self.outputs)} (it updates the outputs in place)")
        self.in_place = arity > len(self.inputs)  # the body reads its outputs: they must be passed in
        self._cupy_kernel = None
        self.cpu_loop = CompiledLoop(name, self.inputs, self.outputs, operation, preamble)

    def __call__(self, *args):
        first = args[0]
        if isinstance(first, np.generic):  # a NumPy scalar (what NumPy makes of 0-d results): a 0-d array
            first = np.asarray(first)
            args = (first, *args[1:])
        if self.in_place and len(args) == len(self.inputs):
            raise TypeError(f"kernel {self.name} updates its outputs in place: pass them "
                            f"({', '.join(name for _, name in self.outputs)}) after its inputs")
        kind = type(first)
        if kind is np.ndarray:
            return self._on_cpu(args)
        if kind is strict.StrictArray:
            return strict_call(self, args)
        if not backend.is_array(first):
            raise TypeError(f"kernel {self.name}: expected a NumPy, CuPy or strict array as the first "
                            f"argument, got {kind.__name__}")
        if self._cupy_kernel is None:
            self._cupy_kernel = self.cupy_kernel(backend.module("cupy"))
        return self._cupy_kernel(*args)

    def cupy_kernel(self, cupy):
        """The ``cupy.ElementwiseKernel`` that runs this kernel on a GPU (tests/kernels/test_cuda_compile.py
        compiles what it generates without one)."""
        return cupy.ElementwiseKernel(self.in_params, self.out_params, self.operation, self.name,
                                      preamble=self.preamble)

    def _on_cpu(self, args: tuple):
        """The compiled loop where it applies and pays, else the twin. Only a kernel that updates its outputs
        runs the loop on them in place; the others run it into fresh arrays, copied into the outputs passed
        in, so that the loop can leave a call that raised a floating-point exception to the twin."""
        given = args[len(self.inputs):]
        runs = args if self.in_place else args[:len(self.inputs)]
        result = self.cpu_loop(*runs) if args[0].size >= self.min_compiled_size else NotImplemented
        if result is NotImplemented:
            result = self.twin(*_twin_arguments(self, runs))
            if not given:
                return _returned(result, runs, np.asarray)
        if given:
            _fill(self, result, given)
            return given[0] if len(given) == 1 else given
        return result  # (the loop ran only on arrays of one shape, into arrays of it)

    def foreach(self, *args) -> None:
        """The kernel over several tensors at once, updating its outputs in place (PyTorch's multi-tensor
        "foreach" ops): one call where a loop over tensors would make one each.

        Each array argument is a list of arrays, one per tensor, or one flat array holding all the tensors back
        to back (tensor j is its next ``size_j`` elements); scalars are shared; outputs are passed. The first
        argument is a list and gives the sizes. On the CPU, an in-place kernel's tensors are walked by one
        compiled call (``CompiledLoop.foreach``, which updates in place); otherwise, or where it refuses the
        arguments, the kernel runs tensor by tensor. On the GPU (and strict) the lists are gathered into flat
        buffers for one launch when every output is flat, else it runs tensor by tensor.
        """
        if not isinstance(args[0], list) or len(args) != len(self.inputs) + len(self.outputs):
            raise TypeError(f"kernel {self.name}.foreach takes a list of arrays first, and all "
                            f"{len(self.inputs) + len(self.outputs)} arguments (the outputs too)")
        on_cpu = bool(args[0]) and type(args[0][0]) is np.ndarray
        if on_cpu and self.in_place and self.cpu_loop.foreach(*args) is not NotImplemented:
            return  # (it checks every shape itself)
        sizes = [array.size for array in args[0]]
        for (_, name), value in zip(self.inputs + self.outputs, args):
            if isinstance(value, list) and [array.size for array in value] != sizes:
                raise ValueError(f"kernel {self.name}.foreach: the list {name!r} holds tensors of sizes "
                                 f"{[array.size for array in value]}, expected {sizes} (as the first argument)")
            if _is_flat_array(value) and value.size != sum(sizes):
                raise ValueError(f"kernel {self.name}.foreach: the flat array {name!r} has {value.size} elements, "
                                 f"expected {sum(sizes)} (the sizes of the first argument's tensors, summed)")
        if not sizes:
            return
        if not on_cpu and not any(isinstance(value, list) for value in args[len(self.inputs):]):
            xp = backend.array_module(args[0][0])
            self(*(xp.concatenate([array.reshape(-1) for array in value]) if isinstance(value, list) else value
                   for value in args))
            return
        offset = 0
        for index, first in enumerate(args[0]):
            size = first.size
            self(*(value[index] if isinstance(value, list) else
                   value[offset: offset + size].reshape(first.shape) if _is_flat_array(value) else value
                   for value in args))
            offset += size

    def __repr__(self) -> str:
        return f"Kernel({self.name}: ({self.in_params}) -> ({self.out_params}))"


def all_kernels() -> dict[str, Kernel]:
    """Every kernel tinyae defines, by name (from the modules that hold them, ``KERNEL_MODULES``)."""
    found = {}
    for module_name in KERNEL_MODULES:
        for value in vars(importlib.import_module(module_name)).values():
            if isinstance(value, Kernel):
                found[value.name] = value
    return found


def in_layout_of(array, like):
    """``array`` (of ``like``'s shape) in ``like``'s memory order, so that a kernel given both walks them in one
    pass: ``array`` itself where the strides agree or either is not a NumPy array, else a copy laid out as
    ``like`` (NumPy's order 'K')."""
    if type(array) is not np.ndarray or type(like) is not np.ndarray or array.strides == like.strides:
        return array
    copy = np.empty_like(like, dtype=array.dtype)
    copy[...] = array
    return copy


def _is_flat_array(value) -> bool:
    return hasattr(value, "ndim") and value.ndim == 1


def _is_placeholder(type_name: str) -> bool:
    return len(type_name) == 1 and type_name.isupper()


def _twin_arguments(kernel: Kernel, args: tuple) -> tuple:
    """``args`` as the twin needs them to compute what the CUDA body computes.

    Each scalar is cast to its parameter's dtype, as CuPy casts scalar arguments: a NumPy float64 scalar
    would make a float32 twin compute in float64, and an output computed from scalars alone would come out
    float64. For a twin that updates its outputs, each input sharing memory with an output is copied: the
    body reads all of an element's inputs before writing it, the twin's array operations would read an
    input after an output aliasing it was written.
    """
    declared = kernel.inputs + kernel.outputs
    if not all(type(value) is np.ndarray for value in args):
        dtypes = {type_name: value.dtype for (type_name, _), value in zip(declared, args)
                  if _is_placeholder(type_name) and type(value) is np.ndarray}
        args = tuple(
            value if type(value) is np.ndarray or type_name not in dtypes and _is_placeholder(type_name)
            else (dtypes[type_name] if _is_placeholder(type_name) else np.dtype(type_name)).type(value)
            for (type_name, _), value in zip(declared, args))
    if kernel.in_place:
        outputs = args[len(kernel.inputs):]
        args = tuple(value.copy() if index < len(kernel.inputs) and isinstance(value, np.ndarray) and any(
            np.may_share_memory(value, output) for output in outputs) else value
            for index, value in enumerate(args))
    return args


def _fill(kernel: Kernel, result, outputs: tuple) -> None:
    """Copy the outputs a call computed (``result``) into those passed in, unless it updated them itself."""
    if not kernel.in_place:
        for output, value in zip(outputs, result if isinstance(result, tuple) else (result,)):
            output[...] = value


def _returned(result, args: tuple, wrap: Callable):
    """The outputs a twin computed from ``args`` as CuPy returns them: one array or a tuple of them (each
    through ``wrap``), of the arguments' broadcast shape (an output computed from scalar or 0-d arguments
    alone, such as gaussian_kl_terms' ½·expm1(logvar) for a scalar logvar, has theirs)."""
    parts = result if isinstance(result, tuple) else (result,)
    shape = np.shape(args[0])
    if any(np.shape(part) != shape for part in parts) or any(
            type(value) is np.ndarray and value.shape != shape for value in args):
        shape = np.broadcast_shapes(*(np.shape(value) for value in args))
        parts = tuple(part if np.shape(part) == shape else np.array(np.broadcast_to(part, shape))
                      for part in parts)
    parts = tuple(wrap(part) for part in parts)
    return parts if isinstance(result, tuple) else parts[0]


def strict_call(kernel: Kernel, args: tuple):
    """Check a call as ``cupy.ElementwiseKernel`` would, then run the twin on the unwrapped arrays."""
    declared = kernel.inputs + kernel.outputs
    if len(args) not in (len(kernel.inputs), len(declared)):
        raise TypeError(f"kernel {kernel.name} takes {len(kernel.inputs)} inputs (or {len(declared)} with its "
                        f"outputs), got {len(args)} arguments")
    placeholders: dict[str, np.dtype] = {}
    for index, ((type_name, name), value) in enumerate(zip(declared, args)):
        if isinstance(value, np.ndarray):
            raise TypeError(f"kernel {kernel.name}: argument {name!r} is a numpy.ndarray; CuPy needs device arrays")
        if not isinstance(value, strict.StrictArray):
            if index >= len(kernel.inputs):
                raise TypeError(f"kernel {kernel.name}: output {name!r} is a {type(value).__name__}; CuPy "
                                f"needs an array to write to")
            if not isinstance(value, (int, float, bool, np.generic)):
                raise TypeError(f"kernel {kernel.name}: argument {name!r} is a {type(value).__name__}")
            continue
        if _is_placeholder(type_name):  # a type placeholder: all its arrays share one dtype
            if placeholders.setdefault(type_name, value.dtype) != value.dtype:
                raise TypeError(f"kernel {kernel.name}: {name!r} has dtype {value.dtype}, but {type_name} is "
                                f"{placeholders[type_name]} from an earlier argument")
        elif np.dtype(type_name) != value.dtype:
            raise TypeError(f"kernel {kernel.name}: {name!r} is declared {type_name}, got {value.dtype}")
    shapes = [value.shape for value in args if isinstance(value, strict.StrictArray)]
    shape = np.broadcast_shapes(*shapes)  # (raises ValueError where CuPy's broadcast does)
    for (_, name), value in zip(kernel.outputs, args[len(kernel.inputs):]):
        if value.shape != shape:
            raise ValueError(f"kernel {kernel.name}: output {name!r} has shape {value.shape}, expected "
                             f"{shape} (the arguments' broadcast shape)")
    unwrapped = _twin_arguments(kernel, tuple(value._array if isinstance(value, strict.StrictArray) else value
                                              for value in args))
    inputs = len(kernel.inputs)
    result = kernel.twin(*(unwrapped if kernel.in_place else unwrapped[:inputs]))
    if len(args) > inputs:
        _fill(kernel, result, unwrapped[inputs:])
        given = args[inputs:]
        return given[0] if len(given) == 1 else given
    # in C order, as ElementwiseKernel allocates its outputs (``_get_out_args_with_params``), whatever the
    # inputs' layout (the twin's NumPy ufuncs would keep it: order 'K')
    return _returned(result, unwrapped, lambda part: strict.StrictArray(np.asarray(part, order="C")))

"""Fused elementwise kernels, the mechanism: one pass over memory where NumPy-style code would make several.

A ``Kernel`` is written twice, side by side, in the module of the op it serves (``ops/activation.py``,
``ops/loss.py``, ``ops/sampling.py``, ``optim/adam.py``): a CUDA body run by ``cupy.ElementwiseKernel`` (one
launch, every intermediate in registers) and a NumPy *twin* computing the same formula with array
operations. The first argument's array type picks the path:

* ``cupy.ndarray``: the compiled ElementwiseKernel (compiled once, on first use);
* ``numpy.ndarray`` (or a NumPy scalar, taken as a 0-d array): the same CUDA body compiled as a C loop
  (``cloop.CompiledLoop``) where that loop applies and pays, else the twin (fewer than
  ``min_compiled_size`` elements, a strided or broadcast first argument, no C compiler, ``exp``/``log``
  without a SIMD C library);
* the strict backend: ``strict_call``, which checks the call as CuPy would (argument count, dtypes of typed
  and placeholder parameters, scalar vs array) and runs the twin. A call that CuPy would reject fails in CI.

Output parameters may also be passed in (after the inputs) to be updated in place, as CuPy allows. Every
path returns the outputs: one array, or a tuple of them, of the first argument's backend; 0-d inputs give
0-d arrays (never NumPy scalars).

The contract between the paths, held by ``tests/kernels``:

* values: the compiled loop and the twin compute the same operations in the same order without fused
  multiply-adds, so where a body is arithmetic (and ``sqrt``, ``fabs``) they agree bit for bit; where it
  calls ``exp``, ``expm1``, ``log`` or ``log1p``, the C library's functions and NumPy's each round
  differently (within a few ulp), so the results agree to a few units of rounding of the terms summed.
  CuPy compiles with fused multiply-adds and flushes float32 subnormals to zero: the same bound holds there.
* warnings and errors: the same whichever path runs. The C loop reads the floating-point exception flags;
  where it raised one that ``np.geterr`` does not ignore, a call with fresh outputs is run again by the
  twin, which warns (or raises) exactly as NumPy does; a call updating outputs in place reports the flags
  itself, as NumPy would ("overflow encountered in adam"). (CuPy never warns.)
* layouts: the C loop takes any dense layout the arrays share; an input in another layout is copied into
  it, outputs partly overlapping inputs go to the twin. Sizes 0 and 0-d arrays are fine on every path.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

import numpy as np

from .. import backend
from ..backend import strict
from . import cloop
from .cloop import CompiledLoop

MIN_COMPILED_SIZE = 1024  # below this, a compiled call's ~7 µs of Python and ctypes costs more than a short twin
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
        self._cupy_kernel = None
        self.cpu_loop = CompiledLoop(name, self.inputs, self.outputs, operation, preamble)

    def __call__(self, *args):
        first = args[0]
        if isinstance(first, np.generic):  # a NumPy scalar (what NumPy makes of 0-d results): a 0-d array
            first = np.asarray(first)
            args = (first, *args[1:])
        kind = type(first)
        if kind is np.ndarray:
            return self._on_cpu(args)
        if kind is strict.StrictArray:
            return strict_call(self, args)
        if not backend.is_array(first):
            raise TypeError(f"kernel {self.name}: expected a NumPy, CuPy or strict array as the first "
                            f"argument, got {kind.__name__}")
        if self._cupy_kernel is None:
            self._cupy_kernel = backend.module("cupy").ElementwiseKernel(
                self.in_params, self.out_params, self.operation, self.name, preamble=self.preamble)
        return self._cupy_kernel(*args)

    def _on_cpu(self, args: tuple):
        if args[0].size >= self.min_compiled_size:
            result = self.cpu_loop(*args)
            if result is not NotImplemented:
                return result
        result = self.twin(*args)
        if len(args) > len(self.inputs):  # outputs given: they hold the result, whatever the twin returns
            given = args[len(self.inputs):]
            return given[0] if len(given) == 1 else tuple(given)
        if isinstance(result, tuple):
            return tuple(np.asarray(part) for part in result)
        return np.asarray(result)

    def foreach(self, *args) -> None:
        """The kernel over several tensors at once, updating its outputs in place (PyTorch's multi-tensor
        "foreach" ops): one call where a loop over tensors would make one each.

        Each array argument is a list of arrays, one per tensor, or one flat array holding all the tensors back
        to back (tensor j is its next ``size_j`` elements); scalars are shared; outputs are passed. The first
        argument is a list and gives the sizes. On the CPU one compiled call walks the tensors
        (``CompiledLoop.foreach``; else the kernel runs tensor by tensor). On the GPU (and strict) the lists
        are gathered into flat buffers for one launch when every output is flat, else it runs tensor by
        tensor.
        """
        sizes = [array.size for array in args[0]]
        for (_, name), value in zip(self.inputs + self.outputs, args):
            if isinstance(value, list) and [array.size for array in value] != sizes:
                raise ValueError(f"kernel {self.name}.foreach: the list {name!r} holds tensors of sizes "
                                 f"{[array.size for array in value]}, expected {sizes} (as the first argument)")
            if _is_flat_array(value) and value.size != sum(sizes):
                raise ValueError(f"kernel {self.name}.foreach: the flat array {name!r} has {value.size} elements, "
                                 f"expected {sum(sizes)} (the sizes of the first argument's tensors, summed)")
        on_cpu = type(args[0][0]) is np.ndarray
        if on_cpu and self.cpu_loop.foreach(*args) is not NotImplemented:
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
    if len(args) > len(kernel.inputs):
        given = args[len(kernel.inputs):]
        return given[0] if len(given) == 1 else tuple(given)
    if isinstance(result, tuple):
        return tuple(strict.StrictArray(np.asarray(r)) for r in result)
    return strict.StrictArray(np.asarray(result))

"""A fused kernel's CUDA body compiled for the CPU, as one C loop called through ctypes.

An ``ElementwiseKernel`` body is C (``T g = grad + weight_decay * param; exp_avg += ...;``), so the same text
compiles for the host. Wrapped in a loop over ``i``, with every parameter a local variable read from its
array (or scalar) before the body and every output written back after it, it runs in one pass over memory,
where the NumPy twin makes one pass per operation. ``<tgmath.h>`` makes ``sqrt`` or ``exp`` pick the
``float`` or ``double`` function, as CUDA's overloads do.

That pays only where the compiler vectorizes the loop. It does for arithmetic, ``sqrt`` and ``fabs``; for
``exp``, ``expm1``, ``log`` and ``log1p`` only where the C library has SIMD versions of them (glibc's libmvec,
with GCC on x86-64: ``vector_math_available``). Elsewhere those would be scalar calls, slower than NumPy's
SIMD ufuncs, and such kernels keep their twin (``CompiledLoop.vectorizes``). A body may call only these
functions (``MATH_FUNCTIONS``): ``Kernel`` refuses one calling another (``max``, ``fminf``, ``__expf``), which
would take the slow path everywhere. Measured on a 2-core EPYC: the
Adam update of 652,824 float32 parameters takes 0.43 ms compiled and 1.8 ms as the twin; BCE-with-logits
over a 128×784 batch 0.22 ms and 0.6 ms.

A call walks its elements block by block (``BLOCK`` elements of a tensor, from its start: one call of the loop
each). Where the program shares OpenMP's threads with NumPy's BLAS (``threads.share_with_blas``: a second
pool beside OpenBLAS's own would slow a step down), the blocks of a call of ``PARALLEL_MIN_SIZE`` elements or
more are shared out among those threads; every element is computed by the same instructions on any number of
threads, so the results are the same bits (``CompiledLoop._walk``). Measured inside the MLP VAE's training
step, on 2 threads of the 2-core EPYC VM: the Adam update took 0.22-0.27 ms (0.41-0.50 on one), BCE with
logits 0.09 ms (0.14-0.20), the whole step 3.49-3.60 ms (3.68-3.87). Below 32,768 elements a memory-bound
loop (ReLU's backward) loses more to waking the other thread than it gains.

Each (kernel, argument kinds) is built with ``$CC`` (default ``cc``) in about 0.1 s, once: the library is
cached on disk for later processes (``compiler``: where, how it is keyed and checked, the time limit). The
flags keep IEEE semantics (no fast-math) and the twin's rounding for arithmetic: no fused multiply-add
(``-ffp-contract=off``). Where no compiler works, a warning says so once and the twins run;
``TINYAE_CPU_KERNELS=numpy`` chooses the twins.
"""

from __future__ import annotations

import ctypes
import functools
import operator
import re
import warnings
from typing import NamedTuple

import numpy as np

from . import compiler, threads


class CType(NamedTuple):
    name: str  # in the C source
    ctype: type  # for ctypes' argument conversion


C_TYPES = {
    np.dtype(np.float32): CType("float", ctypes.c_float),
    np.dtype(np.float64): CType("double", ctypes.c_double),
    np.dtype(np.bool_): CType("bool", ctypes.c_bool),
}
SCALARS = (int, float, np.number, np.bool_)
BLOCK = 2048  # elements of a tensor per call of the loop: threads share out whole blocks
PARALLEL_MIN_SIZE = 32768  # elements (all tensors together) from which a call runs on OpenMP's threads
HEADER = f"""#include <fenv.h>
#include <stdbool.h>
#include <stddef.h>
#include <tgmath.h>
#define TINYAE_FP_FLAGS() ((fetestexcept(FE_INVALID) ? 1 : 0) | (fetestexcept(FE_DIVBYZERO) ? 2 : 0) \\
    | (fetestexcept(FE_OVERFLOW) ? 4 : 0) | (fetestexcept(FE_UNDERFLOW) ? 8 : 0))
#define TINYAE_BLOCK {BLOCK}
#ifdef _OPENMP
#include <omp.h>
#define tinyae_team(parallel, n) ((parallel) && (n) >= {PARALLEL_MIN_SIZE} ? omp_get_max_threads() : 1)
#define tinyae_thread() omp_get_thread_num()
#define tinyae_threads() omp_get_num_threads()
#else
#define tinyae_team(parallel, n) 1
#define tinyae_thread() 0
#define tinyae_threads() 1
#endif
static inline ptrdiff_t tinyae_block_at(ptrdiff_t i) {{  /* the first block start at or after i */
    return (i + TINYAE_BLOCK - 1) / TINYAE_BLOCK * TINYAE_BLOCK;
}}
"""
FP_FLAGS = ((2, "divide", "divide by zero"), (4, "over", "overflow"), (8, "under", "underflow"),
            (1, "invalid", "invalid value"))  # (the bit TINYAE_FP_FLAGS sets, np.geterr's key, NumPy's words)
# The body of a compiled call: the loop over __count tensors of __sizes elements, block by block (TINYAE_BLOCK
# elements of a tensor from its start), shared out among OpenMP's threads from PARALLEL_MIN_SIZE elements on
# where __parallel is set; returns the floating-point exceptions raised (in any thread: each has its own).
WALK = """    ptrdiff_t __total = 0;
    for (ptrdiff_t __t = 0; __t < __count; __t++)
        __total += __sizes[__t];
    const int __team = tinyae_team(__parallel, __total);
    int __flags = 0;
    fenv_t __environment;
    fegetenv(&__environment);
#pragma omp parallel num_threads(__team) if(__team > 1) reduction(|: __flags)
    {{
        fesetenv(&__environment);  /* the caller's rounding and flush-to-zero modes */
        feclearexcept(FE_ALL_EXCEPT);
        /* the blocks that start in this thread's share of all the elements: [__from, __to) */
        const ptrdiff_t __me = tinyae_thread(), __threads = tinyae_threads();
        const ptrdiff_t __from = __total * __me / __threads, __to = __total * (__me + 1) / __threads;
        for (ptrdiff_t __t = 0, __offset = 0; __t < __count && __offset < __to; __offset += __sizes[__t++])
            for (ptrdiff_t __i = __from > __offset ? tinyae_block_at(__from - __offset) : 0;
                 __i < __sizes[__t] && __offset + __i < __to; __i += TINYAE_BLOCK) {{
                const ptrdiff_t __length = __sizes[__t] - __i < TINYAE_BLOCK
                                           ? __sizes[__t] - __i : TINYAE_BLOCK;
                {loop}({arguments});
            }}
        __flags |= TINYAE_FP_FLAGS();
    }}
    return __flags;
"""
VECTOR_MATH = """#if defined __GNUC__ && !defined __clang__ && defined __x86_64__ && defined __GLIBC_PREREQ
#if __GLIBC_PREREQ(2, 35)
#define SIMD __attribute__((__simd__("notinbranch")))  /* libmvec has these: GCC may vectorize calls */
float expf(float) SIMD; float expm1f(float) SIMD; float logf(float) SIMD; float log1pf(float) SIMD;
double (exp)(double) SIMD; double (expm1)(double) SIMD;
double (log)(double) SIMD; double (log1p)(double) SIMD;
#define TINYAE_VECTOR_MATH
#endif
#endif
#ifndef TINYAE_VECTOR_MATH
#error "no SIMD versions of exp and log in this C library"
#endif
"""
ALWAYS_VECTORIZED = {"sqrt", "fabs"}  # single instructions
VECTOR_FUNCTIONS = {"exp", "expm1", "log", "log1p"}  # vectorized where VECTOR_MATH compiles
MATH_FUNCTIONS = ALWAYS_VECTORIZED | VECTOR_FUNCTIONS  # what a kernel's body may call (<tgmath.h>: any dtype)
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_C_KEYWORDS = {"if", "else", "for", "while", "do", "switch", "case", "return", "sizeof"}


class CompiledLoop:
    """A kernel's body as a C loop over dense arrays of one shape and one memory layout (scalars broadcast).

    The loop walks memory in order, so the arrays may be laid out in any axis order, as long as all share
    it: C-contiguous, or a transpose of C-contiguous memory (the (N, C, H, W) views of (C, H, W, N) memory
    that the convolutions return). An input laid out otherwise is first copied into the first argument's
    layout (one pass, fewer than the twin's); outputs are allocated in it.
    ``__call__`` returns the outputs, as CuPy does, or ``NotImplemented`` when the arguments don't suit the
    loop (a strided or broadcast first argument, misaligned or subclassed arrays, outputs in another layout
    or read-only, a dtype other than float32/float64/bool, a wrong number of arguments) or no compiler
    works; the caller then runs the twin.
    ``foreach`` runs the loop over several tensors in one call (see there).
    """

    def __init__(self, name: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]],
                 operation: str, preamble: str = ""):
        self.name, self.inputs, self.outputs = name, inputs, outputs
        self.operation, self.preamble = operation, preamble
        # (the arguments' dtypes (None: a scalar), foreach's argument kinds or None) → (function, the
        # parameters' dtypes), or None: use the twin
        self._prepared: dict[tuple, tuple | None] = {}
        self._output_lists: dict[int, tuple] = {}  # foreach's, by position: (arrays, C array of them, ids)

    def __call__(self, *args):
        inputs = len(self.inputs)
        if len(args) not in (inputs, inputs + len(self.outputs)) or type(args[0]) is not np.ndarray:
            return NotImplemented
        first = args[inputs] if len(args) > inputs else args[0]  # outputs can't be copied: theirs is the order
        if type(first) is not np.ndarray:
            return NotImplemented
        axes = None if first.flags.c_contiguous else _dense_axes(first)  # the loop's memory order (None: C)
        if axes is False:
            return NotImplemented
        arg_dtypes = []
        for index, value in enumerate(args):
            if type(value) is np.ndarray and value.shape == first.shape:
                arg_dtypes.append(value.dtype)
            elif index < inputs and isinstance(value, SCALARS):
                arg_dtypes.append(None)
            else:  # another shape (a broadcast), an ndarray subclass, a scalar as an output, anything else
                return NotImplemented
        outputs = args[inputs:]
        if outputs and _overlaps_partly(outputs, args[:inputs]):
            return NotImplemented
        prepared = self._prepared_for(tuple(arg_dtypes))
        if prepared is None:
            return NotImplemented
        function, dtypes = prepared
        call = [threads.parallel, first.size]  # the C function's arguments: whether it may share out, n
        copies = []  # inputs copied into the loop's layout: alive until the call has read them
        for index, (value, dtype) in enumerate(zip(args, arg_dtypes)):
            if dtype is None:
                call.append(value)
                continue
            writes = index >= inputs
            ordered = _in_order(value, axes)
            if not (writes or ordered.flags.c_contiguous):  # another layout: copy it into ours
                copy = np.empty_like(first, dtype)
                np.copyto(copy, value)
                copies.append(copy)
                ordered = _in_order(copy, axes)
            address = _checked_address(ordered, writes)
            if address is None:
                return NotImplemented
            call.append(address)
        if not outputs:
            outputs = tuple(np.empty_like(first, dtype) for dtype in dtypes[inputs:])
            call += [_address(_in_order(output, axes)) for output in outputs]
        flags = function(*call)
        if flags and _raised(flags):
            if len(args) == inputs:  # fresh outputs: the twin computes them again, with NumPy's own warnings
                return NotImplemented
            report(flags, self.name)  # updated in place: it can't be undone, so warn as NumPy would
        return outputs[0] if len(outputs) == 1 else outputs

    def foreach(self, *args):
        """The loop over several tensors in one C call, updating its outputs in place (multi-tensor apply).

        Each array argument is a list of arrays, one per tensor, or one flat array holding all the tensors
        back to back (tensor j is its next ``size_j`` elements); scalars are shared. The first argument is a
        list and gives the sizes; outputs are passed (lists or flat). Returns None, or ``NotImplemented``
        (nothing was written) where ``__call__`` would refuse some tensor's arguments.
        """
        inputs = len(self.inputs)
        if len(args) != inputs + len(self.outputs) or not isinstance(args[0], list):
            return NotImplemented
        shapes = [array.shape for array in args[0]]
        sizes = [array.size for array in args[0]]
        arg_dtypes, kinds = [], []
        call = [threads.parallel, len(sizes), (ctypes.c_ssize_t * len(sizes))(*sizes)]
        copies: list[np.ndarray] = []  # inputs copied into C order: alive until the call has read them
        owners: list = []  # per array argument, the ids of its arrays if each owns its memory, else None
        for index, value in enumerate(args):
            writes = index >= inputs
            if isinstance(value, list):
                pointers, owned = self._pointers(index, value, shapes, writes, copies)
                dtypes = {array.dtype for array in value}
                if pointers is None or len(dtypes) != 1:
                    return NotImplemented
                owners.append(owned)
                arg_dtypes.append(dtypes.pop())
                kinds.append("list")
                call.append(pointers)
            elif type(value) is np.ndarray:
                address = _checked_address(value, writes) if value.shape == (sum(sizes),) else None
                if address is None:
                    return NotImplemented
                owners.append(frozenset((id(value),)) if value.base is None else None)
                arg_dtypes.append(value.dtype)
                kinds.append("flat")
                call.append(address)
            elif not writes and isinstance(value, SCALARS):
                arg_dtypes.append(None)
                kinds.append("scalar")
                call.append(value)
            else:
                return NotImplemented
        # Distinct arrays that own their memory never overlap; else compare where each one lies.
        disjoint = None not in owners and len(frozenset().union(*owners)) == sum(map(len, owners))
        if not disjoint and _written_over(args, inputs, sizes):
            return NotImplemented
        prepared = self._prepared_for(tuple(arg_dtypes), tuple(kinds))
        if prepared is None:
            return NotImplemented
        flags = prepared[0](*call)
        if flags and _raised(flags):
            report(flags, self.name)
        return None

    def _pointers(self, index: int, arrays: list, shapes: list, writes: bool, copies: list) -> tuple:
        """(the C array of the addresses of a list argument of foreach, the ids of its arrays if each owns
        its memory, else None); (None, None) if the loop can't take it. An input in another layout than C
        order is read from a copy (appended to ``copies``); an output list is remembered: an optimizer
        passes the same parameters and moments every step."""
        known = self._output_lists.get(index) if writes else None
        if known is not None and len(known[0]) == len(arrays) and all(map(operator.is_, known[0], arrays)):
            usable = all(array.flags.writeable and array.shape == shape  # (both may change in place)
                         for array, shape in zip(arrays, shapes))
            return known[1:] if usable else (None, None)
        if len(arrays) != len(shapes) or any(type(array) is not np.ndarray for array in arrays):
            return None, None
        addresses, taken = [], []
        for array, shape in zip(arrays, shapes):
            address = _checked_address(array, writes) if array.shape == shape else None
            if address is None and not writes and array.shape == shape:
                array = np.ascontiguousarray(array)  # (a conv's weight gradient is a transposed view)
                copies.append(array)
                address = _checked_address(array, False)
            if address is None:
                return None, None
            addresses.append(address)
            taken.append(array)
        pointers = (ctypes.c_void_p * len(addresses))(*addresses)
        owned = frozenset(map(id, taken)) if all(array.base is None for array in taken) else None
        if writes:
            self._output_lists[index] = (list(arrays), pointers, owned)
        return pointers, owned

    def _prepared_for(self, arg_dtypes: tuple, foreach_kinds: tuple | None = None) -> tuple | None:
        """(the loaded C function, the parameters' dtypes) for these arguments, built on first use; None if
        the loop can't run them."""
        key = (arg_dtypes, foreach_kinds)
        if key not in self._prepared:
            self._prepared[key] = self._prepare(arg_dtypes, foreach_kinds)
        return self._prepared[key]

    def _prepare(self, arg_dtypes: tuple, foreach_kinds: tuple | None) -> tuple | None:
        """Resolve the parameters' dtypes for arguments of these dtypes (None: scalar) and build the loop;
        None where it can't run them (a dtype mismatch, a dtype C_TYPES lacks, no compiler)."""
        declared = self.inputs + self.outputs
        placeholders: dict[str, np.dtype] = {}
        for (type_name, _), dtype in zip(declared, arg_dtypes):
            if dtype is not None and _is_placeholder(type_name):
                if placeholders.setdefault(type_name, dtype) != dtype:
                    return None
        dtypes = [placeholders.get(t) if _is_placeholder(t) else np.dtype(t) for t, _ in declared]
        if any(dtype not in C_TYPES for dtype in dtypes) or any(
                given is not None and given != dtype for given, dtype in zip(arg_dtypes, dtypes)):
            return None
        if not self.vectorizes:
            return None
        given_outputs = len(arg_dtypes) > len(self.inputs)
        missing_outputs = len(declared) - len(arg_dtypes)  # allocated by __call__: arrays too
        is_array = tuple(dtype is not None for dtype in arg_dtypes) + (True,) * missing_outputs
        source = self.source(tuple(dtypes), is_array, given_outputs)
        if foreach_kinds is not None:
            source += self.foreach_source(tuple(dtypes), foreach_kinds)
        library = _build(self.name, source, ["-lmvec"] if self.math_calls else [])
        if library is None:
            return None
        function = getattr(library, self.symbol if foreach_kinds is None else f"{self.symbol}_foreach")
        leading = [ctypes.c_int, ctypes.c_ssize_t] + ([] if foreach_kinds is None else [ctypes.c_void_p])
        function.argtypes = leading + [ctypes.c_void_p if array else C_TYPES[dtype].ctype
                                       for dtype, array in zip(dtypes, is_array)]
        function.restype = ctypes.c_int  # the floating-point exceptions raised (TINYAE_FP_FLAGS)
        return function, dtypes

    @property
    def symbol(self) -> str:
        """The C function's name: the kernel's, prefixed, so that a kernel named ``exp`` or ``double`` can't
        clash with the C library or a keyword."""
        return f"tinyae_{self.name}"

    @functools.cached_property
    def math_calls(self) -> set[str]:
        """The functions the body calls, other than ``sqrt`` and ``fabs`` (single instructions)."""
        return calls(self.preamble + "\n" + self.operation) - ALWAYS_VECTORIZED

    @functools.cached_property
    def vectorizes(self) -> bool:
        """Whether the compiled loop beats the twin: the body's calls all have SIMD versions here."""
        return not self.math_calls or (self.math_calls <= VECTOR_FUNCTIONS and vector_math_available())

    def source(self, dtypes: tuple, is_array: tuple, given_outputs: bool) -> str:
        """The C text of the loop for these argument dtypes and kinds (array or scalar)."""
        parameters, loads, stores = ["ptrdiff_t _n"], [], []
        for index, ((_, name), dtype, array) in enumerate(zip(self.inputs + self.outputs, dtypes, is_array)):
            c_type = C_TYPES[dtype].name
            output = index >= len(self.inputs)
            if not array:
                parameters.append(f"{c_type} {name}")
                continue
            parameters.append(f"{'' if output else 'const '}{c_type} *_{name}")
            if output:
                loads.append(f"{c_type} {name}" + (f" = _{name}[i];" if given_outputs else ";"))
                stores.append(f"_{name}[i] = {name};")
            else:
                loads.append(f"const {c_type} {name} = _{name}[i];")
        placeholders = {t: C_TYPES[dtype].name for (t, _), dtype in zip(self.inputs + self.outputs, dtypes)
                        if _is_placeholder(t)}
        typedefs = "".join(f"typedef {c_type} {t};\n" for t, c_type in placeholders.items())
        # The preamble and the body on lines of their own, a blank one after each: a trailing // comment
        # ends there, even one ending in a backslash (which joins the next line to it). The loop is a
        # function of its own: with the floating-point flags read and cleared around it in the same function,
        # GCC compiled it ~8% slower (BCE with logits, 100,352 floats: 129 µs against 119).
        kinds = tuple("flat" if array else "scalar" for array in is_array)
        return (f"{HEADER}{VECTOR_MATH if self.math_calls else ''}{typedefs}{self.preamble}\n\n"
                f"static __attribute__((noinline)) void {self.symbol}_loop({', '.join(parameters)}) {{\n"
                f"    for (ptrdiff_t i = 0; i < _n; i++) {{\n        {' '.join(loads)}\n"
                f"        {{\n{self.operation}\n\n        ;}}\n        {' '.join(stores)}\n    }}\n}}\n"
                f"int {self.symbol}(int __parallel, {', '.join(parameters)}) {{\n"
                f"    const ptrdiff_t __count = 1, *__sizes = &_n;\n{self._walk(kinds)}}}\n")

    def foreach_source(self, dtypes: tuple, kinds: tuple) -> str:
        """The C text of ``{name}_foreach``, which runs the loop (``source``) over each tensor: with the j-th
        pointer of a "list" argument, the j-th stretch of a "flat" one, and each scalar."""
        # (its own names start with "__": a parameter's are "name" or "_name", and no name starts with "_")
        parameters = ["int __parallel", "ptrdiff_t __count", "const ptrdiff_t *__sizes"]
        for (_, name), dtype, kind in zip(self.inputs + self.outputs, dtypes, kinds):
            c_type = C_TYPES[dtype].name
            parameters.append({"scalar": f"{c_type} {name}", "list": f"{c_type} *const *_{name}",
                               "flat": f"{c_type} *_{name}"}[kind])
        return f"int {self.symbol}_foreach({', '.join(parameters)}) {{\n{self._walk(kinds)}}}\n"

    def _walk(self, kinds: tuple) -> str:
        """The statements of a compiled call (``WALK``), for arguments of these kinds.

        From ``PARALLEL_MIN_SIZE`` elements on, and where ``__parallel`` is set (``threads.parallel``), the
        blocks are shared out among OpenMP's threads: thread k of K takes those starting in the k-th K-th of
        all the elements. Whatever the number of threads, each block is the same call of the loop on the same
        memory, so each element is computed by the same instructions (the vectorized loop's, or its
        remainder's, whose exp may round otherwise), in the caller's rounding and flush-to-zero modes: the
        results are the same bits."""
        arguments = ["__length"]
        for (_, name), kind in zip(self.inputs + self.outputs, kinds):
            arguments.append({"scalar": name, "list": f"_{name}[__t] + __i",
                              "flat": f"_{name} + __offset + __i"}[kind])
        return WALK.format(loop=f"{self.symbol}_loop", arguments=", ".join(arguments))


def _written_over(args: tuple, inputs: int, sizes: list) -> bool:
    """Whether foreach would write memory that another argument reads or writes, other than an output that
    is the very same elements as an input of the same tensor (the loop reads each element before writing
    it): one sweep over where each argument's memory lies for each tensor, sorted by address."""
    spans = []  # (first byte, end, tensor, written) of each argument's memory for each tensor
    for index, value in enumerate(args):
        if isinstance(value, list):
            spans += [(array.ctypes.data, array.ctypes.data + array.nbytes, tensor, index >= inputs)
                      for tensor, array in enumerate(value)]
        elif type(value) is np.ndarray:
            address = value.ctypes.data
            for tensor, size in enumerate(sizes):  # tensor j: the next size_j elements
                spans.append((address, address + size * value.itemsize, tensor, index >= inputs))
                address += size * value.itemsize
    reaching: list[tuple] = []  # the spans seen so far that reach beyond the current start
    for start, end, tensor, writes in sorted(span for span in spans if span[0] != span[1]):
        reaching = [span for span in reaching if span[1] > start]
        for other in reaching:
            if (writes or other[3]) and not (other[:3] == (start, end, tensor) and writes != other[3]):
                return True
        reaching.append((start, end, tensor, writes))
    return False


def _overlaps_partly(outputs, inputs) -> bool:
    """Whether an output shares memory with an input other than by being the very same elements (the loop
    reads each element before writing it, so ``out is x`` is fine, but a shifted view would read values it
    has already overwritten)."""
    for output in outputs:
        for value in inputs:
            if type(value) is np.ndarray and np.may_share_memory(output, value) and not (
                    output.__array_interface__["data"][0] == value.__array_interface__["data"][0]
                    and output.strides == value.strides and output.shape == value.shape):
                return True
    return False


def _raised(flags: int) -> int:
    """The floating-point exceptions among ``flags`` that NumPy would act on now (``np.geterr``)."""
    settings = np.geterr()
    return sum(bit for bit, kind, _ in FP_FLAGS if flags & bit and settings[kind] != "ignore")


def report(flags: int, name: str) -> None:
    """Act on the floating-point exceptions of a compiled call as NumPy acts on a ufunc's (``np.seterr``):
    warn (RuntimeWarning "overflow encountered in {name}"), raise FloatingPointError, call (with NumPy's
    arguments: the kind, "overflow", and the status, all exceptions raised, in NumPy's bits), print or log."""
    settings = np.geterr()
    numpy_bits = {"divide": 1, "over": 2, "under": 4, "invalid": 8}  # (NPY_FPE_DIVIDEBYZERO, ...)
    status = sum(numpy_bits[kind] for bit, kind, _ in FP_FLAGS if flags & bit)
    for bit, kind, words in FP_FLAGS:
        mode = settings[kind]
        if not flags & bit or mode == "ignore":
            continue
        message = f"{words} encountered in {name}"
        if mode == "warn":
            warnings.warn(message, RuntimeWarning, stacklevel=4)
        elif mode == "raise":
            raise FloatingPointError(message)
        elif mode == "call":
            np.geterrcall()(words, status)
        elif mode == "print":
            print(f"Warning: {message}")
        else:  # "log"
            np.geterrcall().write(f"Warning: {message}\n")


def _checked_address(array: np.ndarray, writes: bool) -> int | None:
    """The address of an array the loop can take (C-contiguous, aligned, writeable if written); None
    otherwise."""
    flags = array.flags
    if not (flags.c_contiguous and flags.aligned) or (writes and not flags.writeable):
        return None
    return _address(array)


def _dense_axes(array: np.ndarray) -> tuple[int, ...] | bool:
    """The axis order, slowest-varying first, that makes ``array`` C-contiguous (it is a transpose of
    contiguous memory: no gaps, no overlaps, no negative strides); False if there is none."""
    axes = tuple(sorted(range(array.ndim), key=lambda axis: -array.strides[axis]))
    return axes if array.transpose(axes).flags.c_contiguous else False


def _in_order(array: np.ndarray, axes: tuple[int, ...] | None) -> np.ndarray:
    """``array`` transposed into the loop's memory order (a view; itself when that order is C's)."""
    return array if axes is None else array.transpose(axes)


def _address(array: np.ndarray) -> int:
    """The address of an array's first byte (``from_buffer`` is 3x faster than ``array.ctypes.data``)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError):  # read-only or empty
        return array.ctypes.data


def _is_placeholder(type_name: str) -> bool:
    return len(type_name) == 1 and type_name.isupper()


def calls(code: str) -> set[str]:
    """The names ``code`` calls (a name followed by "("), comments and C keywords (``if (``) left out; casts
    (``(T)0.5``) are not calls."""
    return set(_CALL.findall(_COMMENT.sub(" ", code))) - _C_KEYWORDS


@functools.cache
def vector_math_available() -> bool:
    """Whether the C compiler and library here vectorize ``exp``/``log`` calls (VECTOR_MATH compiles)."""
    probe = f"{HEADER}{VECTOR_MATH}void probe(void) {{}}\n"
    return isinstance(compiler.library(probe, ["-lmvec"]), ctypes.CDLL)


def _build(name: str, source: str, libraries: list[str]) -> ctypes.CDLL | None:
    """Compile and load one kernel's ``source`` (or load it from the cache); None (the twin runs) if no
    compiler works or it fails."""
    library = compiler.library(source, libraries)
    if isinstance(library, str):  # the compiler works, so the kernel's body is at fault
        compiler.warn(f"tinyae's CPU kernel {name!r} does not compile, so its NumPy twin runs instead; this "
                      f"is a bug in tinyae, please report it:\n{library[:1000]}")
        return None
    return library

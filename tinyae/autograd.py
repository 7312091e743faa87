"""The reverse-mode engine: how ops are recorded and how gradients flow back.

Every differentiable op is a ``Function`` subclass with two methods side by side:

* ``forward(*arrays, **options)`` computes the output from raw backend arrays (and Python scalars), and
  saves on ``self`` what the backward will need;
* ``backward(grad_out)`` receives ∂L/∂output and returns ∂L/∂input for each positional input (``None``
  where an input needs no gradient; ``self.needs_input_grad`` says which do).

``Function.apply`` runs the forward and, when some input requires a gradient and grad mode is on,
records the function as the creator (``_fn``) of the output. The recorded functions form a directed
acyclic graph from the output back to the leaves.

``backward(root)`` applies the chain rule on that graph. For a node y = f(x₁, …, xₖ) consumed by several
later nodes, ∂L/∂y is the *sum* of what each consumer sends back, so every consumer of y must have run its
backward before y's own backward runs: that is exactly a reverse topological order. Each recorded op
gets a sequence number when it runs, and a consumer always runs after what it consumes; so taking the
tensors in decreasing sequence number, from a heap filled as gradients reach them, is such an order, found
while walking the graph once (no recursion: a chain of 100,000 ops is fine).

Memory: after a node's backward has run, its saved arrays and its links to its inputs are dropped, so
intermediate results are freed as soon as backward is past them. A second ``backward`` through the same
graph therefore raises a RuntimeError, unless the first one was called with ``retain_graph=True``.

Checks, as PyTorch's ``validate_outputs``: every backward must return one gradient (or None) per positional
input (extra trailing Nones, for optional inputs left out, are allowed), each of its input's shape and
backend (array type); a floating-point gradient of another precision is cast to its input's dtype (NumPy's
promotion in a mixed-precision op, e.g. float64 data × float32 weights, makes one), any other dtype is an
error. Each violation raises a RuntimeError naming the op and the input's position. NumPy's 0-d results are
scalars: the engine turns them back into 0-d arrays, in its sums and in ``.grad``.

Version counters: a Tensor's ``_version`` counts the in-place writes tinyae made into its memory (optimizer
steps, ``Module.load_state_dict``, ``nn.init``); views of one memory share one count. ``Function.apply``
records its inputs' versions, and the backward raises a RuntimeError, as PyTorch does, when the memory of an
input (or of the output) that the forward saved on ``self`` was written since: the saved array no longer
holds what the forward saw. An input written but not saved (``Add``'s) is fine. The check costs one
comparison per node: a process-wide count of writes tells whether any write happened since the op ran,
and only then are the saved arrays compared with the inputs' memory, so no op has to declare what it saves.
Writing into ``tensor.data`` directly is the unchecked escape hatch, as in PyTorch.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from typing import TYPE_CHECKING

import numpy as np

from . import backend

if TYPE_CHECKING:
    from .tensor import Tensor
else:
    Tensor = None  # set by tinyae.tensor once the class exists (that module imports this one first)

_grad_enabled = True
_sequence = itertools.count()  # numbers the recorded ops in the order they ran

_SCALARS = (int, float, bool, np.generic)


class no_grad(contextlib.ContextDecorator):
    """Disable graph recording, as a context manager (``with no_grad():``) or a decorator."""

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False

    def __exit__(self, *exc_info) -> None:
        global _grad_enabled
        _grad_enabled = self._previous


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad``."""
    return _grad_enabled


class VersionCounter:
    """The number of in-place writes made through tinyae into one memory, shared by the tensors viewing it."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        """Count one in-place write (here and in the process-wide count that lets backward skip its checks)."""
        global _writes
        self.value += 1
        _writes += 1


_writes = 0  # in-place writes counted so far, all tensors together: unchanged since an op ran → nothing to check


class Function:
    """Base class of every differentiable op (and of your own: see docs/backprop.md, "Writing your own op").

    Subclass it, write ``forward(self, *arrays, **options)`` and ``backward(self, grad_out)``, and call
    ``YourOp.apply(*inputs, **options)``. ``forward`` gets the inputs' raw arrays and may save what the
    backward needs as attributes of ``self`` (never writing into its inputs); ``backward`` returns one
    gradient per positional input, None where ``self.needs_input_grad`` is False.
    """

    needs_input_grad: tuple[bool, ...]
    inputs: tuple | None
    versions: list[int]  # the inputs' versions when the op ran (0 for what is not a Tensor)
    output_version: int = 0  # the output's (not 0 only for a view of a written tensor)
    writes: int  # the process-wide write count when the op ran

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options) -> Tensor:
        """Run ``forward`` on the inputs' arrays and record the op when a gradient is needed.

        Positional inputs are Tensors, backend arrays or Python/NumPy scalars; keyword options are
        passed to ``forward`` unchanged. Arrays of two different backends raise a TypeError. An output that
        views an input's memory shares that input's version counter.
        """
        arrays = []
        needs_grad = []
        versions = []
        array_type = None
        for value in inputs:
            if isinstance(value, Tensor):
                array = value.data
                needs_grad.append(value._requires_grad)
                counter = value._version_counter
                versions.append(0 if counter is None else counter.value)
            else:
                array = value
                needs_grad.append(False)
                versions.append(0)
            arrays.append(array)
            if array is not None and not isinstance(array, _SCALARS):  # None: an absent optional input
                if array_type is None:
                    array_type, first = type(array), array
                elif type(array) is not array_type:
                    raise_mixed_backends(cls.__name__, first, array)
        record = _grad_enabled and any(needs_grad)
        function = cls()
        function.needs_input_grad = tuple(needs_grad) if record else (False,) * len(inputs)
        writes = _writes
        out = function.forward(*arrays, **options)
        if isinstance(out, np.generic):  # NumPy returns scalars from 0-d ufuncs and full reductions
            out = np.asarray(out)
        if record:
            result = Tensor._make(out, True, function)
            function.inputs, function.sequence = inputs, next(_sequence)
            function.versions, function.writes = versions, writes
        else:
            result = Tensor._make(out, False, None)
        if out.base is not None:
            _share_version_counter(result, inputs, arrays)
        else:
            for array in arrays:
                if out is array:  # forward returned an input as is
                    _share_version_counter(result, inputs, arrays)
                    break
        return result

    def release(self) -> None:
        """Drop saved arrays and input links once backward is past this node (keep its sequence number)."""
        sequence = self.sequence
        self.__dict__.clear()
        self.inputs, self.sequence = None, sequence

    @property
    def name(self) -> str:
        return type(self).__name__


Function.inputs = None


def _share_version_counter(result: Tensor, inputs: tuple, arrays: list) -> None:
    """Give an output that views the memory of a Tensor input (reshape, transpose, basic indexing,
    broadcast_to, or the input returned as is) that input's version counter."""
    owner = backend.memory_owner(result.data)
    for value, array in zip(inputs, arrays):
        if isinstance(value, Tensor) and backend.memory_owner(array) == owner:
            result._version_counter = value._shared_version_counter()
            if result._fn is not None:
                result._fn.output_version = result._version
            return


def _check_saved_versions(function: Function, output: Tensor) -> None:
    """RuntimeError if the memory of an input, or of the output, that ``function``'s forward saved (as an
    attribute: the array itself or a view of it) was written in place since the op ran.

    Called only when some in-place write happened since then (``function.writes``); which tensors the
    forward saved is found only now, by comparing the function's attributes with their arrays, so that
    neither the ops nor the forward pass pay for it.
    """
    suspects = [(position, value, recorded) for position, (value, recorded)
                in enumerate(zip(function.inputs, function.versions))
                if isinstance(value, Tensor) and value._version != recorded]
    if output._version != function.output_version:
        suspects.append((None, output, function.output_version))
    if not suspects:
        return
    saved = [value for value in function.__dict__.values() if backend.is_array(value)]
    for position, tensor, recorded in suspects:
        if not any(_same_memory(array, tensor.data) for array in saved):
            continue  # written, but the backward does not read it
        which = "its output" if position is None else f"input {position}"
        raise RuntimeError(
            f"{function.name}.backward needs {which} (shape {tensor.shape}) as it was when the op ran, "
            f"but it was modified in place since: it is at version {tensor._version}, the op recorded "
            f"version {recorded}. Hint: an optimizer.step() (or load_state_dict, an nn.init fill, another "
            "in-place change) between the forward and the backward is the usual cause; call backward "
            "before the step, or run the forward again after it."
        )


def _same_memory(saved, data) -> bool:
    """True if array ``saved`` is ``data`` or a view of the same memory (arrays kept inside containers are
    not looked into)."""
    if saved is data:
        return True
    return (type(saved) is type(data) and (saved.base is not None or data.base is not None)
            and backend.memory_owner(saved) == backend.memory_owner(data))


def raise_mixed_backends(operation: str, first, second) -> None:
    """The TypeError for an operation whose operands live on two backends, naming both."""
    names = []
    for array in (first, second):
        try:
            names.append(backend.backend_of(array))
        except TypeError:
            names.append(type(array).__name__)
    raise TypeError(
        f"{operation}: operands live on different backends ({names[0]} and {names[1]}); "
        f"move them to one backend first with Tensor.to(...)"
    )


def backward(root: Tensor, grad_out, retain_graph: bool = False) -> None:
    """Accumulate ∂root/∂leaf · grad_out into ``.grad`` of every leaf that requires a gradient.

    Gradients of intermediate tensors live in a local dict and are summed there (out of place) when a
    tensor feeds several consumers; only leaves and tensors that called ``retain_grad()`` keep theirs.
    ``pending`` is a max-heap of the tensors whose gradient has started to arrive, keyed by the sequence
    number of the op that made them (see the module docstring): when one is popped, every consumer has sent
    its part.
    """
    grads = {id(root): grad_out}
    stored: set[int] = set()  # memory owners of the arrays handed out as .grad in this call
    leaves, pending = ([root], []) if root._fn is None else ([], [(-root._fn.sequence, root)])
    while pending:
        tensor = heapq.heappop(pending)[1]
        function = tensor._fn
        if function.inputs is None:
            raise RuntimeError(
                "backward through a graph a second time: its intermediate results were freed after the "
                "first backward. Call backward(retain_graph=True) the first time, or run the forward again."
            )
        grad = grads.pop(id(tensor))
        if tensor._retains_grad:
            _store_grad(tensor, grad, stored)
        if function.writes != _writes:
            _check_saved_versions(function, tensor)
        input_grads = function.backward(grad)
        if type(input_grads) is not tuple:
            input_grads = (input_grads,)
        if len(input_grads) != len(function.inputs):
            _check_gradient_count(function, input_grads)
        for value, input_grad in zip(function.inputs, input_grads):
            if input_grad is None or not isinstance(value, Tensor) or not value._requires_grad:
                continue
            data = value.data
            if (type(input_grad) is not type(data) or input_grad.shape != data.shape
                    or input_grad.dtype != data.dtype):
                input_grad = _valid_gradient(function, input_grads, value, input_grad)
            previous = grads.get(id(value))
            if previous is not None:
                total = previous + input_grad
                grads[id(value)] = np.asarray(total) if isinstance(total, np.generic) else total
                continue
            grads[id(value)] = input_grad
            if value._fn is None:
                leaves.append(value)
            else:  # (sequence numbers are unique: the heap never compares two tensors)
                heapq.heappush(pending, (-value._fn.sequence, value))
        if not retain_graph:
            function.release()
    for leaf in leaves:
        _store_grad(leaf, grads.pop(id(leaf)), stored)


def _check_gradient_count(function: Function, input_grads: tuple) -> None:
    """RuntimeError unless the gradients beyond the inputs' count are all None (optional inputs left out,
    as PyTorch allows)."""
    count = len(function.inputs)
    if len(input_grads) < count or any(grad is not None for grad in input_grads[count:]):
        raise RuntimeError(
            f"{function.name}.backward returned {len(input_grads)} gradient(s) for {count} input(s); it must "
            "return one per positional input of forward (None for an input that needs none)"
        )


def _valid_gradient(function: Function, input_grads: tuple, value: Tensor, grad):
    """``grad``, returned by ``function.backward`` for input ``value``, made a valid gradient: a NumPy scalar
    becomes a 0-d array, a floating-point dtype other than the input's is cast to it (NumPy's promotion in
    mixed-precision ops makes those). Another array type, shape or dtype is the op's bug: a RuntimeError
    naming the op and the input's position."""
    data, returned = value.data, grad
    if isinstance(grad, np.generic) and type(data) is np.ndarray:
        grad = np.asarray(grad)  # NumPy's 0-d arithmetic returns scalars
        if grad.shape == data.shape and grad.dtype == data.dtype:
            return grad
    position = next(i for i, (input_value, input_grad) in enumerate(zip(function.inputs, input_grads))
                    if input_value is value and input_grad is returned)
    where = f"{function.name}.backward returned a gradient for input {position}"
    if type(grad) is not type(data):
        try:
            kind = f"a {backend.backend_of(grad)} array"
        except TypeError:
            kind = type(grad).__name__
        raise RuntimeError(f"{where} that is {kind}, but the input is a {backend.backend_of(data)} array; "
                           "a gradient lives on its input's backend")
    if grad.shape != data.shape:
        raise RuntimeError(f"{where} of shape {tuple(grad.shape)}, but the input has shape "
                           f"{tuple(data.shape)}; a gradient has its input's shape (sum_to_shape undoes "
                           "broadcasting)")
    if grad.dtype != data.dtype:
        if grad.dtype.kind not in "fc":
            raise RuntimeError(f"{where} of dtype {grad.dtype}, but the input has dtype {data.dtype}; a "
                               "gradient is floating-point")
        grad = grad.astype(data.dtype)
    return grad


def _store_grad(tensor: Tensor, grad, stored: set[int]) -> None:
    """``tensor.grad += grad``, making sure no two ``.grad`` arrays share memory."""
    if tensor.grad is not None:
        total = tensor.grad + grad
        tensor.grad = np.asarray(total) if isinstance(total, np.generic) else total
        return
    owner = backend.memory_owner(grad)
    if owner in stored:
        grad = grad.copy()
        owner = backend.memory_owner(grad)
    stored.add(owner)
    tensor.grad = grad

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

Checks, as PyTorch's: every backward must return one gradient (or None) per positional input (extra
trailing Nones, for optional inputs left out, are allowed), each of its input's shape and backend (array
type); a floating-point gradient of another precision is cast to its
input's dtype (NumPy's promotion in a mixed-precision op, e.g. float64 data × float32 weights, makes one),
any other dtype is an error. NumPy's 0-d results are scalars: the engine turns them back into 0-d arrays.

Version counters: a Tensor's ``_version`` counts the in-place writes tinyae made into its memory (optimizer
steps, ``Module.load_state_dict``, ``nn.init``); views of one memory share one count. ``Function.apply``
records the version of every input (and of the output) whose memory the forward saved on ``self``, and the
backward raises a RuntimeError if it changed since: the saved array no longer holds what the forward saw.
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


class Function:
    """Base class of every differentiable op (and of your own: see docs/backprop.md, "Writing your own op").

    Subclass it, write ``forward(self, *arrays, **options)`` and ``backward(self, grad_out)``, and call
    ``YourOp.apply(*inputs, **options)``. ``forward`` gets the inputs' raw arrays and may save what the
    backward needs as attributes of ``self`` (never writing into its inputs); ``backward`` returns one
    gradient per positional input, None where ``self.needs_input_grad`` is False.
    """

    needs_input_grad: tuple[bool, ...]
    inputs: tuple | None
    saved_versions: tuple = ()  # (input position, or None for the output; its version) per saved tensor

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
        array_type = None
        for value in inputs:
            if isinstance(value, Tensor):
                array = value.data
                needs_grad.append(value.requires_grad)
            else:
                array = value
                needs_grad.append(False)
            arrays.append(array)
            if array is not None and not isinstance(array, _SCALARS):  # None: an absent optional input
                if array_type is None:
                    array_type, first = type(array), array
                elif type(array) is not array_type:
                    raise_mixed_backends(cls.__name__, first, array)
        record = _grad_enabled and any(needs_grad)
        function = cls()
        function.needs_input_grad = tuple(needs_grad) if record else (False,) * len(inputs)
        out = function.forward(*arrays, **options)
        if isinstance(out, np.generic):  # NumPy returns scalars from 0-d ufuncs and full reductions
            out = np.asarray(out)
        result = Tensor._make(out, record, function if record else None)
        if out.base is not None or any(out is array for array in arrays):
            _share_version_counter(result, inputs, arrays)
        if record:
            function.inputs, function.sequence = inputs, next(_sequence)
            _record_saved_versions(function, inputs, arrays, array_type, result)
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
            return


def _record_saved_versions(function: Function, inputs: tuple, arrays: list, array_type,
                           result: Tensor) -> None:
    """Set ``function.saved_versions``: the version of each Tensor input, and of the output, whose memory
    ``forward`` kept among its attributes (the array itself, or a view of it).

    Found generically, so that no op has to declare what it saves: each saved array is compared with the
    inputs' arrays by identity, and a saved view (``base`` set) by memory owner. A few attribute reads per
    saved attribute; arrays kept inside containers (lists, tuples) are not looked into.
    """
    saved = []
    for value in function.__dict__.values():
        if type(value) is not array_type:
            continue
        if value is result.data:
            saved.append((None, result._version))
            continue
        for position, array in enumerate(arrays):
            if value is array:
                break
        else:
            if value.base is None:
                continue  # its own memory, made by forward
            owner = backend.memory_owner(value)
            if owner == backend.memory_owner(result.data):
                saved.append((None, result._version))
                continue
            for position, array in enumerate(arrays):
                if type(array) is array_type and backend.memory_owner(array) == owner:
                    break
            else:
                continue
        if isinstance(inputs[position], Tensor):
            saved.append((position, inputs[position]._version))
    if saved:
        function.saved_versions = tuple(saved)


def _check_saved_versions(function: Function, output: Tensor) -> None:
    """RuntimeError if a tensor whose memory ``function`` saved was written in place after it ran."""
    for position, recorded in function.saved_versions:
        tensor = output if position is None else function.inputs[position]
        current = tensor._version
        if current != recorded:
            which = "its output" if position is None else f"input {position}"
            raise RuntimeError(
                f"{function.name}.backward needs {which} (shape {tensor.shape}) as it was when the op ran, "
                f"but it was modified in place since: it is at version {current}, the op recorded version "
                f"{recorded}. Hint: an optimizer.step() (or load_state_dict, an nn.init fill, another "
                "in-place change) between the forward and the backward is the usual cause; call backward "
                "before the step, or run the forward again after it."
            )


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
        if function.saved_versions:
            _check_saved_versions(function, tensor)
        input_grads = function.backward(grad)
        if type(input_grads) is not tuple:
            input_grads = (input_grads,)
        if len(input_grads) != len(function.inputs):
            _check_gradient_count(function, input_grads)
        for position, (value, input_grad) in enumerate(zip(function.inputs, input_grads)):
            if input_grad is None or not isinstance(value, Tensor) or not value._requires_grad:
                continue
            data = value.data
            if type(input_grad) is not type(data) or input_grad.shape != data.shape:
                input_grad = _valid_gradient(function, position, input_grad, data)
            if input_grad.dtype != data.dtype:
                input_grad = _cast_gradient(function, position, input_grad, data)
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


def _valid_gradient(function: Function, position: int, grad, data):
    """``grad`` as a gradient of input ``position`` (array ``data``): a NumPy scalar becomes a 0-d array;
    another array type or shape is the op's bug, and raises a RuntimeError naming it."""
    if isinstance(grad, np.generic) and type(data) is np.ndarray:
        grad = np.asarray(grad)  # NumPy's 0-d arithmetic returns scalars
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
    return grad


def _cast_gradient(function: Function, position: int, grad, data):
    """A floating-point gradient cast to its input's dtype (mixed-precision ops promote); any other
    dtype is the op's bug, and raises a RuntimeError naming it."""
    if grad.dtype.kind not in "fc":
        raise RuntimeError(f"{function.name}.backward returned a gradient of dtype {grad.dtype} for input "
                           f"{position} of dtype {data.dtype}; a gradient is floating-point")
    return grad.astype(data.dtype)


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

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


class Function:
    """Base class of every differentiable op; see the module docstring."""

    needs_input_grad: tuple[bool, ...]
    inputs: tuple | None

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options) -> Tensor:
        """Run ``forward`` on the inputs' arrays and record the op when a gradient is needed.

        Positional inputs are Tensors, backend arrays or Python/NumPy scalars; keyword options are
        passed to ``forward`` unchanged. Arrays of two different backends raise a TypeError.
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
        if record:
            function.inputs, function.sequence = inputs, next(_sequence)
            return Tensor._make(out, True, function)
        return Tensor._make(out, False, None)

    def release(self) -> None:
        """Drop saved arrays and input links once backward is past this node (keep its sequence number)."""
        sequence = self.sequence
        self.__dict__.clear()
        self.inputs, self.sequence = None, sequence

    @property
    def name(self) -> str:
        return type(self).__name__


Function.inputs = None


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
        input_grads = function.backward(grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for value, input_grad in zip(function.inputs, input_grads):
            if input_grad is None or not isinstance(value, Tensor) or not value._requires_grad:
                continue
            if isinstance(input_grad, np.generic):
                input_grad = np.asarray(input_grad)
            if input_grad.dtype != value.dtype:  # NumPy promotion in a mixed-dtype op (float32 weights,
                input_grad = input_grad.astype(value.dtype)  # float64 input): the gradient keeps x's dtype
            previous = grads.get(id(value))
            if previous is not None:
                grads[id(value)] = previous + input_grad
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


def _store_grad(tensor: Tensor, grad, stored: set[int]) -> None:
    """``tensor.grad += grad``, making sure no two ``.grad`` arrays share memory."""
    if tensor.grad is not None:
        tensor.grad = tensor.grad + grad
        return
    owner = backend.memory_owner(grad)
    if owner in stored:
        grad = grad.copy()
        owner = backend.memory_owner(grad)
    stored.add(owner)
    tensor.grad = grad

"""How a ``cupy.ndarray`` behaves where NumPy would not tell us: the cases that specify the strict backend.

Each case is one Python expression, evaluated with ``c`` bound to an array module (``cupy`` on a GPU, the
strict namespace in CI) and a few arrays made with it: ``a = [0., 1., 2.]``, ``m`` (2x3), ``z = 2.`` (0-d),
``i = 1`` (0-d int), ``j = [1]`` (size-1, 1-d); ``deferring`` stands for an operand that opts out of NumPy's
operators, as ``tinyae.Tensor`` does. ``outcome`` describes what an expression did (returned an
array of this shape, dtype and value; a Python or NumPy scalar; raised this exception) in words that are the
same for both modules. What CuPy 14.2 did is recorded in ``cupy_outcomes.jsonl``, beside this file;
``tests/backend/test_strict.py`` holds strict to it. To record it again, on a machine with CuPy and a GPU::

    python -m tests.backend.cupy_cases > tests/backend/cupy_outcomes.jsonl
"""

from __future__ import annotations

import copy
import json
import operator
import warnings

import numpy as np

CASES = """
# comparisons with what is neither an array nor a scalar
a == [0., 1., 2.]
a != [0., 1., 2.]
a < [0., 1., 2.]
[0., 1., 2.] < a
[0., 1., 2.] == a
a == (0., 1., 2.)
a >= (0., 1., 2.)
a == None
a != None
None == a
a < None
a == 'text'
a == object()
a == np.float32(1)
a == np.arange(3.)
a == np.asarray(1.)
a < np.asarray(1.)
np.asarray(1.) < a
# arithmetic with what is neither an array nor a scalar
a + [1., 2., 3.]
[1., 2., 3.] + a
a * (1., 2., 3.)
(1, 2) * i
a + None
None + a
a - np.ones(3)
np.ones(3) - a
a + np.asarray(1.)
np.float32(1) + a
1 - a
np.float32(2) * z
a @ [1., 2., 3.]
a + deferring
deferring + a
a == deferring
a < deferring
inplace(lambda t: operator.iadd(t, deferring))
inplace(lambda t: operator.iadd(t, [1., 2., 3.]))
inplace(lambda t: operator.iadd(t, np.ones(3)))
inplace(lambda t: operator.iadd(t, z))
inplace(lambda t: operator.ifloordiv(t, 2))
inplace(lambda t: operator.imod(t, 2))
# conversions to Python scalars
operator.index(i)
[10, 20][i]
range(i)
float(z)
int(z)
complex(z)
bool(z)
float(j)
int(j)
complex(j)
bool(j)
float(a)
bool(a)
bool(c.zeros(0))
round(z)
format(z, '.2f')
f'{z}'
z.item()
j.item()
a.item()
z.tolist()
np.asarray(a)
np.float64(z)
hash(a)
# 0-d results
a.sum()
a.max()
a.mean()
a.argmax()
a.all()
c.sum(a)
c.max(a, axis=0)
c.exp(z)
c.exp(1.)
c.exp(np.float32(1))
c.maximum(z, 0.)
c.maximum(1., 2.)
c.where(z > 0, z, 0.)
c.where(z > 0, 1., 0.)
c.isfinite(z)
c.dot(a, a)
m[0] @ a
a[0]
m[1, 2]
a[-1]
z[()]
z[...]
a[i]
next(iter(a))
iter(z)
len(z)
-z
+z
abs(z)
z + z
2 * z
2. ** z
1 < z
sum([z, z])
sum(a)
max(a)
z.astype(np.float32)
z.T is z
a.T is a
m.T is m
shares(copy.copy)
shares(copy.deepcopy)
1. in a
# creation
c.asarray([1., 2.])
c.asarray(np.float64(1.))
c.asarray([z, z])
c.asarray((z, 1.))
c.asarray([np.ones(2), np.ones(2)])
c.asarray([a, np.ones(3)])
c.asarray(a) is a
c.full((2,), z)
c.zeros(i)
c.zeros((i, 2))
c.arange(i)
# indexing
a[5]
a[-4]
m[2]
a[[0, 5]]
a[c.asarray([0, 5])]
a[c.asarray(5)]
a[np.array([0, 1])]
a[np.array([True, False, True])]
setitem(5, 1.)
setitem(c.asarray([5]), 1.)
setitem(slice(None), [1., 2., 3.])
setitem(slice(None), np.ones(3))
setitem(0, np.asarray(5.))
setitem(0, z)
setitem(np.array([0]), 1.)
# methods and NumPy's functions given device arrays
a.reshape(i)
a.sum(axis=i)
m.transpose(i, 0)
a.clip(0., [1., 1., 1.])
a.clip(z, z)
np.exp(a)
np.sum(a)
"""

# The namespace's functions given host data (a list, a Python scalar, NumPy arrays) where an array goes.
_ELEMENTWISE_1 = ("abs absolute exp expm1 isfinite isinf isnan log log1p logical_not negative sign sqrt "
                  "square tanh").split()
_ELEMENTWISE_2 = ("add divide equal greater greater_equal less less_equal logaddexp logical_and logical_or "
                  "maximum minimum multiply power subtract").split()
_ARRAY_FIRST = ("all any argmax argmin cumsum max mean min prod sum ravel squeeze transpose copy "
                "ascontiguousarray empty_like ones_like zeros_like").split()
_TEMPLATES = {
    **{name: "c.{name}(X)" for name in _ELEMENTWISE_1 + _ARRAY_FIRST},
    **{name: "c.{name}(c.ones(2), X)" for name in _ELEMENTWISE_2 + ["dot", "matmul"]},
    "full_like": "c.full_like(X, 1.)", "broadcast_to": "c.broadcast_to(X, (2, 2))",
    "expand_dims": "c.expand_dims(X, 0)", "moveaxis": "c.moveaxis(X, 0, 0)", "reshape": "c.reshape(X, (-1,))",
    "swapaxes": "c.swapaxes(X, 0, 0)", "split": "c.split(X, 1)", "pad": "c.pad(X, 1)",
    "clip": "c.clip(X, 0., 1.)", "clip bounds": "c.clip(c.ones(2), X, 1.)",
    "tensordot": "c.tensordot(X, X, 0)",
    "concatenate": "c.concatenate([X, X])", "stack": "c.stack([X, X])", "where": "c.where(X, X, X)",
    "where values": "c.where(c.ones(2) > 0, X, c.ones(2))",
}
_HOST_DATA = {"list": "[1., 2.]", "scalar": "2.", "numpy": "np.ones(2)", "numpy 0-d": "np.asarray(2.)"}
NAMESPACE_CASES = [template.format(name=name).replace("X", value)
                   for name, template in _TEMPLATES.items() for value in _HOST_DATA.values()]

# cupy.ElementwiseKernel's checks; the strict backend's version of them is tinyae.kernels.strict_call.
KERNEL_CASES = """
K(a, c.empty(4))
K(m, c.empty(3))
K(a, 1.)
K(1.)
K(np.float64(1))
K(np.ones(3))
K([1., 2.])
K(a, c.empty(3, dtype=np.float32))
K(z)
L(a, 1)
L(a, a.astype(np.float32))
L(a, m)
L(a, z)
L(np.float64(1), a)
"""


def expressions(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if not line.startswith("#")]


def environment(c) -> dict:
    """The names a case may use, with its arrays made by the array module ``c``."""
    def arange():
        return c.asarray(np.arange(3.0))

    def inplace(update):
        """update(t) for a fresh t = [0., 1., 2.]; then t (whose name the update cannot rebind)."""
        target = arange()
        update(target)
        return target

    def setitem(key, value):
        return inplace(lambda target: target.__setitem__(key, value))

    def shares(copier) -> bool:
        original = arange()
        copier(original)[0] = 42.0
        return float(original[0]) == 42.0

    return {"c": c, "np": np, "operator": operator, "copy": copy, "inplace": inplace, "setitem": setitem,
            "shares": shares, "deferring": _Deferring(),
            "a": arange(), "m": c.asarray(np.arange(6.0).reshape(2, 3)),
            "z": c.asarray(np.asarray(2.0)), "i": c.asarray(np.asarray(1)), "j": c.asarray(np.array([1]))}


def outcome(expression: str, env: dict) -> list:
    """What evaluating ``expression`` did, as JSON-able data: the same words for CuPy and strict."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = eval(expression, dict(env))  # noqa: S307 - the cases are this module's own expressions
        except Exception as error:  # noqa: BLE001 - the exception's type is the outcome
            return ["raises", type(error).__name__]
    return [*_describe(result, env["c"].ndarray), sorted({w.category.__name__ for w in caught})]


class _Deferring:
    """An operand that opts out of NumPy's operators (as tinyae.Tensor does) and answers reflected ones."""

    __array_ufunc__ = None

    def __radd__(self, other):
        return "deferred"


def _describe(result, ndarray) -> list:
    if isinstance(result, ndarray):
        return ["array", list(result.shape), result.dtype.str, result.tolist() if result.size <= 8 else None]
    if isinstance(result, (list, tuple)):
        return [type(result).__name__, [_describe(part, ndarray) for part in result]]
    if isinstance(result, np.generic):
        return ["numpy scalar", type(result).__name__]
    if isinstance(result, (bool, int, float, complex, str, range)):
        return ["python", type(result).__name__, str(result)]
    return ["other", type(result).__name__]


if __name__ == "__main__":
    import sys

    import cupy

    print(json.dumps({"cupy": cupy.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}))
    env = environment(cupy)
    env["K"] = cupy.ElementwiseKernel("T x", "T y", "y = x", "case_copy")
    env["L"] = cupy.ElementwiseKernel("T x, T y", "T z", "z = x + y", "case_add")
    for expression in expressions(CASES) + NAMESPACE_CASES + expressions(KERNEL_CASES):
        print(json.dumps([expression, outcome(expression, env)]))

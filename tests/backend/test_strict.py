"""The strict backend behaves as CuPy 14.2 did on a GPU, and departs from it only where documented.

``cupy_outcomes.jsonl`` holds what each case of ``cupy_cases.py`` did under CuPy 14.2 (NumPy 2.5.2, an
H200); the first tests hold strict to it. The tests after them take one behaviour each and show where plain
NumPy, which the numpy backend runs, behaves otherwise: there a test passing on numpy proves nothing for
the GPU, and only strict can catch the bug. docs/strict_backend.md is the table of these behaviours.
"""

import copy
import json
import operator
from pathlib import Path

import numpy as np
import pytest

from tests.backend.cupy_cases import CASES, KERNEL_CASES, NAMESPACE_CASES, environment, expressions, outcome
from tinyae.backend import strict
from tinyae.backend.strict import StrictArray
from tinyae.backend.strict import namespace as xp
from tinyae.kernels import Kernel

_RECORD = Path(__file__).with_name("cupy_outcomes.jsonl").read_text().splitlines()
VERSIONS = json.loads(_RECORD[0])
CUPY = dict(json.loads(line) for line in _RECORD[1:])

_WRAPS = "an out-of-range index array: CuPy wraps it around (5 is 2 of 3), strict raises IndexError (NumPy)"
NOT_IMITATED = {
    "bool(c.zeros(0))": "strict raises ValueError (NumPy >= 2.2); CuPy gives False and a DeprecationWarning",
    "a[[0, 5]]": _WRAPS,
    "a[c.asarray([0, 5])]": _WRAPS,
    "a[c.asarray(5)]": _WRAPS,
    "setitem(c.asarray([5]), 1.)": _WRAPS,
    "np.exp(a)": "a NumPy ufunc given a device array: CuPy runs its own (__array_ufunc__), strict raises",
}


def _on_host(expression: str) -> bool:
    """A namespace function that CuPy runs on a NumPy array (on the host, or reading only its shape);
    strict refuses NumPy arrays where CuPy's own inputs go."""
    return expression in NAMESPACE_CASES and "np." in expression and CUPY[expression][0] != "raises"


CASE_LIST = expressions(CASES) + NAMESPACE_CASES
IMITATED = [e for e in CASE_LIST if e not in NOT_IMITATED and not _on_host(e)]
DEPARTURES = [e for e in CASE_LIST if e in NOT_IMITATED or _on_host(e)]


def _same(strict_outcome: list, cupy_outcome: list, expression: str) -> bool:
    """Outcomes agree: same exception type (any refusal, for a namespace function given host data: CuPy
    raises AttributeError or TypeError there as it happens); same shape, dtype, values (to float32's
    rounding: CUDA's expf is not NumPy's) and warnings; or the same Python result."""
    kind = strict_outcome[0]
    if kind != cupy_outcome[0]:
        return False
    if kind == "raises":
        return expression in NAMESPACE_CASES or strict_outcome == cupy_outcome
    if kind == "array":
        _, shape, dtype, values, warned = strict_outcome
        same_values = "empty" in expression or np.allclose(values, cupy_outcome[3], rtol=1e-6)
        return [shape, dtype, warned] == [cupy_outcome[1], cupy_outcome[2], cupy_outcome[4]] and same_values
    return strict_outcome == cupy_outcome


def test_the_record_is_cupy_14_2_and_covers_every_case():
    assert VERSIONS["cupy"] == "14.2.0" and VERSIONS["numpy"].startswith("2.")
    assert set(CUPY) == set(CASE_LIST + expressions(KERNEL_CASES))


@pytest.mark.parametrize("expression", IMITATED)
def test_strict_does_what_cupy_did(expression):
    strict_outcome = json.loads(json.dumps(outcome(expression, environment(xp))))
    assert _same(strict_outcome, CUPY[expression], expression), (strict_outcome, CUPY[expression])


@pytest.mark.parametrize("expression", DEPARTURES)
def test_strict_departs_from_cupy_only_by_refusing(expression):
    """Where strict does not imitate CuPy it refuses what CuPy did, never the reverse: code that passes
    under strict cannot fail on the GPU for these cases. (If this fails, strict now imitates CuPy here:
    move the case out of NOT_IMITATED and docs/strict_backend.md's list of departures.)"""
    assert outcome(expression, environment(xp))[0] == "raises"
    assert CUPY[expression][0] != "raises"


# tinyae's kernels under strict (strict_call), against cupy.ElementwiseKernel ------------------------------

def _kernel_environment() -> dict:
    """The cases' names, with K and L as tinyae kernels of the bodies CuPy's K and L ran."""
    return {**environment(xp), "K": Kernel("case_copy", "T x", "T y", "y = x", lambda x: x.copy()),
            "L": Kernel("case_add", "T x, T y", "T z", "z = x + y", lambda x, y: x + y)}


# A tinyae kernel runs where its first argument lives: these calls never reach strict_call.
ON_THE_HOST = {
    "K(1.)": "a Python number first: no backend to run on; TypeError (CuPy: ValueError, loop size undecided)",
    "K(np.float64(1))": "a NumPy scalar first: the CPU path (CuPy: ValueError, loop size undecided)",
    "K(np.ones(3))": "a NumPy array first: the CPU path (CuPy: TypeError, unsupported type)",
    "L(np.float64(1), a)": "a NumPy scalar first: the CPU path, refusing the device array (CuPy runs it)",
}
KERNEL_IMITATED = [e for e in expressions(KERNEL_CASES) if e not in ON_THE_HOST]


@pytest.mark.parametrize("expression", KERNEL_IMITATED)
def test_strict_call_does_what_cupys_elementwise_kernel_did(expression):
    strict_outcome = json.loads(json.dumps(outcome(expression, _kernel_environment())))
    assert _same(strict_outcome, CUPY[expression], expression), (strict_outcome, CUPY[expression])


@pytest.mark.parametrize("expression", list(ON_THE_HOST))
def test_a_kernel_given_host_data_first_never_runs_on_the_device(expression):
    """Where CuPy refused these, tinyae refuses or computes on the CPU (never a device array); where CuPy
    ran one (L), tinyae refuses it, on CuPy as on strict: code that passes cannot rely on it."""
    result = outcome(expression, _kernel_environment())
    assert result[0] == "raises" or result[:2] == ["other", "ndarray"]
    assert CUPY[expression][0] == "raises" or result[0] == "raises"


# One behaviour each, against plain NumPy ----------------------------------------------------------------

def _pair(value):
    """The same data as a NumPy array and as a strict array."""
    return np.asarray(value), xp.asarray(np.asarray(value))


def test_zero_d_results_are_strict_arrays_on_every_path():
    """NumPy turns 0-d results into NumPy scalars (finding 2: a kernel then took one for a CuPy array);
    strict, as CuPy, keeps 0-d arrays, and each wraps a real numpy.ndarray."""
    host_z, z = _pair(2.0)
    host_a, a = _pair([0.0, 1.0, 2.0])
    paths = {
        "-z": lambda z, a, m: -z, "abs(z)": lambda z, a, m: abs(z), "+z": lambda z, a, m: +z,
        "z + z": lambda z, a, m: z + z, "2 * z": lambda z, a, m: 2 * z, "2. ** z": lambda z, a, m: 2.0 ** z,
        "a.sum()": lambda z, a, m: a.sum(), "a[0]": lambda z, a, m: a[0],
        "iter(a)": lambda z, a, m: next(iter(a)), "m.exp": lambda z, a, m: m.exp(z),
        "sum([z, z])": lambda z, a, m: sum([z, z]), "z.T": lambda z, a, m: z.T,
    }
    for name, path in paths.items():
        host, device = path(host_z, host_a, np), path(z, a, xp)
        assert type(device) is StrictArray and type(device._array) is np.ndarray and device.shape == (), name
        assert type(host) is not np.ndarray or name == "z.T", name
    assert isinstance(-host_z, np.generic)


def test_comparison_with_a_list_or_tuple_raises():
    host, a = _pair([0.0, 1.0, 2.0])
    assert (host == [0.0, 1.0, 2.0]).all()  # NumPy converts the list
    for compare in (operator.eq, operator.ne, operator.lt, operator.ge):
        for other in ([0.0, 1.0, 2.0], (0.0, 1.0, 2.0)):
            with pytest.raises(TypeError, match="unsupported operand .* (list|tuple)"):
                compare(a, other)
            with pytest.raises(TypeError):
                compare(other, a)


def test_comparison_with_none_is_elementwise_and_ordering_with_none_raises():
    """CuPy (and NumPy) answer ``a == None`` elementwise; strict answered a Python False before."""
    host, a = _pair([0.0, 1.0])
    equal, host_equal = a == None, host == None  # noqa: E711 - the comparison itself is the behaviour
    assert type(equal) is StrictArray and equal.tolist() == host_equal.tolist() == [False, False]
    assert (a != None).tolist() == [True, True] and (None == a).tolist() == [False, False]  # noqa: E711
    assert (a == object()).tolist() == [False, False]
    with pytest.raises(TypeError):
        a < None  # noqa: B015
    with pytest.raises(TypeError):
        a == "text"  # noqa: B015


def test_a_zero_d_numpy_array_compares_as_its_value():
    a = xp.asarray(np.arange(3.0))
    assert (a < np.asarray(1.0)).tolist() == [True, False, False]
    assert (np.asarray(1.0) < a).tolist() == [False, False, True]
    with pytest.raises(TypeError, match="cannot mix"):
        a + np.asarray(1.0)  # noqa: B018 - arithmetic takes no NumPy array, not even a 0-d one


def test_arithmetic_with_a_list_tuple_or_none_raises():
    host, a = _pair([0.0, 1.0, 2.0])
    assert (host + [1.0, 1.0, 1.0]).tolist() == [1.0, 2.0, 3.0]  # NumPy converts the list
    for mix in (lambda: a + [1.0, 1.0, 1.0], lambda: [1.0, 1.0, 1.0] + a, lambda: a * (1.0, 2.0, 3.0),
                lambda: a + None, lambda: None + a, lambda: a - "text"):
        with pytest.raises(TypeError):
            mix()


def test_in_place_operators_take_arrays_and_scalars_only_and_update_in_place():
    a = xp.asarray(np.arange(3.0))
    alias = a
    a //= 2
    a %= 1
    assert alias is a and a.tolist() == [0.0, 0.0, 0.0]  # //= and %= rebound a before: the alias kept 0, 1, 2
    for update in (operator.iadd, operator.imul):
        with pytest.raises(TypeError, match="unsupported operand .* list"):
            update(a, [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="cannot mix"):
        a += np.ones(3)


def test_operands_that_opt_out_of_numpy_get_their_turn():
    """``strict_array + tensor`` is left to ``Tensor.__radd__`` (``__array_ufunc__ = None``), as CuPy does."""
    class OptsOut:
        __array_ufunc__ = None

        def __radd__(self, other):
            return "reflected"

    a = xp.asarray(np.arange(3.0))
    assert a + OptsOut() == "reflected"
    with pytest.raises(TypeError):
        a += OptsOut()  # CuPy's in-place operators do not give way


def test_a_zero_d_array_is_no_index():
    host_i, i = _pair(1)
    assert range(host_i) == range(1) and [10, 20][host_i] == 20  # NumPy's 0-d int arrays have __index__
    for use in (lambda: range(i), lambda: [10, 20][i], lambda: operator.index(i), lambda: (1, 2) * i):
        with pytest.raises(TypeError):
            use()
    for use in (lambda: xp.zeros(i), lambda: xp.zeros((i, 2)), lambda: xp.asarray(np.arange(3.0)).reshape(i)):
        with pytest.raises(TypeError, match=r"takes numbers, not a strict .* use int\(...\)"):
            use()
    assert int(i) == 1 and xp.zeros(int(i)).shape == (1,) and xp.asarray(np.arange(3.0))[i].item() == 1.0


def test_float_int_and_complex_take_zero_d_arrays_only():
    """NumPy >= 2.4's rule, which CuPy inherits (it converts a host copy); strict took any size-1 array."""
    for value in (np.array([1.0]), np.ones((1, 1))):
        device = xp.asarray(value)
        for convert in (float, int, complex):
            with pytest.raises(TypeError, match="0-dimensional"):
                convert(device)
        assert bool(device) is True and device.item() == 1.0
    z = xp.asarray(np.asarray(2.5))
    assert (float(z), int(z), complex(z)) == (2.5, 2, 2.5 + 0j)


def test_format_and_str_are_numpys():
    host, z = _pair(2.0)
    assert f"{z:.2f}" == f"{host:.2f}" == "2.00" and str(z) == str(host) == "2.0"


def test_transpose_of_fewer_than_two_dimensions_is_the_array_itself():
    host, a = _pair([0.0, 1.0])
    assert a.T is a and host.T is not host
    m = xp.asarray(np.ones((2, 3)))
    assert m.T is not m and m.T.shape == (3, 2)


def test_copy_copy_copies_the_data():
    """copy.copy of a StrictArray shared its NumPy array (a shallow copy of the wrapper)."""
    a = xp.asarray(np.arange(3.0))
    for copier in (copy.copy, copy.deepcopy):
        duplicate = copier(a)
        duplicate[0] = 42.0
        assert a[0].item() == 0.0


def test_asarray_stacks_device_arrays_but_refuses_a_mix_with_host_data():
    z = xp.asarray(np.asarray(2.0))
    assert xp.asarray([z, z]).tolist() == [2.0, 2.0]  # NumPy calls __array__ on each and fails
    assert xp.asarray([np.ones(2), np.ones(2)]).shape == (2, 2)
    with pytest.raises(TypeError, match="must hold nothing else"):
        xp.asarray((z, 1.0))


def test_namespace_functions_refuse_host_data_where_cupy_takes_device_arrays():
    a = xp.asarray(np.arange(3.0))
    assert np.maximum(np.arange(3.0), [1.0, 1.0, 1.0]).tolist() == [1.0, 1.0, 2.0]  # NumPy converts the list
    refused = (lambda: xp.maximum(a, [1.0, 1.0, 1.0]), lambda: xp.exp([1.0, 2.0]), lambda: xp.sum([1.0]),
               lambda: xp.sum(2.0), lambda: xp.where([True, False, True], a, a),
               lambda: xp.stack([a, [1.0] * 3]), lambda: xp.zeros_like([1.0]),
               lambda: xp.clip(a, [0.0] * 3, 1.0), lambda: a.clip(0.0, [1.0] * 3),
               lambda: xp.sum(np.ones(2)), lambda: xp.exp(np.asarray(1.0)))
    for call in refused:
        with pytest.raises(TypeError, match="must be a strict|cannot mix"):
            call()
    assert xp.exp(1.0).shape == () and xp.maximum(a, 1.0).tolist() == [1.0, 1.0, 2.0]  # scalars are fine
    assert xp.sum(a, axis=None, out=None).item() == 3.0 and np.sum(a).item() == 3.0  # NumPy passes out=None


def test_item_assignment_takes_device_arrays_and_scalars():
    host, a = _pair([0.0, 1.0, 2.0])
    host[:] = [1.0, 2.0, 3.0]  # NumPy converts the list
    for value in ([1.0, 2.0, 3.0], np.ones(3)):
        with pytest.raises(ValueError, match="cannot be assigned"):
            a[:] = value
    a[0], a[1] = xp.asarray(np.asarray(5.0)), np.asarray(6.0)  # a 0-d NumPy array is taken as its value
    assert a.tolist() == [5.0, 6.0, 2.0]


def test_numpy_index_arrays_are_taken_as_cupy_takes_them():
    a = xp.asarray(np.arange(3.0))
    assert a[np.array([0, 2])].tolist() == a[np.array([True, False, True])].tolist() == [0.0, 2.0]
    a[np.array([1])] = 7.0
    assert a.tolist() == [0.0, 7.0, 2.0]


def test_flags_are_cupys_three_read_only_ones():
    """CuPy's Flags has c_contiguous, f_contiguous and owndata, read-only: marking a device array read-only
    (``flags.writeable = False``, as tinyae does with NumPy datasets) fails on a GPU, so it fails here."""
    m = xp.asarray(np.ones((2, 3)))
    assert (m.flags.c_contiguous, m.flags.f_contiguous, m.flags.owndata) == (True, False, True)
    assert (m.T.flags.c_contiguous, m.T.flags.f_contiguous, m.T.flags.owndata) == (False, True, False)
    with pytest.raises(AttributeError):
        m.flags.writeable  # noqa: B018
    with pytest.raises(AttributeError, match="read-only"):
        m.flags.writeable = False


def test_strict_array_wraps_only_numpy_arrays():
    with pytest.raises(TypeError, match="wraps a numpy.ndarray, got float64"):
        StrictArray(np.float64(1.0))
    target = xp.zeros(3)
    strict.scatter_add(target, xp.asarray(np.array([0, 0])), 1.0)
    assert target.tolist() == [2.0, 0.0, 0.0]
    with pytest.raises(TypeError, match="must be a strict"):
        strict.scatter_add(target, np.array([0]), [1.0])


# Host synchronisations -------------------------------------------------------------------------------

SYNCS = {  # each makes CuPy copy device memory to the host and wait for the GPU
    "float(z)": lambda a, z, i: float(z), "int(i)": lambda a, z, i: int(i),
    "complex(z)": lambda a, z, i: complex(z), "bool(z)": lambda a, z, i: bool(z),
    "format(z)": lambda a, z, i: f"{z:.1f}", "str(z)": lambda a, z, i: str(z),
    "repr(a)": lambda a, z, i: repr(a), "a.get()": lambda a, z, i: a.get(),
    "z.item()": lambda a, z, i: z.item(), "a.tolist()": lambda a, z, i: a.tolist(),
    "1. in a": lambda a, z, i: 1.0 in a, "a[a > 0]": lambda a, z, i: a[a > 0],
    "a[host mask]": lambda a, z, i: a[np.array([True, False, True])],
    "a[(a > 0,)] = 1.": lambda a, z, i: a.__setitem__((a > 0,), 1.0),
    "c.arange(i)": lambda a, z, i: xp.arange(i), "np.float64(z)": lambda a, z, i: np.float64(z),
}
NO_SYNCS = {  # what CuPy keeps on the device (or reads from the array's metadata)
    "iter(a)": lambda a, z, i: list(a), "len(a)": lambda a, z, i: len(a), "a.shape": lambda a, z, i: a.shape,
    "a + z": lambda a, z, i: a + z, "a.sum()": lambda a, z, i: a.sum(), "a[i]": lambda a, z, i: a[i],
    "a[c.asarray([0, 2])]": lambda a, z, i: a[xp.asarray(np.array([0, 2]))],
    "a[np.array([0, 2])]": lambda a, z, i: a[np.array([0, 2])],
    "c.asarray(host)": lambda a, z, i: xp.asarray([1.0]),
    "c.full((2,), z)": lambda a, z, i: xp.full((2,), z), "a.clip(z, z)": lambda a, z, i: a.clip(z, z),
    "c.result_type(a)": lambda a, z, i: xp.result_type(a), "a.all()": lambda a, z, i: a.all(),
    "np.asarray(a) (refused)": lambda a, z, i: pytest.raises(TypeError, np.asarray, a),
}


def _arrays():
    return xp.asarray(np.arange(3.0)), xp.asarray(np.asarray(2.0)), xp.asarray(np.asarray(1))


@pytest.mark.parametrize("read", SYNCS.values(), ids=SYNCS)
def test_every_host_read_is_counted_once(read):
    arrays = _arrays()
    with strict.count_syncs() as syncs:
        read(*arrays)
    assert syncs.count == 1, syncs.events
    assert __file__ in syncs.events[0]  # where: the caller outside tinyae's backend, this test


@pytest.mark.parametrize("work", NO_SYNCS.values(), ids=NO_SYNCS)
def test_device_work_is_not_counted(work):
    arrays = _arrays()
    with strict.count_syncs() as syncs:
        work(*arrays)
    assert syncs.events == []


def test_counts_nest_and_stop_at_the_end_of_their_block():
    a, z, _ = _arrays()
    with strict.count_syncs() as outer:
        float(z)
        with strict.count_syncs() as inner:
            a.get()
        z.item()
    float(z)
    assert (outer.count, inner.count) == (3, 1)
    assert [event.split()[0] for event in outer.events] == ["float()", ".get()", ".item()"]

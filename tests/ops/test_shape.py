"""Gradient checks for the shape ops: reshape, transpose, .T, broadcast_to, flatten, indexing (basic,
integer arrays with repeated indices, boolean masks), concatenate, stack and split."""

import functools
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyae
from tinyae import backend
from tinyae.backend import strict
from tinyae.backend.strict import StrictArray
from tests.ops.helpers import check_op
from tests.conftest import BACKEND, to_numpy
from tinyae.testing.strategies import arrays, shapes


check_op_exact = functools.partial(check_op, exact=True)  # shape ops only move numbers
# Indexing by integer arrays (and masks, made integer positions) adds the gradients of repeated indices with
# cupy.add.at, whose atomic adds land in no fixed order: on CuPy two backwards may differ in the last bits
# (as PyTorch's index_put_(accumulate=True) on CUDA). Everywhere else they agree bit for bit.
check_index_op = functools.partial(check_op, exact=True, nondet_tol=1e-12 if BACKEND == "cupy" else 0.0)


def arrays_of_any_shape(min_dims=0):
    return shapes(min_dims=min_dims).flatmap(arrays)


@st.composite
def array_and_new_shape(draw):
    """An array and another shape with as many elements: its sides shuffled, maybe with a 1 inserted."""
    x = draw(arrays_of_any_shape())
    new_shape = list(draw(st.permutations(x.shape)))
    if draw(st.booleans()):
        new_shape.insert(draw(st.integers(0, len(new_shape))), 1)
    return x, tuple(new_shape)


@given(case=array_and_new_shape())
def test_reshape_with_ints_and_with_a_tuple(case):
    x, new_shape = case
    check_op_exact(lambda t: t.reshape(*new_shape), lambda a: a.reshape(new_shape), x)
    check_op_exact(lambda t: t.reshape(new_shape), lambda a: a.reshape(new_shape), x)
    check_op_exact(lambda t: tinyae.reshape(t, new_shape), lambda a: a.reshape(new_shape), x)


@given(case=array_and_new_shape(), data=st.data())
def test_reshape_with_minus_one(case, data):
    x, new_shape = case
    new_shape = list(new_shape) or [1]
    new_shape[data.draw(st.integers(0, len(new_shape) - 1))] = -1
    check_op_exact(lambda t: t.reshape(*new_shape), lambda a: a.reshape(new_shape), x)


@given(x=arrays_of_any_shape())
def test_flatten(x):
    check_op_exact(lambda t: t.flatten(), lambda a: a.flatten(), x)


@given(x=arrays_of_any_shape())
def test_transpose_reverses_axes_by_default(x):
    check_op_exact(lambda t: t.transpose(), lambda a: a.transpose(), x)
    check_op_exact(lambda t: t.T, lambda a: a.T, x)
    check_op_exact(tinyae.transpose, np.transpose, x)


@given(x=arrays_of_any_shape(), data=st.data())
def test_transpose_with_axes(x, data):
    axes = data.draw(st.permutations(range(x.ndim)))
    negative_axes = [axis - x.ndim for axis in axes]
    check_op_exact(lambda t: t.transpose(*axes), lambda a: a.transpose(axes), x)
    check_op_exact(lambda t: t.transpose(tuple(axes)), lambda a: a.transpose(axes), x)
    check_op_exact(lambda t: t.transpose(negative_axes), lambda a: a.transpose(axes), x)
    check_op_exact(lambda t: tinyae.transpose(t, negative_axes), lambda a: a.transpose(axes), x)


@given(x=arrays_of_any_shape(), data=st.data())
def test_broadcast_to(x, data):
    other = data.draw(hnp.broadcastable_shapes(x.shape, max_dims=3, max_side=4))
    target = np.broadcast_shapes(x.shape, other)
    check_op_exact(lambda t: t.broadcast_to(target), lambda a: np.broadcast_to(a, target), x)
    check_op_exact(lambda t: tinyae.broadcast_to(t, target), lambda a: np.broadcast_to(a, target), x)


@given(x=arrays_of_any_shape(min_dims=1), data=st.data())
def test_basic_indexing(x, data):
    index = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
    check_op_exact(lambda t: t[index], lambda a: a[index], x)


BASIC_INDICES = {
    "int": 1,
    "negative-int": -1,
    "slice-and-negative-int": (slice(None), -2),
    "steps": (slice(None, None, 2), slice(1, None, 2)),
    "negative-steps": (slice(None, None, -2), slice(-1, 0, -1)),
    "ellipsis": (Ellipsis, -1),
    "none-and-ellipsis": (None, 0, Ellipsis, None),
    "mixed": (slice(1, None), None, Ellipsis, slice(None, None, -1)),
}


@pytest.mark.parametrize("index", BASIC_INDICES.values(), ids=BASIC_INDICES)
@given(x=arrays((3, 4, 2)))
def test_each_kind_of_basic_index(index, x):
    check_op_exact(lambda t: t[index], lambda a: a[index], x)


def positions_along(length):
    """Lists of indices, possibly negative and repeated, along an axis of ``length``."""
    return st.lists(st.integers(-length, length - 1), min_size=1, max_size=6)


@pytest.mark.parametrize("container", [list, np.array], ids=["list", "numpy"])
@given(x=arrays_of_any_shape(min_dims=1), data=st.data())
def test_integer_array_index_with_repeats(container, x, data):
    positions = data.draw(positions_along(len(x)))
    positions.append(positions[0])  # at least one element is picked twice
    index = container(positions)
    check_index_op(lambda t: t[index], lambda a: a[index], x)

    grad_out = data.draw(arrays((len(positions),) + x.shape[1:]))
    tensor = tinyae.tensor(x, requires_grad=True)
    tensor[index].backward(tinyae.tensor(grad_out))
    expected = np.zeros_like(x)
    for copy, position in enumerate(positions):  # every copy sends its gradient back to its source
        expected[position] += grad_out[copy]
    np.testing.assert_allclose(to_numpy(tensor.grad), expected, rtol=1e-12, atol=1e-12)


@given(x=arrays_of_any_shape(min_dims=2), data=st.data())
def test_integer_arrays_with_slices_and_ellipsis(x, data):
    rows = data.draw(positions_along(x.shape[0]))
    columns = data.draw(positions_along(x.shape[-1]))
    check_index_op(lambda t: t[rows, 1:], lambda a: a[rows, 1:], x)
    check_index_op(lambda t: t[..., np.array(columns)], lambda a: a[..., columns], x)


@st.composite
def array_and_mask(draw):
    """An array and a boolean mask over its leading axes (all of them, or fewer)."""
    x = draw(arrays_of_any_shape(min_dims=1))
    mask_ndim = draw(st.integers(1, x.ndim))
    return x, draw(hnp.arrays(np.bool_, x.shape[:mask_ndim]))


@given(case=array_and_mask())
def test_boolean_mask_from_a_comparison(case):
    x, mask = case
    mask_tensor = tinyae.tensor(np.where(mask, 1.0, -1.0)) > 0
    check_index_op(lambda t: t[mask_tensor], lambda a: a[mask], x)


@pytest.mark.parametrize("container", [lambda mask: mask.tolist(), np.asarray], ids=["list", "numpy"])
@given(case=array_and_mask())
def test_boolean_mask_list_or_numpy(container, case):
    x, mask = case
    check_index_op(lambda t: t[container(mask)], lambda a: a[mask], x)


# Out-of-range indices and masks on a device ----------------------------------------------------------------

@pytest.fixture
def wraps_like_cupy(monkeypatch):
    """Strict indexing that wraps an out-of-range index array around, as CuPy's take does (strict itself
    raises IndexError, as NumPy: it would hide a missing check). Index: one array, last, after full
    slices, None and Ellipsis."""
    def getitem(self, index):
        parts = index if isinstance(index, tuple) else (index,)
        *before, positions = parts
        if not hasattr(positions, "dtype") or not all(part is None or part is Ellipsis or part == slice(None)
                                                       for part in before):
            return StrictArray(self._array[strict._index(index)])
        viewed = self._array[tuple(before)]
        axis = viewed.ndim - 1 if Ellipsis in before else len(before)
        positions = positions._array if type(positions) is StrictArray else positions
        return StrictArray(np.take(viewed, positions, axis=axis, mode="wrap"))

    monkeypatch.setattr(StrictArray, "__getitem__", getitem)
    tinyae.set_backend("strict")
    backend.check_device_asserts()  # nothing pending from earlier tests


@pytest.mark.parametrize("index, message", [
    ([0, 5], "index 5 is out of bounds for axis 0 with size 3"),
    (np.array([0, -4]), "index -4 is out of bounds for axis 0 with size 3"),
    ((slice(None), [1, 2]), "index 2 is out of bounds for axis 1 with size 2"),
    ((Ellipsis, np.array([[0], [2]])), "index 2 is out of bounds for axis 1 with size 2"),
    ((None, slice(None), np.array([-3])), "index -3 is out of bounds for axis 1 with size 2"),
], ids=["list", "negative", "second axis", "ellipsis", "newaxis"])
def test_host_index_arrays_out_of_range_raise_before_the_move(wraps_like_cupy, index, message):
    """Lists and NumPy arrays are checked on the host, free, before they go to the device."""
    x = tinyae.tensor(np.arange(6.0).reshape(3, 2))
    with pytest.raises(IndexError, match=re.escape(message)):
        x[index]
    assert x[[2, -3]].numpy().tolist() == [[4.0, 5.0], [0.0, 1.0]]
    assert x[[]].shape == (0, 2)  # an empty list picks nothing, as in NumPy (not a float array: an error)


def test_device_index_arrays_out_of_range_raise_at_the_next_read(wraps_like_cupy):
    """A device index array is checked on the device (no sync): the error comes at the next host read."""
    x = tinyae.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    with strict.count_syncs() as syncs:
        wrapped = x[tinyae.tensor(np.array([0, 3]), dtype="int64")]
    assert syncs.count == 0 and wrapped.shape == (2, 2)
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 3"):
        wrapped.numpy()
    inside = x[:, tinyae.tensor(np.array([-2, 1]), dtype="int64")]
    assert inside.numpy().tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]  # reported once; in range passes


@pytest.mark.parametrize("mask", [np.array([True, False, True]), [True, False, True],
                                  np.array([[True, False], [False, False], [True, True]])],
                         ids=["numpy", "list", "2-d"])
def test_a_host_mask_makes_no_sync_on_a_device(mask):
    """CuPy counts a mask's True values on the host (a sync); tinyae finds them on the host first."""
    tinyae.set_backend("strict")
    x = tinyae.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    with strict.count_syncs() as syncs:
        picked = x[mask]
        picked.sum().backward()
    assert syncs.count == 0
    assert picked.numpy().tolist() == np.arange(6.0).reshape(3, 2)[np.asarray(mask)].tolist()
    np.testing.assert_array_equal(to_numpy(x.grad), np.broadcast_to(np.reshape(mask, (3, -1)), (3, 2)))
    device_mask = x > 2
    with strict.count_syncs() as syncs:
        x[device_mask]
    assert syncs.count == 1  # a device mask must be counted on the host: documented, not avoidable


@pytest.mark.parametrize("index, message", [
    (np.array([True, False]), "along axis 0; size of axis is 3 but size of corresponding boolean axis is 2"),
    ((slice(None), [True, False, True]), "along axis 1; size of axis is 2 but size of corresponding boolean"),
    (np.ones((3, 1), bool), "along axis 1; size of axis is 2 but size of corresponding boolean axis is 1"),
])
def test_a_mask_of_another_shape_raises(index, message):
    x = tinyae.tensor(np.arange(6.0).reshape(3, 2))
    with pytest.raises(IndexError, match=re.escape(message)):
        x[index]


@st.composite
def arrays_to_join(draw, same_shape):
    """1 to 3 arrays and an axis (possibly negative) to join them along: for stack, all of one shape
    and an axis of the result; for concatenate, sizes that differ along the joined axis."""
    base = list(draw(shapes(min_dims=0 if same_shape else 1)))
    ndim = len(base) + 1 if same_shape else len(base)
    axis = draw(st.integers(-ndim, ndim - 1))
    count = draw(st.integers(1, 3))
    parts = []
    for _ in range(count):
        if not same_shape:
            base[axis] = draw(st.integers(1, 3))
        parts.append(draw(arrays(tuple(base))))
    return parts, axis


@given(case=arrays_to_join(same_shape=False))
def test_concatenate(case):
    parts, axis = case
    check_op_exact(
        lambda *ts: tinyae.concatenate(list(ts), axis=axis), lambda *a: np.concatenate(a, axis=axis), *parts
    )


@given(case=arrays_to_join(same_shape=True))
def test_stack(case):
    parts, axis = case
    check_op_exact(lambda *ts: tinyae.stack(list(ts), axis=axis), lambda *a: np.stack(a, axis=axis), *parts)


@st.composite
def array_and_axis(draw):
    x = draw(arrays_of_any_shape(min_dims=1))
    return x, draw(st.integers(-x.ndim, x.ndim - 1))


@given(case=array_and_axis(), data=st.data())
def test_split_into_equal_sections(case, data):
    x, axis = case
    length = x.shape[axis]
    sections = data.draw(st.sampled_from([n for n in range(1, length + 1) if length % n == 0]))
    check_op_exact(lambda t: tinyae.split(t, sections, axis=axis), lambda a: np.split(a, sections, axis=axis), x)
    check_op_exact(lambda t: t.split(sections, axis=axis), lambda a: np.split(a, sections, axis=axis), x)


@given(case=array_and_axis(), data=st.data())
def test_split_at_indices(case, data):
    x, axis = case
    indices = data.draw(st.lists(st.integers(0, x.shape[axis]), max_size=3))
    check_op_exact(lambda t: tinyae.split(t, indices, axis=axis), lambda a: np.split(a, indices, axis=axis), x)
    check_op_exact(lambda t: t.split(indices, axis=axis), lambda a: np.split(a, indices, axis=axis), x)

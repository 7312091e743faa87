"""Gradient checks for the matrix product in all of NumPy's cases: vector·vector, vector·matrix,
matrix·vector, matrix·matrix, and batched products whose batch axes broadcast; also ``array @ tensor``."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyae
from tests.ops.helpers import check_op
from tinyae.testing.strategies import arrays


def arrays_of_shapes(shapes_):
    return st.tuples(*(arrays(shape) for shape in shapes_))


SHAPE_PAIRS = {
    "vector@vector": ((3,), (3,)),
    "vector@matrix": ((3,), (3, 2)),
    "matrix@vector": ((2, 3), (3,)),
    "matrix@matrix": ((2, 3), (3, 4)),
    "broadcast-batches": ((2, 1, 3, 4), (5, 4, 2)),
    "matrix@batch": ((3, 4), (2, 4, 5)),
    "batch@matrix": ((2, 3, 4), (4, 5)),
    "vector@batch": ((4,), (2, 4, 3)),
    "batch@vector": ((2, 3, 4), (4,)),
}


@pytest.mark.parametrize("shape_pair", SHAPE_PAIRS.values(), ids=SHAPE_PAIRS)
@given(data=st.data())
def test_matmul_cases(shape_pair, data):
    a, b = data.draw(arrays_of_shapes(shape_pair))
    check_op(lambda x, y: x @ y, np.matmul, a, b)
    check_op(tinyae.matmul, np.matmul, a, b)


# Operands for any of NumPy's cases, with 0 to 2 batch axes that broadcast.
any_matmul_operands = hnp.mutually_broadcastable_shapes(
    signature=np.matmul.signature, max_dims=2, max_side=4
).flatmap(lambda shapes_: arrays_of_shapes(shapes_.input_shapes))


@given(pair=any_matmul_operands)
def test_matmul_random_shapes(pair):
    check_op(lambda x, y: x @ y, np.matmul, *pair)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # xp is a module, not state
@pytest.mark.parametrize("shape_pair", [((3,), (3, 2)), ((2, 3), (3, 4)), ((2, 1, 1, 3), (4, 3, 2))])
@given(data=st.data())
def test_reflected_matmul_with_backend_array_on_the_left(xp, shape_pair, data):
    a, b = data.draw(arrays_of_shapes(shape_pair))
    left = xp.asarray(a)
    out = left @ tinyae.tensor(b, requires_grad=True)
    assert isinstance(out, tinyae.Tensor) and out.requires_grad
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12, atol=0, strict=True)
    assert (xp.asarray(a.astype(np.float32)) @ tinyae.tensor(b.astype(np.float32))).dtype == np.float32
    tinyae.gradcheck(lambda y: left @ y, [tinyae.tensor(b, requires_grad=True)])

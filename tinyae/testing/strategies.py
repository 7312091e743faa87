"""Hypothesis strategies for op tests: shapes, broadcastable shape pairs, and float64 values kept away
from kinks (relu, abs at 0) and poles (log, division at 0), so finite differences measure a derivative."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes, including () and size-1 axes."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    """Tuples of shapes that broadcast together, e.g. ((2, 1, 4), (3, 1))."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=0, max_dims=max_dims, max_side=max_side
    ).map(lambda result: result.input_shapes)


def arrays(
    shape,
    low: float = -3.0,
    high: float = 3.0,
    avoid: tuple[float, ...] = (),
    margin: float = 1e-2,
    distinct: bool = False,
) -> st.SearchStrategy:
    """float64 arrays with values in [low, high], at least ``margin`` away from each point in ``avoid``.

    ``distinct=True`` also keeps every pair of values ``margin`` apart (for max, whose derivative jumps at
    ties). Values are pushed off the excluded neighbourhoods rather than filtered, so no example is wasted.
    """
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64)
    strategy = hnp.arrays(np.float64, shape, elements=elements)

    def push_away(values: np.ndarray) -> np.ndarray:
        values = values.copy()
        for point in avoid:
            near = np.abs(values - point) < margin
            values[near] = point + np.where(values[near] >= point, margin, -margin)
        if distinct and values.size > 1:  # sorted s_k ≥ s_(k−1) + 2·margin: lift each run of near-ties
            order = np.argsort(values, axis=None)
            steps = 2 * margin * np.arange(values.size)
            values.flat[order] = np.maximum.accumulate(values.flat[order] - steps) + steps
        return values

    return strategy.map(push_away)

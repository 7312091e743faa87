"""Differentiable ops, one file per family; each op is a Function with forward and backward side by side.

Read them in this order: arithmetic (and ``sum_to_shape``), elementwise, activation, reduce, shape, matmul.
"""

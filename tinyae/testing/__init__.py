"""Test helpers: the strict fake-GPU backend, gradient checking and Hypothesis strategies."""

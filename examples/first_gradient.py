"""The README's example: a small expression, its gradient, and the finite-difference check of it.

Run: python examples/first_gradient.py
"""

import numpy as np

import tinyae as ta

rng = np.random.default_rng(0)
x = ta.tensor(rng.standard_normal((4, 3)), requires_grad=True)
w = ta.tensor(rng.standard_normal((3, 2)), requires_grad=True)
b = ta.tensor(np.zeros(2), requires_grad=True)

loss = ((x @ w + b).sigmoid() ** 2).mean()  # L = mean(σ(xw + b)²)
loss.backward()  # fills w.grad = ∂L/∂w and b.grad = ∂L/∂b (and x.grad)

print(f"loss = {loss.item():.6f}")
print("dL/dw =\n", w.grad)
print("dL/db =", b.grad)
print("finite differences agree:", ta.gradcheck(lambda x, w, b: (x @ w + b).sigmoid(), [x, w, b]))

"""How close the MLP VAE step is to the BLAS limit of this machine.

    python bench/roofline.py [--steps 300]

Counts the FLOPs of one training step of the 784-400-20 VAE at batch 128 (the matrix products: 2·m·k·n
each, forward, and the two backward products per layer, less the input gradient of the first layer),
times the step and the step's matrix products alone with NumPy in alternating rounds (so that the
machine's drift hits both), and a large SGEMM. Prints achieved GFLOP/s for each and the ratio step time /
matrix-product time (the issue's target: ≤ 1.6).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tinyae
from common import configure_process, machine, mnist_batch
from tinyae import models, optim

LAYERS = [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]  # fc1, fc21, fc22, fc3, fc4
BATCH = 128


def step_flops() -> int:
    forward = sum(2 * BATCH * i * o for i, o in LAYERS)
    weight_grads = forward  # dW = dYᵀ·X: same size as the forward product
    input_grads = forward - 2 * BATCH * 784 * 400  # no gradient for the images themselves
    return forward + weight_grads + input_grads


def elapsed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def matmuls_only():
    """The step's matrix products in NumPy, with the same shapes and layouts as tinyae's Linear op."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((o, i)).astype(np.float32) for i, o in LAYERS]
    inputs = [rng.standard_normal((BATCH, i)).astype(np.float32) for i, _ in LAYERS]
    grads = [rng.standard_normal((BATCH, o)).astype(np.float32) for _, o in LAYERS]

    def run():
        for index, (w, x, g) in enumerate(zip(weights, inputs, grads)):
            x @ w.T
            g.T @ x
            if index:
                g @ w

    return run


def tinyae_step(images: np.ndarray):
    """One training step of tinyae's VAE with Adam on ``images`` per call."""
    model = models.VAE()
    optimizer = optim.Adam(model.parameters())
    x = tinyae.tensor(images)

    def step():
        total, _ = model.loss(x)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    configure_process()

    step = tinyae_step(mnist_batch(BATCH))
    gemms = matmuls_only()
    for _ in range(5):
        step()
        gemms()
    flops = step_flops()
    rounds = [(elapsed(step), elapsed(gemms)) for _ in range(args.steps)]  # alternating: drift hits both
    step_time = statistics.median(step for step, _ in rounds)
    gemm_time = statistics.median(gemm for _, gemm in rounds)
    big = np.random.default_rng(1).standard_normal((2048, 2048)).astype(np.float32)
    sgemm_time = statistics.median(elapsed(lambda: big @ big) for _ in range(10))
    sgemm_rate = 2 * 2048**3 / sgemm_time / 1e9
    print(f"MLP VAE step: {flops / 1e6:.1f} MFLOP in matrix products\n")
    print("| measured | ms | GFLOP/s | % of SGEMM peak |")
    print("|---|---|---|---|")
    for name, seconds in (("tinyae training step", step_time), ("its matrix products alone (NumPy)", gemm_time)):
        rate = flops / seconds / 1e9
        print(f"| {name} | {seconds * 1e3:.2f} | {rate:.1f} | {100 * rate / sgemm_rate:.0f}% |")
    print(f"| SGEMM 2048² (float32) | {sgemm_time * 1e3:.1f} | {sgemm_rate:.1f} | 100% |")
    print(f"\nstep / matrix products = {step_time / gemm_time:.2f} (target ≤ 1.6)\n\n{machine()}")


if __name__ == "__main__":
    main()

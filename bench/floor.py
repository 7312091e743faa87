"""The floor under bench/roofline.py: the MLP VAE step written by hand, with no engine.

    python bench/floor.py [--steps 300]

bench/step.py times this step against tinyae's in processes of their own (``worker``).
The same step as tinyae's (784-400-20 VAE, batch 128, BCE-with-logits summed + KL, Adam), spelled out as
one NumPy function: the same matrix products in the same layouts, the same fused kernels, the same
one-call Adam update, and no modules, recorded ops or gradient bookkeeping. It is timed in alternating
rounds with tinyae's step and with the matrix products alone, as roofline.py times them, each step after a
round of matrix products. Prints step / matrix products for both: what an engine on this machine starts
from, and what tinyae adds.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from common import configure_process, machine, mnist_batch, timed
from roofline import BATCH, LAYERS, elapsed, matmuls_only, tinyae_step
from tinyae.ops.activation import relu_backward, relu_forward
from tinyae.ops.loss import bce_with_logits, gaussian_kl_terms
from tinyae.ops.sampling import reparameterize_terms
from tinyae.optim.adam import adam_update


def hand_written_step(x: np.ndarray):
    """One training step of the VAE per call, every forward and backward line written out."""
    rng = np.random.default_rng(0)
    weights = [(rng.standard_normal((o, i)) * 0.05).astype(np.float32) for i, o in LAYERS]
    biases = [np.zeros(o, np.float32) for _, o in LAYERS]
    params = weights + biases  # each its own array, with its own moments, as tinyae's Adam keeps them
    moments = [[np.zeros_like(p) for p in params] for _ in range(2)]
    (w1, w21, w22, w3, w4), (b1, b21, b22, b3, b4) = params[:5], params[5:]
    scale = np.float32(1 / BATCH)
    count = 0

    def step():
        nonlocal count
        count += 1
        h1 = x @ w1.T
        h1 += b1
        r1 = relu_forward(h1)
        mu = r1 @ w21.T
        mu += b21
        logvar = r1 @ w22.T
        logvar += b22
        z, half_std_eps = reparameterize_terms(mu, logvar, rng.standard_normal(mu.shape, dtype=np.float32))
        h3 = z @ w3.T
        h3 += b3
        r3 = relu_forward(h3)
        logits = r3 @ w4.T
        logits += b4
        loss, slope = bce_with_logits(logits, x)
        kl, half_expm1 = gaussian_kl_terms(mu, logvar)
        loss.sum() * scale + kl.sum() * scale  # the loss (its value is not read back, as in roofline.py)
        g4 = slope * scale
        gr3 = g4 @ w4
        gh3 = relu_backward(gr3, r3)
        gz = gh3 @ w3
        gmu = gz + mu * scale
        glogvar = gz * half_std_eps + half_expm1 * scale
        gh1 = relu_backward(gmu @ w21 + glogvar @ w22, r1)
        grads = [gh1.T @ x, gmu.T @ r1, glogvar.T @ r1, gh3.T @ z, g4.T @ r3,
                 gh1.sum(0), gmu.sum(0), glogvar.sum(0), gh3.sum(0), g4.sum(0)]
        beta1, beta2, lr = 0.9, 0.999, 1e-3
        adam_update.foreach(grads, 1 - beta1, beta2, 1 - beta2, lr / (1 - beta1**count),
                            (1 - beta2**count) ** 0.5, 1e-8, 0.0, 1.0, params, *moments)

    return step


def worker(data: str, warmup: int, rounds: int, steps: int) -> dict:
    """bench/step.py's contender: seconds per hand-written step on the batch saved in ``data``."""
    return {"step": timed(hand_written_step(np.load(data)), warmup, rounds, steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    configure_process()
    images = mnist_batch(BATCH)
    gemms = matmuls_only()
    # Each step follows a round of matrix products, so both find the cache in the same state; alternating,
    # so the machine's drift hits all three.
    order = [("hand-written step", hand_written_step(images)), ("gemms", gemms),
             ("tinyae step", tinyae_step(images)), ("gemms", gemms)]
    for _ in range(5):
        for _, run in order:
            run()
    times = {name: [] for name, _ in order}
    for _ in range(args.steps):
        for name, run in order:
            times[name].append(elapsed(run))
    median = {name: statistics.median(values) for name, values in times.items()}
    print("| step | ms | step / matrix products alone |")
    print("|---|---|---|")
    for name in ("hand-written step", "tinyae step"):
        print(f"| {name} | {median[name] * 1e3:.2f} | {median[name] / median['gemms']:.2f} |")
    print(f"| matrix products alone | {median['gemms'] * 1e3:.2f} | 1.00 |\n\n{machine()}")


if __name__ == "__main__":
    main()

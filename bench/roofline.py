"""How close the MLP VAE step is to the BLAS limit of this machine, in tinyae and in PyTorch.

    python bench/roofline.py [--pairs 5] [--steps 200] [--threads N]

Counts the FLOPs of one training step of the 784-400-20 VAE at batch 128 (the matrix products: 2·m·k·n
each, forward, and the two backward products per layer, less the input gradient of the first layer). Each
framework runs in processes of its own (bench/common.py's harness, ``--pairs`` alternating pairs), and
each process times its step and the step's matrix products alone (same shapes and layouts, in its own
BLAS: NumPy's for tinyae, PyTorch's for PyTorch) in alternating calls, so that the machine's drift hits
both, and a large SGEMM. Prints achieved GFLOP/s and the ratio step / matrix products (the target of issue
12: ≤ 1.6 for tinyae), medians over the processes with their range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from common import Worker, WorkerError, machine, progress, race, save_batch

LAYERS = [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]  # fc1, fc21, fc22, fc3, fc4
BATCH = 128
SGEMM = 2048


def step_flops() -> int:
    forward = sum(2 * BATCH * i * o for i, o in LAYERS)
    weight_grads = forward  # dW = dYᵀ·X: same size as the forward product
    input_grads = forward - 2 * BATCH * 784 * 400  # no gradient for the images themselves
    return forward + weight_grads + input_grads


def elapsed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def matmuls_only(xp=None):
    """The step's matrix products, with the same shapes and layouts as a Linear layer's; ``xp`` makes the
    arrays (default NumPy; ``torch_arrays`` for PyTorch's BLAS)."""
    import numpy as np

    rng = np.random.default_rng(0)
    make = xp or (lambda array: array)
    weights = [make(rng.standard_normal((o, i)).astype(np.float32)) for i, o in LAYERS]
    inputs = [make(rng.standard_normal((BATCH, i)).astype(np.float32)) for i, _ in LAYERS]
    grads = [make(rng.standard_normal((BATCH, o)).astype(np.float32)) for _, o in LAYERS]

    def run():
        for index, (w, x, g) in enumerate(zip(weights, inputs, grads)):
            x @ w.T
            g.T @ x
            if index:
                g @ w

    return run


def tinyae_step(images):
    """One training step of tinyae's VAE with Adam on ``images`` per call."""
    import tinyae
    from common import tinyae_training_step
    from tinyae import models

    return tinyae_training_step(models.VAE(), tinyae.tensor(images))


def alternated(step, gemms, big, steps: int) -> dict[str, float]:
    """Median seconds of ``step`` and of ``gemms``, called in alternation ``steps`` times each after a
    warm-up, and of ``big @ big``."""
    for _ in range(5):
        step()
        gemms()
    rounds = [(elapsed(step), elapsed(gemms)) for _ in range(steps)]
    return {"step": statistics.median(step for step, _ in rounds),
            "gemms": statistics.median(gemm for _, gemm in rounds),
            "sgemm": statistics.median(elapsed(lambda: big @ big) for _ in range(10))}


def tinyae_worker(data: str, steps: int) -> dict:
    import numpy as np

    big = np.random.default_rng(1).standard_normal((SGEMM, SGEMM)).astype(np.float32)
    return alternated(tinyae_step(np.load(data)), matmuls_only(), big, steps)


def torch_worker(data: str, steps: int) -> dict:
    import numpy as np
    import torch
    from common import torch_models, torch_training_step

    torch.manual_seed(0)
    vae, _, loss = torch_models()
    step = torch_training_step(vae(), loss, torch.from_numpy(np.load(data)))
    big = torch.randn(SGEMM, SGEMM)
    return alternated(step, matmuls_only(torch.from_numpy), big, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="alternating pairs of processes (default 5)")
    parser.add_argument("--steps", type=int, default=200, help="steps a process times (default 200)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: one per physical core)")
    args = parser.parse_args()
    from tinyae.app.process import physical_cores

    threads = args.threads or physical_cores()
    with tempfile.TemporaryDirectory() as folder:
        kwargs = dict(data=save_batch(folder, BATCH), steps=args.steps)
        try:
            result = race([Worker("tinyae", "roofline:tinyae_worker", "tinyae", threads, kwargs),
                           Worker("PyTorch", "roofline:torch_worker", "torch", threads, kwargs)],
                          args.pairs, log=progress)
        except WorkerError as error:
            sys.exit(f"bench/roofline.py: {error}")
    flops = step_flops()
    print(f"MLP VAE step, batch {BATCH}: {flops / 1e6:.1f} MFLOP in matrix products; {threads} threads; "
          f"each framework in its own processes, {args.pairs} alternating pairs, {args.steps} steps each; "
          f"medians over the processes (range)\n")
    names = ("tinyae", "PyTorch")
    print("| measured | " + " | ".join(names) + " |\n|---|---|---|")
    rows = {
        "training step ms": lambda name: f"{result.median(name, 'step') * 1e3:.2f}",
        "its matrix products alone ms": lambda name: f"{result.median(name, 'gemms') * 1e3:.2f}",
        "**step / matrix products**": lambda name: f"**{result.within(name, 'step', 'gemms')}**",
        "step GFLOP/s": lambda name: f"{flops / result.median(name, 'step') / 1e9:.1f}",
        "matrix products GFLOP/s": lambda name: f"{flops / result.median(name, 'gemms') / 1e9:.1f}",
        f"SGEMM {SGEMM}² GFLOP/s (peak)":
            lambda name: f"{2 * SGEMM**3 / result.median(name, 'sgemm') / 1e9:.1f}",
    }
    for row, cell in rows.items():
        print(f"| {row} | " + " | ".join(cell(name) for name in names) + " |")
    print(f"\ntinyae step / PyTorch step: {result.ratio('tinyae', 'PyTorch', 'step')} (median of the "
          f"per-pair ratios, range); tinyae's step / matrix products target ≤ 1.6\n\n"
          + machine({name: result.info(name) for name in names}))


if __name__ == "__main__":
    main()

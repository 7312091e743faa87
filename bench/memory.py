"""Peak memory of a training step, and no leak: memory after 1,000 steps equals memory after 10.

    python bench/memory.py [--steps 1000]

Uses tracemalloc, which sees NumPy's array allocations. A leak of graphs or saved buffers (a node kept
alive after backward) would grow the memory held between steps by at least one batch of activations.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import tinyae
from common import configure_process, machine, mnist_batch
from tinyae import models, optim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    configure_process()

    print("| model | held after 10 steps MB | held after N steps MB | peak during a step MB |")
    print("|---|---|---|---|")
    batch = mnist_batch()
    for name, model, x in (("MLP VAE", models.VAE(), tinyae.tensor(batch)),
                           ("conv VAE", models.ConvVAE(), tinyae.tensor(batch.reshape(-1, 1, 28, 28)))):
        optimizer = optim.Adam(model.parameters())
        steps = args.steps if name == "MLP VAE" else max(args.steps // 10, 20)

        def step():
            total, _ = model.loss(x)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()

        tracemalloc.start()
        held = {}
        for number in range(1, steps + 1):
            step()
            if number in (10, steps):
                gc.collect()
                held[number] = tracemalloc.get_traced_memory()[0] / 2**20
            if number == 10:
                tracemalloc.reset_peak()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"| {name} (N = {steps}) | {held[10]:.1f} | {held[steps]:.1f} | {peak:.1f} |")
    print("\n" + machine())


if __name__ == "__main__":
    main()

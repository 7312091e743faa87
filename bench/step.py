"""Training-step time of the MNIST VAEs: tinyae vs PyTorch on the CPU, same model, batch, optimizer, threads.

    python bench/step.py [--rounds 7] [--steps 20]

(a) the MLP VAE 784-400-20 and (b) the conv VAE (two stride-2 convs 1→32→64, latent 20, two transposed
convs back), batch 128, Adam 1e-3, BCE-with-logits summed + KL. Prints a Markdown table of medians over
alternating rounds and the ratio tinyae / PyTorch (below 1: tinyae is faster).
"""

from __future__ import annotations

import argparse

import numpy as np

import tinyae
from common import THREADS, alternate, configure_process, machine, mnist_batch, torch_models
from tinyae import models, optim


def tinyae_step(model, x):
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def step():
        total, _ = model.loss(x)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    return step


def torch_step(model, loss, x):
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        value = loss(model, x)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="steps per round")
    args = parser.parse_args()
    configure_process()

    import torch

    torch.set_num_threads(THREADS)
    tinyae.manual_seed(0)
    torch.manual_seed(0)
    VAE, ConvVAE, torch_loss = torch_models()
    batch = mnist_batch()
    cases = {
        "MLP VAE 784-400-20": (models.VAE(), VAE(), batch, batch),
        "conv VAE 1→32→64, latent 20": (models.ConvVAE(), ConvVAE(), batch.reshape(-1, 1, 28, 28),
                                        batch.reshape(-1, 1, 28, 28)),
    }
    print(f"Training step, batch 128, Adam, {THREADS} threads; median ms over {args.rounds} alternating rounds "
          f"of {args.steps} steps\n")
    print("| model | tinyae ms | PyTorch ms | tinyae / PyTorch |")
    print("|---|---|---|---|")
    for name, (ours, theirs, x, x_torch) in cases.items():
        steps = {"tinyae": tinyae_step(ours, tinyae.tensor(x)),
                 "torch": torch_step(theirs, torch_loss, torch.from_numpy(np.ascontiguousarray(x_torch)))}
        medians = alternate(steps, args.rounds, args.steps if "MLP" in name else max(args.steps // 4, 3))
        print(f"| {name} | {medians['tinyae'] * 1e3:.2f} | {medians['torch'] * 1e3:.2f} | "
              f"{medians['tinyae'] / medians['torch']:.2f} |")
    print("\n" + machine())


if __name__ == "__main__":
    main()

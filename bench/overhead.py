"""Framework overhead per op: forward + backward on tiny tensors, where the arithmetic costs nothing.

    python bench/overhead.py [--rounds 7] [--ops 2000]

Each timed unit builds a chain of ``--ops`` elementwise ops on a 4×4 tensor and backpropagates through
it; the time per op is what the framework spends recording a node, running its forward and backward
bookkeeping and accumulating the gradient. Prints a Markdown table: µs per op, tinyae vs PyTorch.
"""

from __future__ import annotations

import argparse

import numpy as np

import tinyae
from common import THREADS, alternate, configure_process, machine

OPS = {
    "mul": lambda x, y: x * y,
    "add": lambda x, y: x + y,
    "tanh": lambda x, y: x.tanh(),
    "exp": lambda x, y: (x * 0.01).exp(),
    "matmul 4×4": lambda x, y: x @ y,
}


def chain(tensor, op, length: int):
    def run():
        x = tensor(np.full((4, 4), 0.5, np.float32))
        y = tensor(np.full((4, 4), 0.25, np.float32))  # x @ y keeps 0.5 entries: no overflow in a long chain
        out = x
        for _ in range(length):
            out = op(out, y)
        out.sum().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=1000, help="ops per chain")
    args = parser.parse_args()
    configure_process()

    import torch

    torch.set_num_threads(THREADS)
    ours = lambda data: tinyae.tensor(data, requires_grad=True)  # noqa: E731
    theirs = lambda data: torch.tensor(data, requires_grad=True)  # noqa: E731
    print(f"Framework overhead, forward + backward, µs per op (chains of {args.ops} ops on 4×4 float32; "
          f"median of {args.rounds} alternating rounds)\n")
    print("| op | tinyae µs | PyTorch µs | tinyae / PyTorch |")
    print("|---|---|---|---|")
    for name, op in OPS.items():
        medians = alternate({"tinyae": chain(ours, op, args.ops), "torch": chain(theirs, op, args.ops)},
                            args.rounds, count=1, warmup=1)
        ours_us, theirs_us = (medians[k] / args.ops * 1e6 for k in ("tinyae", "torch"))
        print(f"| {name} | {ours_us:.1f} | {theirs_us:.1f} | {ours_us / theirs_us:.2f} |")
    print("\n" + machine())


if __name__ == "__main__":
    main()

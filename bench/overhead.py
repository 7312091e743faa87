"""Framework overhead per op: forward + backward on tiny tensors, where the arithmetic costs nothing.

    python bench/overhead.py [--pairs 5] [--rounds 7] [--ops 1000] [--threads N]

Each timed unit builds a chain of ``--ops`` elementwise ops on a 4×4 tensor and backpropagates through
it; the time per op is what the framework spends recording a node, running its forward and backward
bookkeeping and accumulating the gradient. tinyae and PyTorch each run in processes of their own
(bench/common.py's harness, ``--pairs`` alternating pairs); a process times ``--rounds`` chains of each op
after one untimed chain and reports the median. Prints a Markdown table: µs per op (medians over the
pairs) and the median of the per-pair ratios tinyae / PyTorch with their range.
"""

from __future__ import annotations

import argparse
import sys

from common import Worker, WorkerError, machine, progress, race, timed

OPS = {
    "mul": lambda x, y: x * y,
    "add": lambda x, y: x + y,
    "tanh": lambda x, y: x.tanh(),
    "exp": lambda x, y: (x * 0.01).exp(),
    "matmul 4×4": lambda x, y: x @ y,
}


def chain(tensor, op, length: int):
    """A call builds ``length`` ops ``op`` on leaves made by ``tensor`` and backpropagates through them."""
    import numpy as np

    def run():
        x = tensor(np.full((4, 4), 0.5, np.float32))
        y = tensor(np.full((4, 4), 0.25, np.float32))  # x @ y keeps 0.5 entries: no overflow in a long chain
        out = x
        for _ in range(length):
            out = op(out, y)
        out.sum().backward()

    return run


def per_op(tensor, ops: int, rounds: int) -> dict[str, float]:
    """Seconds per op of each chain of ``OPS``."""
    return {name: timed(chain(tensor, op, ops), warmup=1, rounds=rounds, steps=1) / ops
            for name, op in OPS.items()}


def tinyae_worker(ops: int, rounds: int) -> dict:
    import tinyae

    return per_op(lambda data: tinyae.tensor(data, requires_grad=True), ops, rounds)


def torch_worker(ops: int, rounds: int) -> dict:
    import torch

    return per_op(lambda data: torch.tensor(data, requires_grad=True), ops, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="alternating pairs of processes (default 5)")
    parser.add_argument("--rounds", type=int, default=7, help="chains of each op a process times")
    parser.add_argument("--ops", type=int, default=1000, help="ops per chain")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: one per physical core)")
    args = parser.parse_args()
    from tinyae.app.process import physical_cores

    threads = args.threads or physical_cores()
    kwargs = dict(ops=args.ops, rounds=args.rounds)
    try:
        result = race([Worker("tinyae", "overhead:tinyae_worker", "tinyae", threads, kwargs),
                       Worker("PyTorch", "overhead:torch_worker", "torch", threads, kwargs)],
                      args.pairs, log=progress)
    except WorkerError as error:
        sys.exit(f"bench/overhead.py: {error}")
    print(f"Framework overhead, forward + backward, µs per op (chains of {args.ops} ops on 4×4 float32, "
          f"{threads} threads); each framework in its own processes, {args.pairs} alternating pairs\n")
    print("| op | tinyae µs | PyTorch µs | tinyae / PyTorch |")
    print("|---|---|---|---|")
    for name in OPS:
        ours, theirs = (result.median(framework, name) * 1e6 for framework in ("tinyae", "PyTorch"))
        print(f"| {name} | {ours:.1f} | {theirs:.1f} | {result.ratio('tinyae', 'PyTorch', name)} |")
    print("\n" + machine({name: result.info(name) for name in ("tinyae", "PyTorch")}))


if __name__ == "__main__":
    main()

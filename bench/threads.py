"""One training epoch at 1 and 2 threads, with and without a busy neighbour process: what oversubscription costs.

    python bench/threads.py [--limit 10000] [--pairs 3]

Each epoch (the default VAE 784-400-20, batch 128, Adam 1e-3, the first --limit MNIST training images) runs
in a process of its own, with the BLAS pools limited as ``tinyae train --threads N`` limits them. The two
thread counts alternate in pairs (1, 2, then 2, 1, ...), so slow drifts of the machine hit both alike. The
busy neighbour is another process spinning one core (a Python loop), started before the pairs that share
the machine with it. Prints the median seconds per epoch of each case, and the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKER = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
from common import configure_process
configure_process({threads})
import tinyae
from tinyae import models, optim
from tinyae.data import Batches, load_mnist

images, labels = load_mnist("train")
batches = Batches(images, labels, batch_size=128, shuffle=True, limit={limit}, seed=0)
tinyae.manual_seed(0)
model = models.VAE()
optimizer = optim.Adam(model.parameters(), lr=1e-3)

def step(x):
    total, _ = model.loss(x)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total

for x in list(batches)[:3]:  # warm-up: the kernels' first calls, the pools' threads
    step(x)
started = time.perf_counter()
for x in batches:
    last = step(x)
last.item()
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""

SPIN = "while True: pass"


def epoch_seconds(threads: int, limit: int) -> float:
    code = WORKER.format(bench=str(HERE), threads=threads, limit=limit)
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])["seconds"]


def measure(pairs: int, limit: int) -> dict[int, float]:
    """Median seconds per epoch at 1 and 2 threads over ``pairs`` alternating pairs."""
    samples: dict[int, list[float]] = {1: [], 2: []}
    for pair in range(pairs):
        for threads in ((1, 2) if pair % 2 == 0 else (2, 1)):
            samples[threads].append(epoch_seconds(threads, limit))
    return {threads: statistics.median(values) for threads, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=60000, help="training images per epoch (default all)")
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs per case (default 3)")
    args = parser.parse_args()
    quiet = measure(args.pairs, args.limit)
    neighbour = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        busy = measure(args.pairs, args.limit)
    finally:
        neighbour.kill()
        neighbour.wait()
    print(f"One epoch of the VAE 784-400-20 on {args.limit} images, batch 128; median s over {args.pairs} "
          "alternating pairs, each epoch in its own process\n")
    print("| threads | alone s | beside a busy process s | slowdown |")
    print("|---|---|---|---|")
    for threads in (1, 2):
        print(f"| {threads} | {quiet[threads]:.2f} | {busy[threads]:.2f} | {busy[threads] / quiet[threads]:.1f}× |")
    sys.path.insert(0, str(HERE))
    from common import machine

    print("\n" + machine())


if __name__ == "__main__":
    main()

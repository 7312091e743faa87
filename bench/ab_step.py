"""tinyae against tinyae: the training step of two checkouts, each in its own process, processes alternating.

    python bench/ab_step.py BASE_CHECKOUT [--model mlp|conv] [--pairs 7] [--steps 40] [--overhead]

Times the training step of the MLP VAE 784-400-20 or the conv VAE (batch 128 of MNIST, Adam 1e-3) of the tinyae in
BASE_CHECKOUT (a git worktree of the commit to compare with, e.g. ``git worktree add ../base COMMIT``) and of
this checkout, in processes B, A, A, B, B, A, ... so slow drifts of the machine, and the second process
of a pair running slower (1.7% here, base against a copy of itself), hit both alike. Each process warms
up, then reports its fastest round: on a machine shared with other jobs, the round least disturbed by them.
Prints the per-pair ratios (this / base), their median and range.
``--overhead`` times bench/overhead.py's chains (µs per op) the same way instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKER = r"""
import json, statistics, sys, time
sys.path.insert(0, {bench!r})
import numpy as np
import tinyae
from tinyae import models, optim
from common import configure_process, mnist_batch
from overhead import OPS, chain
configure_process()

def seconds(step, count):
    started = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - started) / count

if {overhead!r}:
    leaf = lambda data: tinyae.tensor(data, requires_grad=True)
    result = {{}}
    for name, op in OPS.items():
        run = chain(leaf, op, 1000)
        run()
        result[name] = min(seconds(run, 1) for _ in range({rounds})) / 1000
else:
    tinyae.manual_seed(0)
    model = models.ConvVAE() if {model!r} == "conv" else models.VAE()
    x = tinyae.tensor(mnist_batch().reshape((-1, 1, 28, 28) if {model!r} == "conv" else (-1, 784)))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def step():
        total, _ = model.loss(x)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    seconds(step, 10)
    result = {{"step": min(seconds(step, {steps}) for _ in range({rounds}))}}
print(json.dumps({{"file": tinyae.__file__, **result}}))
"""


def measure(checkout: Path, args) -> dict[str, float]:
    code = WORKER.format(bench=str(HERE), overhead=args.overhead, model=args.model, steps=args.steps,
                         rounds=args.rounds)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    output = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env, check=True,
                            capture_output=True, text=True)
    result = json.loads(output.stdout.strip().splitlines()[-1])
    if not result.pop("file").startswith(str(checkout)):
        raise RuntimeError(f"the worker did not import tinyae from {checkout}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="the checkout to compare with")
    parser.add_argument("--model", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per process (the fastest is reported)")
    parser.add_argument("--overhead", action="store_true", help="time bench/overhead.py's chains instead")
    args = parser.parse_args()
    this, base = HERE.parent, args.base.resolve()
    ratios: dict[str, list[float]] = {}
    for pair in range(args.pairs):
        if pair % 2 == 0:  # who goes first alternates: the second process of a pair tends to run slower
            before, after = measure(base, args), measure(this, args)
        else:
            after, before = measure(this, args), measure(base, args)
        for name in before:
            ratios.setdefault(name, []).append(after[name] / before[name])
        times = (f"{name} {before[name] * 1e6:.1f} → {after[name] * 1e6:.1f} µs" for name in before)
        print(f"pair {pair + 1}: " + ", ".join(times), flush=True)
    for name, values in ratios.items():
        print(f"{name}: this / base, median {statistics.median(values):.3f} "
              f"(range {min(values):.3f}–{max(values):.3f}, {len(values)} pairs)")
    sys.path.insert(0, str(HERE))
    from common import machine

    print(machine())


if __name__ == "__main__":
    main()

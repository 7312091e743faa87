"""tinyae against tinyae: the training step of two checkouts, each in its own process, processes alternating.

    python bench/ab_step.py BASE_CHECKOUT [--model mlp|conv] [--pairs 7] [--steps 40] [--threads N]
                            [--overhead]

Times the training step of the MLP VAE 784-400-20 or the conv VAE (batch 128 of MNIST, Adam 1e-3) of the
tinyae in BASE_CHECKOUT (a git worktree of the commit to compare with, e.g. ``git worktree add ../base
COMMIT``) and of this checkout, with bench/step.py's worker in bench/common.py's harness: processes B, A, A,
B, B, A, ... so slow drifts of the machine, and the second process of a pair running slower (1.7% here,
base against a copy of itself), hit both alike. Each process warms up, then reports its median round.
Prints the per-pair ratios (this / base), their median and range. ``--overhead`` times bench/overhead.py's
chains (µs per op) the same way instead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import Worker, WorkerError, machine, progress, race, save_batch

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="the checkout to compare with")
    parser.add_argument("--model", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=40, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per process (the median is reported)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: one per physical core)")
    parser.add_argument("--overhead", action="store_true", help="time bench/overhead.py's chains instead")
    args = parser.parse_args()
    from tinyae.app.process import physical_cores

    threads = args.threads or physical_cores()
    checkouts = {"base": args.base.resolve(), "this": HERE.parent}
    with tempfile.TemporaryDirectory() as folder:
        if args.overhead:
            target, kwargs = "overhead:tinyae_worker", dict(ops=1000, rounds=args.rounds)
        else:
            target = "step:tinyae_worker"
            kwargs = dict(model=args.model, data=save_batch(folder), warmup=10, rounds=args.rounds,
                          steps=args.steps)
        workers = [Worker(name, target, "tinyae", threads, kwargs, (str(path),))
                   for name, path in checkouts.items()]
        try:
            result = race(workers, args.pairs, log=progress)
        except WorkerError as error:
            sys.exit(f"bench/ab_step.py: {error}")
    for name, path in checkouts.items():
        if not str(result.info(name)["tinyae"]).startswith(str(path)):
            sys.exit(f"bench/ab_step.py: the {name} worker imported tinyae from "
                     f"{result.info(name)['tinyae']}, not from {path}")
    for key in result.pairs[0]["this"]["times"]:
        print(f"{key}: this / base, {result.ratio('this', 'base', key):.3f}, {args.pairs} pairs; per pair: "
              + ", ".join(f"{ratio:.3f}" for ratio in result.ratios("this", "base", key)))
    print(machine({name: result.info(name) for name in checkouts}))


if __name__ == "__main__":
    main()

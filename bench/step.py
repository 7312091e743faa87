"""Training-step time of the MNIST VAEs: tinyae vs PyTorch on the CPU, same model, batch, optimizer, threads;
and tinyae vs bench/floor.py's hand-written step (the same kernels, no engine).

    python bench/step.py [--threads 1 2] [--pairs 7] [--models mlp conv]
    python bench/step.py --shared [--threads 2] [--pairs 7]

(a) the MLP VAE 784-400-20 and (b) the conv VAE (two stride-2 convs 1→32→64, latent 20, two transposed
convs back), batch 128 of MNIST, Adam 1e-3, BCE-with-logits summed + KL. Each contender runs in a process
of its own (bench/common.py's harness: PyTorch's process never imports tinyae, tinyae's never imports
torch), with its thread pools set to the thread count; the processes alternate in ``--pairs`` pairs, the
order reversed every other pair. Each process warms up, then times rounds of steps and reports the median
round. Prints a Markdown table: each side's median step time over the pairs, and the median of the
per-pair ratios with their range (below 1: tinyae is faster); then which of issue 14's targets hold.
About 3 minutes on 2 cores with the defaults.

``--shared`` shows what a process of its own spares PyTorch: its MLP step alone, and with a NumPy matrix
product (128×784 by 784×400, in NumPy's OpenBLAS) before each step, as a program preparing data in NumPy
makes, with OpenBLAS as it comes, with ``OPENBLAS_THREAD_TIMEOUT=4`` (its idle threads stop spinning
sooner) and with ``OPENBLAS_NUM_THREADS=1``; each in its own process, alternating pairs, at the largest
``--threads``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from common import Race, Worker, WorkerError, machine, plural, progress, race, save_batch, timed

MODELS = {"mlp": "MLP VAE 784-400-20", "conv": "conv VAE 1→32→64, latent 20"}
ROUNDS = {"mlp": dict(warmup=10, rounds=5, steps=20), "conv": dict(warmup=3, rounds=5, steps=6)}
SHARED = {  # --shared's contenders: NumPy product before each step?, the OpenBLAS variables (threads: {})
    "PyTorch alone": (False, {}),
    "a NumPy product before each step": (True, {"OPENBLAS_NUM_THREADS": "{}"}),
    "the same, OPENBLAS_THREAD_TIMEOUT=4": (True, {"OPENBLAS_NUM_THREADS": "{}",
                                                   "OPENBLAS_THREAD_TIMEOUT": "4"}),
    "the same, OPENBLAS_NUM_THREADS=1": (True, {"OPENBLAS_NUM_THREADS": "1"}),
}
# issue 14's targets: (model, threads, numerator, denominator) → the highest ratio that meets it
TARGETS = {("mlp", 2, "tinyae", "PyTorch"): 0.6, ("mlp", 1, "tinyae", "PyTorch"): 0.8,
           ("conv", 2, "tinyae", "PyTorch"): 0.8, ("mlp", 2, "tinyae", "floor"): 1.2,
           ("mlp", 1, "tinyae", "floor"): 1.2}


def images(data: str, model: str):
    import numpy as np

    batch = np.load(data)
    return batch.reshape(-1, 1, 28, 28) if model == "conv" else batch


def tinyae_worker(model: str, data: str, warmup: int, rounds: int, steps: int) -> dict:
    import tinyae
    from common import tinyae_training_step
    from tinyae import models

    tinyae.manual_seed(0)
    net = models.ConvVAE() if model == "conv" else models.VAE()
    step = tinyae_training_step(net, tinyae.tensor(images(data, model)))
    return {"step": timed(step, warmup, rounds, steps)}


def torch_worker(model: str, data: str, warmup: int, rounds: int, steps: int,
                 numpy_product: bool = False) -> dict:
    """PyTorch's step; with ``numpy_product``, a NumPy matrix product before each (``--shared``)."""
    import numpy as np
    import torch
    from common import torch_models, torch_training_step

    torch.manual_seed(0)
    vae, conv_vae, loss = torch_models()
    net = conv_vae() if model == "conv" else vae()
    step = torch_training_step(net, loss, torch.from_numpy(images(data, model)))
    if numpy_product:
        rng = np.random.default_rng(0)
        a, b = rng.random((128, 784), np.float32), rng.random((784, 400), np.float32)
        torch_step = step

        def step():
            a @ b
            torch_step()

    return {"step": timed(step, warmup, rounds, steps)}


def workers(model: str, threads: int, data: str) -> list[Worker]:
    kwargs = dict(model=model, data=data, **ROUNDS[model])
    contenders = [Worker("tinyae", "step:tinyae_worker", "tinyae", threads, kwargs),
                  Worker("PyTorch", "step:torch_worker", "torch", threads, kwargs)]
    if model == "mlp":
        contenders.append(Worker("floor", "floor:worker", "tinyae", threads,
                                 dict(data=data, **ROUNDS["mlp"])))
    return contenders


def shared(threads: int, pairs: int, data: str) -> None:
    """``--shared``: PyTorch's MLP step alone and after a NumPy product each step, printed as a table."""
    kwargs = dict(model="mlp", data=data, **ROUNDS["mlp"])
    workers = [Worker(name, "step:torch_worker", "torch", threads, dict(kwargs, numpy_product=product),
                      env={key: value.format(threads) for key, value in env.items()})
               for name, (product, env) in SHARED.items()]
    result = race(workers, pairs, log=progress)
    print(f"PyTorch's MLP VAE step, batch 128, {plural(threads, 'thread')}, each case in its own process, "
          f"{pairs} alternating pairs; ms: median over the pairs; / alone: median of the per-pair ratios "
          f"(range)\n\n| PyTorch's process | step ms | / alone |\n|---|---|---|")
    for name in SHARED:
        ratio = result.ratio(name, "PyTorch alone", "step")
        print(f"| {name} | {result.median(name, 'step') * 1e3:.2f} | {ratio} |")
    print("\n" + machine({name: result.info(name) for name in SHARED}))


def targets(results: dict[tuple[str, int], Race]) -> list[tuple[str, bool]]:
    """Each of issue 14's targets that ``results`` (by model and threads) measured: its line, and whether
    the median of the per-pair ratios meets it."""
    lines = []
    for (model, threads, name, other), bound in TARGETS.items():
        if (model, threads) in results:
            ratio = results[model, threads].ratio(name, other, "step")
            lines.append((f"{MODELS[model]}, {plural(threads, 'thread')}: {name} / {other} "
                          f"{ratio} ≤ {bound}", ratio.median <= bound))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--pairs", type=int, default=7, help="alternating pairs of processes (default 7)")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "conv"])
    parser.add_argument("--shared", action="store_true", help="PyTorch alone and sharing its process with "
                        "NumPy's BLAS, at the largest --threads")
    args = parser.parse_args()
    if args.pairs < 1 or min(args.threads) < 1:
        parser.error("--pairs and --threads must be at least 1")
    results: dict[tuple[str, int], Race] = {}
    with tempfile.TemporaryDirectory() as folder:
        data = save_batch(folder, 128)
        try:
            if args.shared:
                shared(max(args.threads), args.pairs, data)
                return
            for threads in args.threads:
                for model in args.models:
                    progress(f"{MODELS[model]}, {plural(threads, 'thread')}:")
                    results[model, threads] = race(workers(model, threads, data), args.pairs, log=progress)
        except WorkerError as error:
            sys.exit(f"bench/step.py: {error}")
    print(f"Training step, batch 128, Adam; each contender in its own process, {args.pairs} alternating "
          f"pairs; step ms: median over the pairs; ratios: median of the per-pair ratios (range)\n")
    print("| model | threads | tinyae ms | PyTorch ms | tinyae / PyTorch | floor ms | tinyae / floor |")
    print("|---|---|---|---|---|---|---|")
    for (model, threads), result in results.items():
        floor = (f"{result.median('floor', 'step') * 1e3:.2f} | {result.ratio('tinyae', 'floor', 'step')}"
                 if model == "mlp" else "– | –")
        print(f"| {MODELS[model]} | {threads} | {result.median('tinyae', 'step') * 1e3:.2f} | "
              f"{result.median('PyTorch', 'step') * 1e3:.2f} | {result.ratio('tinyae', 'PyTorch', 'step')} | "
              f"{floor} |")
    print("\nIssue 14's targets (median of the per-pair ratios):")
    for line, holds in targets(results):
        print(f"- {line}: {'holds' if holds else 'NOT met'}")
    infos = {}
    for threads in args.threads:
        result = results[args.models[0], threads]
        infos.update({f"{name}, {plural(threads, 'thread')}": result.info(name)
                      for name in ("tinyae", "PyTorch")})
    print("\n" + machine(infos))


if __name__ == "__main__":
    main()

"""GPU: the VAE's steady-state step, tinyae on CuPy against PyTorch on CUDA on the same GPU, each in its own
process; what tinyae's fused kernels save (the unfused path), for the conv VAE what keeping the
convolutions' layout through the activations would cost or save (tinyae lets CuPy allocate C-contiguous
outputs: measured faster); and one MNIST epoch on tinyae/CuPy.

    python bench/gpu.py [--model mlp|conv] [--steps 200] [--pairs 5]

Needs CuPy (`pip install -e ".[gpu-cuda12]"`, or ".[gpu-cuda13]" where nvidia-smi shows "CUDA Version: 13.x"),
PyTorch with CUDA, and a GPU; exits with a message otherwise.
Every contender runs in a process of its own (two CUDA runtimes and memory pools in one process would slow
each other; PyTorch's never imports tinyae), once per pair, the order reversed every other pair (``--pairs``,
at least 5 by default); reported are each contender's median step over the pairs and the median of the
per-pair ratios with their range. Each timing synchronizes the device before reading the clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONTENDERS = {  # model → the contenders timed, each in processes of its own
    "mlp": ["tinyae", "tinyae, unfused kernels", "PyTorch"],
    "conv": ["tinyae", "tinyae, unfused kernels", "tinyae, conv layout kept", "PyTorch"],
}


def synchronized(run, sync, steps: int) -> float:
    """Median seconds of ``run`` over ``steps`` calls, each timed between device synchronizations."""
    times = []
    for _ in range(steps):
        sync()
        started = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def batch(model: str) -> np.ndarray:
    from common import mnist_batch

    return mnist_batch().reshape((-1, 1, 28, 28) if model == "conv" else (-1, 784))


def in_input_layout(compiled, inputs: int, outputs: int):
    """A CuPy kernel that allocates its outputs like its first argument (``empty_like``, order 'K') instead
    of C-contiguous: what keeping the convolutions' layout through the activations costs or saves."""
    import cupy

    def run(*args):
        if len(args) > inputs or args[0].flags.c_contiguous:
            return compiled(*args)
        return compiled(*args, *(cupy.empty_like(args[0]) for _ in range(outputs)))

    return run


def unfused(kernel, adam):
    """The kernel's twin standing in for its CUDA body: one launch per array operation (Adam's twin only
    adds slicing for CPU caches: one slice), the outputs passed in (the activations pass them on CuPy)
    filled from what it returns."""
    twin = adam._adam_slice if kernel is adam.adam_update else kernel.twin
    if kernel.in_place:
        return twin

    def run(*args):
        result = twin(*args[:len(kernel.inputs)])
        outputs = args[len(kernel.inputs):]
        if not outputs:
            return result
        for output, value in zip(outputs, result if isinstance(result, tuple) else (result,)):
            output[...] = value
        return outputs[0] if len(outputs) == 1 else outputs

    return run


def tinyae_worker(name: str, model: str, steps: int) -> dict:
    """Time tinyae's step (and, for the plain contender, one MNIST epoch) on CuPy."""
    import tinyae
    from tinyae import backend, kernels, models, optim
    from tinyae.data import Batches, load_mnist
    from tinyae.ops import activation
    from tinyae.optim import adam

    if name == "tinyae, unfused kernels":  # every kernel's CUDA body replaced by its twin run on CuPy arrays
        for kernel in kernels.all_kernels().values():
            kernel._cupy_kernel = unfused(kernel, adam)
    if name == "tinyae, conv layout kept":  # activations' outputs laid out as their inputs (as on NumPy)
        for kernel in vars(activation).values():
            if isinstance(kernel, kernels.Kernel):
                kernel._cupy_kernel = in_input_layout(kernel.cupy_kernel(backend.module("cupy")),
                                                      len(kernel.inputs), len(kernel.outputs))
    cupy = backend.module("cupy")
    tinyae.set_backend("cupy")
    tinyae.manual_seed(0)
    net = models.ConvVAE() if model == "conv" else models.VAE()
    optimizer = optim.Adam(net.parameters())

    def step(x) -> None:
        total, _ = net.loss(x)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    x = tinyae.tensor(batch(model))
    sync = cupy.cuda.Device().synchronize
    for _ in range(20):
        step(x)
    result = {"step": synchronized(lambda: step(x), sync, steps),
              "gpu": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()}
    if name == "tinyae":
        images, labels = load_mnist("train")
        batches = Batches(images, labels, batch_size=128, shuffle=True,
                          layout="image" if model == "conv" else "flat")
        sync()
        started = time.perf_counter()
        for x in batches:
            step(x)
        sync()
        result["epoch"] = time.perf_counter() - started
    return result


def torch_worker(model: str, steps: int) -> dict:
    import torch
    from common import torch_models

    if not torch.cuda.is_available():
        raise RuntimeError("PyTorch has no CUDA device")
    vae, conv_vae, loss = torch_models()
    torch.manual_seed(0)
    net = (conv_vae if model == "conv" else vae)().cuda()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.from_numpy(batch(model)).cuda()

    def step() -> None:
        value = loss(net, x)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()

    for _ in range(20):
        step()
    return {"step": synchronized(step, torch.cuda.synchronize, steps), "gpu": torch.cuda.get_device_name()}


def measure(name: str, args) -> dict:
    """One contender, timed in a fresh process (this script with --worker)."""
    command = [sys.executable, __file__, "--worker", name, "--model", args.model, "--steps", str(args.steps)]
    output = subprocess.run(command, capture_output=True, text=True)
    if output.returncode != 0:
        sys.exit(f"bench/gpu.py: {name} failed:\n{output.stderr.strip()}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(CONTENDERS), default="mlp")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per process")
    parser.add_argument("--pairs", type=int, default=5, help="processes per contender, in alternating order")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # (the contender this process times)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    if args.worker:
        try:
            worker = torch_worker(args.model, args.steps) if args.worker == "PyTorch" else tinyae_worker(
                args.worker, args.model, args.steps)
        except (RuntimeError, ImportError) as error:
            sys.exit(f"bench/gpu.py needs CuPy, PyTorch with CUDA and a GPU: {error}")
        print(json.dumps(worker))
        return
    if args.pairs < 1:
        sys.exit(f"bench/gpu.py: --pairs must be at least 1, got {args.pairs}")
    from common import Spread, pair_order

    contenders = CONTENDERS[args.model]
    samples: dict[str, list[dict]] = {name: [] for name in contenders}
    for pair in range(args.pairs):
        for name in pair_order(contenders, pair):
            samples[name].append(measure(name, args))
            progress = f"pair {pair + 1}/{args.pairs}: {name} step {samples[name][-1]['step'] * 1e3:.3g} ms"
            print(progress, file=sys.stderr, flush=True)

    def ratio(name: str, other: str) -> Spread:
        """The median of the per-pair ratios of ``name``'s step to ``other``'s, and their range."""
        return Spread.of([mine["step"] / theirs["step"] for mine, theirs in zip(samples[name], samples[other])])

    step = {name: statistics.median(sample["step"] for sample in runs) for name, runs in samples.items()}
    epoch = statistics.median(sample["epoch"] for sample in samples["tinyae"])
    print(f"GPU: {samples['tinyae'][0]['gpu']}; {args.pairs} alternating pair(s) of processes, "
          f"{args.steps} steps each\n")
    print(f"| {args.model} VAE, batch 128 | step ms (median over the pairs) |\n|---|---|")
    for name, seconds in step.items():
        print(f"| {name} | {seconds * 1e3:.2f} |")
    ratios = [f"tinyae / PyTorch: {ratio('tinyae', 'PyTorch')}",
              f"unfused / fused kernels: {ratio('tinyae, unfused kernels', 'tinyae')}"]
    if args.model == "conv":
        ratios.append(f"keeping the conv layout: {ratio('tinyae, conv layout kept', 'tinyae')}× the step")
    ratios.append(f"one MNIST epoch on tinyae/CuPy: {epoch:.1f} s ({np.ceil(60000 / 128):.0f} steps)")
    print("\n(median of the per-pair ratios, range)\n" + "; ".join(ratios))


if __name__ == "__main__":
    main()

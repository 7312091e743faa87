"""GPU: MNIST VAE epoch time and steady-state step time, tinyae on CuPy vs PyTorch on CUDA, same GPU;
and the speed-up of tinyae's fused kernels over the unfused path.

    python bench/gpu.py [--steps 200]

Needs CuPy (`pip install -e ".[gpu-cuda12]"`, or ".[gpu-cuda13]" where nvidia-smi shows "CUDA Version: 13.x"),
PyTorch with CUDA, and a GPU; exits with a message otherwise.
Every timing synchronizes the device before reading the clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import tinyae
from common import mnist_batch, torch_models
from tinyae import backend, kernels, models, optim
from tinyae.optim import adam
from tinyae.data import Batches, load_mnist


def synchronized(run, sync):
    def timed() -> float:
        sync()
        started = time.perf_counter()
        run()
        sync()
        return time.perf_counter() - started

    return timed


def unfused():
    """Replace every kernel's CUDA body by its twin run on CuPy arrays (one launch per array operation)."""
    for kernel in kernels.all_kernels().values():  # (Adam's twin only adds slicing for CPU caches: one slice)
        kernel._cupy_kernel = adam._adam_slice if kernel is adam.adam_update else kernel.twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    try:
        cupy = backend.module("cupy")
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("PyTorch has no CUDA device")
    except (RuntimeError, ImportError) as error:
        sys.exit(f"bench/gpu.py needs CuPy, PyTorch with CUDA and a GPU: {error}")

    tinyae.set_backend("cupy")
    x = tinyae.tensor(mnist_batch())
    model = models.VAE()
    optimizer = optim.Adam(model.parameters())

    def step():
        total, _ = model.loss(x)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    sync = cupy.cuda.Device().synchronize
    results = {}
    for _ in range(20):
        step()
    results["tinyae (fused)"] = statistics.median(synchronized(step, sync)() for _ in range(args.steps))
    VAE, _, torch_loss = torch_models()
    net = VAE().cuda()
    torch_optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_torch = torch.from_numpy(mnist_batch()).cuda()

    def torch_step():
        value = torch_loss(net, x_torch)
        torch_optimizer.zero_grad()
        value.backward()
        torch_optimizer.step()

    for _ in range(20):
        torch_step()
    results["PyTorch CUDA"] = statistics.median(synchronized(torch_step, torch.cuda.synchronize)()
                                                for _ in range(args.steps))
    images, labels = load_mnist("train")
    batches = Batches(images, labels, batch_size=128, shuffle=True)
    started = time.perf_counter()
    for batch in batches:
        total, _ = model.loss(batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    sync()
    epoch = time.perf_counter() - started
    unfused()
    results["tinyae (unfused)"] = statistics.median(synchronized(step, sync)() for _ in range(args.steps))
    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}\n")
    print("| MLP VAE, batch 128 | step ms |\n|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds * 1e3:.2f} |")
    print(f"\ntinyae / PyTorch: {results['tinyae (fused)'] / results['PyTorch CUDA']:.2f}; "
          f"fused speed-up over unfused: {results['tinyae (unfused)'] / results['tinyae (fused)']:.2f}×; "
          f"one MNIST epoch on tinyae/CuPy: {epoch:.1f} s ({np.ceil(60000 / 128):.0f} steps)")


if __name__ == "__main__":
    main()

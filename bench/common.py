"""Shared pieces of the benchmarks: the twin PyTorch models, a real MNIST batch, timing and the machine.

PyTorch is imported only here and only by the benchmarks (``pip install torch==2.13.0``): it is never a
dependency of tinyae.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np

THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))


def configure_process(threads: int = THREADS) -> None:
    """The process settings that the tinyae command makes (tinyae.app.process): malloc keeps freed memory,
    and the BLAS pools get ``threads`` threads. Each benchmark's main() calls it first. A checkout from before
    tinyae.app.process (ab_step.py's base) made the malloc setting when imported."""
    try:
        from tinyae.app.process import configure_process as configure
    except ImportError:
        from threadpoolctl import threadpool_limits as configure
    configure(threads)


def mnist_batch(batch_size: int = 128) -> np.ndarray:
    """The first ``batch_size`` training images, float32 in [0, 1], shape (B, 784)."""
    from tinyae.data import load_mnist

    images, _ = load_mnist("train")
    return (images[:batch_size].reshape(batch_size, 784) / 255.0).astype(np.float32)


def torch_models():
    """PyTorch twins of tinyae's VAE and ConvVAE (same layers, same loss: BCE-with-logits sum + KL)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def encode(self, x):
            h = F.relu(self.fc1(x))
            return self.fc21(h), self.fc22(h)

        def decode(self, z):
            return self.fc4(F.relu(self.fc3(z)))

    class ConvVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                         nn.Flatten())
            self.mu, self.logvar = nn.Linear(3136, 20), nn.Linear(3136, 20)
            self.decoder = nn.Sequential(nn.Linear(20, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                                         nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                         nn.ConvTranspose2d(32, 1, 4, 2, 1))

        def encode(self, x):
            h = self.encoder(x)
            return self.mu(h), self.logvar(h)

        def decode(self, z):
            return self.decoder(z)

    def loss(model, x):
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (recon + kl) / x.shape[0]

    return VAE, ConvVAE, loss


def time_steps(step, count: int) -> float:
    """Seconds per call of ``step``, averaged over ``count`` calls."""
    started = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - started) / count


def alternate(steps: dict, rounds: int, count: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds per step of each contender, timed in alternating rounds (A, B, A, B, ...), so slow
    drifts of the machine hit all of them alike."""
    for step in steps.values():
        time_steps(step, warmup)
    samples = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            samples[name].append(time_steps(step, count))
    return {name: statistics.median(values) for name, values in samples.items()}


def machine() -> str:
    """CPU model, cores, NumPy and its BLAS with its threads, and the OPENBLAS_* variables in force."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"- CPU: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            lines.append(f"- {pool['internal_api']} {pool.get('version')} ({pool.get('architecture')}), "
                         f"{pool['num_threads']} threads, {pool['filepath'].rsplit('/', 1)[-1]}")
    except ImportError:
        lines.append("- (install threadpoolctl to list the BLAS libraries and their threads)")
    variables = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    lines.append(f"- environment: {variables or 'no OPENBLAS_*/OMP_*/MKL_* variables set'}")
    return "\n".join(lines)

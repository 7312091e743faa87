"""Shared pieces of the benchmarks: the harness that times each contender in a process of its own, the twin
PyTorch models, a real MNIST batch, and the machine.

PyTorch is imported only here and only by the benchmarks (``pip install torch==2.13.0``): it is never a
dependency of tinyae.

**Why a process per contender.** NumPy's OpenBLAS threads keep spinning for a while after each matrix
product; in a process that also runs PyTorch, its OpenMP threads then find their cores taken, and PyTorch's
figures come out inflated. So every comparison runs each contender (a ``Worker``: a function of a
benchmark script) in a fresh Python process with its thread pools set, and the processes alternate in pairs
(A, B, then B, A, ...), so that the machine's drift, and the second process of a pair running slower, hit
all contenders alike. ``race`` runs the pairs; ``Race.ratio`` is the median of the per-pair ratios, with
their range. A PyTorch worker never imports tinyae (checked) and leaves NumPy's BLAS unused, with one thread.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
THREADS = int(os.environ.get("BENCH_THREADS", 0)) or None  # None: one per physical core (configure_process)
FRAMEWORKS = {"tinyae": "torch", "torch": "tinyae"}  # a worker's framework → the module it must not import
WORKER_TIMEOUT = 300  # seconds a worker process may run


# --------------------------------------------------------------------------------------------- the harness
@dataclasses.dataclass(frozen=True)
class Worker:
    """One contender: ``function(**kwargs)`` of the module ``target`` ("module:function", a script in bench/)
    run in a fresh process, its thread pools set to ``threads``. ``framework`` is "tinyae" (NumPy and
    tinyae: pools limited by ``configure_process``, never imports torch) or "torch" (``torch.set_num_threads``
    and OMP/MKL variables; never imports tinyae, and NumPy's OpenBLAS gets one thread). The function returns
    a dict of seconds by name. ``pythonpath``: folders put first on the worker's PYTHONPATH (another
    checkout's tinyae, say), the worker running in the first; ``env``: variables set last."""

    name: str
    target: str
    framework: str
    threads: int
    kwargs: dict = dataclasses.field(default_factory=dict)
    pythonpath: tuple[str, ...] = ()
    env: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"Worker {self.name!r}: framework must be one of {sorted(FRAMEWORKS)}, "
                             f"got {self.framework!r}")
        if self.threads < 1:
            raise ValueError(f"Worker {self.name!r}: threads must be at least 1, got {self.threads}")


class WorkerError(RuntimeError):
    """A worker process failed: one line naming the worker, its exit status and its stderr's last line."""


_BOOT = "import sys; sys.path.insert(0, {bench!r}); import common; common.worker_main()"


def worker_environment(worker: Worker) -> dict[str, str]:
    """The worker's environment: this one, with its thread variables set (a PyTorch worker's NumPy BLAS
    gets one thread, since it is never used there), ``worker.pythonpath`` first on PYTHONPATH, and
    ``worker.env``."""
    threads = str(worker.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads,
               OPENBLAS_NUM_THREADS="1" if worker.framework == "torch" else threads)
    paths = [*worker.pythonpath, *filter(None, [os.environ.get("PYTHONPATH")])]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return {**env, **worker.env}


def run_worker(worker: Worker, timeout: float = WORKER_TIMEOUT) -> dict:
    """Run ``worker`` in a fresh process; returns ``{"times": {name: seconds}, "info": {...}}``."""
    command = [sys.executable, "-c", _BOOT.format(bench=str(HERE)), worker.target, worker.framework,
               str(worker.threads), json.dumps(worker.kwargs)]
    try:
        done = subprocess.run(command, env=worker_environment(worker), capture_output=True, text=True,
                              timeout=timeout, cwd=worker.pythonpath[0] if worker.pythonpath else None)
    except subprocess.TimeoutExpired:
        raise WorkerError(f"{worker.name} ({worker.target}): no result within {timeout:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = [line.strip() for line in done.stderr.strip().splitlines() if line.strip()]
        raise WorkerError(f"{worker.name} ({worker.target}) failed, exit status {done.returncode}: "
                          f"{tail[-1][:300] if tail else 'no output'}")
    return json.loads(lines[-1])


def worker_main() -> None:
    """The worker process's side of ``run_worker`` (argv: target, framework, threads, kwargs as JSON): set
    the thread pools, call the function, check which frameworks were imported, print the result as JSON."""
    target, framework, threads, kwargs = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        configure_process(threads)
    module, function = target.split(":")
    times = getattr(__import__(module), function)(**kwargs)
    forbidden = FRAMEWORKS[framework]
    if forbidden in sys.modules:
        sys.exit(f"the {framework} worker {target} imported {forbidden}: its timing would share the process")
    print(json.dumps({"times": times, "info": process_info(framework)}))


def pair_order(names: Sequence[str], pair: int) -> list[str]:
    """The order of the contenders in pair ``pair``: as given in even pairs, reversed in odd ones."""
    return list(names) if pair % 2 == 0 else list(names)[::-1]


@dataclasses.dataclass(frozen=True)
class Spread:
    """The median of some values and their range."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("Spread.of: no values")
        return cls(statistics.median(values), min(values), max(values))

    def __format__(self, spec: str) -> str:
        spec = spec or ".2f"
        return f"{self.median:{spec}} ({self.low:{spec}}–{self.high:{spec}})"


@dataclasses.dataclass
class Race:
    """What ``race`` measured: ``pairs[i][name]`` is worker ``name``'s result in pair ``i``."""

    pairs: list[dict[str, dict]]

    def times(self, name: str, key: str) -> list[float]:
        return [pair[name]["times"][key] for pair in self.pairs]

    def median(self, name: str, key: str) -> float:
        """The median over the pairs of ``name``'s seconds for ``key``."""
        return statistics.median(self.times(name, key))

    def ratios(self, name: str, other: str, key: str) -> list[float]:
        """``name``'s time / ``other``'s, pair by pair."""
        return [mine / theirs for mine, theirs in zip(self.times(name, key), self.times(other, key))]

    def ratio(self, name: str, other: str, key: str) -> Spread:
        """The median of the per-pair ratios ``name`` / ``other`` and their range."""
        return Spread.of(self.ratios(name, other, key))

    def within(self, name: str, key: str, other: str) -> Spread:
        """The median over ``name``'s processes of its ``key`` / its ``other``, and their range."""
        return Spread.of([mine / theirs
                          for mine, theirs in zip(self.times(name, key), self.times(name, other))])

    def info(self, name: str) -> dict:
        return self.pairs[0][name]["info"]


def race(workers: Sequence[Worker], pairs: int, run: Callable[[Worker], dict] = run_worker,
         log: Callable[[str], None] | None = None) -> Race:
    """Run every worker once per pair, each in a fresh process, in ``pair_order``; ``pairs`` ≥ 1."""
    if pairs < 1:
        raise ValueError(f"race: pairs must be at least 1, got {pairs}")
    by_name = {worker.name: worker for worker in workers}
    if len(by_name) != len(workers):
        raise ValueError(f"race: worker names must differ, got {[worker.name for worker in workers]}")
    measured = []
    for pair in range(pairs):
        results = {name: run(by_name[name]) for name in pair_order(list(by_name), pair)}
        measured.append(results)
        if log:
            log(f"pair {pair + 1}/{pairs}: " + ", ".join(
                f"{name} " + " ".join(f"{key} {seconds * 1e3:.3g} ms"
                                      for key, seconds in result["times"].items())
                for name, result in results.items()))
    return Race(measured)


def timed(step: Callable[[], object], warmup: int, rounds: int, steps: int | None = None,
          round_seconds: float = 0.15) -> float:
    """Median over ``rounds`` rounds of the mean seconds per call of ``step``, after ``warmup`` calls
    (untimed). ``steps`` calls a round; None: as many as fill about ``round_seconds`` (at least 2)."""
    for _ in range(warmup):
        step()
    if steps is None:
        started = time.perf_counter()
        step()
        steps = max(2, round(round_seconds / (time.perf_counter() - started)))
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        samples.append((time.perf_counter() - started) / steps)
    return statistics.median(samples)


def progress(line: str) -> None:
    """The harness's per-pair lines, on stderr (stdout keeps the tables)."""
    print(line, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ the contenders
def configure_process(threads: int | None = THREADS) -> None:
    """The process settings that the tinyae command makes (tinyae.app.process): malloc keeps freed memory,
    and the BLAS pools get ``threads`` threads (None: one per physical core). A checkout from before
    tinyae.app.process (an ab_step.py base) made the malloc setting when imported."""
    try:
        from tinyae.app.process import configure_process as configure
    except ImportError:
        from threadpoolctl import threadpool_limits

        def configure(threads):
            threadpool_limits(threads or os.cpu_count())
    configure(threads)


def mnist_batch(batch_size: int = 128) -> np.ndarray:
    """The first ``batch_size`` training images, float32 in [0, 1], shape (B, 784)."""
    from tinyae.data import load_mnist

    images, _ = load_mnist("train")
    return (images[:batch_size].reshape(batch_size, 784) / 255.0).astype(np.float32)


def save_batch(folder: Path, batch_size: int = 128) -> str:
    """``mnist_batch(batch_size)`` written to ``folder`` as .npy, for workers that must not import tinyae."""
    path = Path(folder) / f"mnist-{batch_size}.npy"
    np.save(path, mnist_batch(batch_size))
    return str(path)


def torch_models():
    """PyTorch twins of tinyae's VAE and ConvVAE (same layers, same loss: BCE-with-logits sum + KL)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class VAE(nn.Module):
        def __init__(self, hidden: int = 400, latent: int = 20):
            super().__init__()
            self.fc1 = nn.Linear(784, hidden)
            self.fc21, self.fc22 = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
            self.fc3, self.fc4 = nn.Linear(latent, hidden), nn.Linear(hidden, 784)

        def encode(self, x):
            h = F.relu(self.fc1(x))
            return self.fc21(h), self.fc22(h)

        def decode(self, z):
            return self.fc4(F.relu(self.fc3(z)))

    class ConvVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1),
                                         nn.ReLU(), nn.Flatten())
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


def tinyae_training_step(model, x):
    """One training step of tinyae's ``model`` on the Tensor ``x`` per call: loss, backward, Adam 1e-3."""
    from tinyae import optim

    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def step():
        total, _ = model.loss(x)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    return step


def torch_training_step(model, loss, x):
    """The same step in PyTorch: ``loss(model, x)``, backward, Adam 1e-3."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        value = loss(model, x)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()

    return step


# ----------------------------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as file:
            return next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def process_info(framework: str) -> dict:
    """What runs the arithmetic in this process: NumPy and its thread pools (threadpoolctl), and for
    PyTorch its version, BLAS, CPU kernels and threads; plus where tinyae was imported from."""
    from threadpoolctl import threadpool_info

    info = {"numpy": np.__version__, "pools": [
        {key: pool.get(key) for key in ("internal_api", "version", "architecture", "num_threads", "prefix")}
        for pool in threadpool_info()]}
    if framework == "torch":
        import torch

        config = torch.__config__.show()
        blas = re.search(r"BLAS_INFO=(\w+)", config)
        mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
        info["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                         "blas": (blas.group(1) if blas else "?") + (f" {mkl.group(1)}" if mkl else ""),
                         "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    else:
        info["tinyae"] = getattr(sys.modules.get("tinyae"), "__file__", None)
    return info


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def describe(info: dict) -> str:
    """One line of ``process_info``'s result."""
    pools = "; ".join(" ".join(filter(None, [pool["internal_api"], pool["version"]]))
                      + f" ({pool['architecture'] or pool['prefix']}), "
                      + plural(pool["num_threads"], "thread") for pool in info["pools"])
    if "torch" in info:
        torch = info["torch"]
        return (f"PyTorch {torch['version']}, BLAS {torch['blas']}, CPU kernels {torch['cpu_capability']}, "
                f"{plural(torch['threads'], 'thread')}; thread pools: {pools}; NumPy {info['numpy']}")
    return f"NumPy {info['numpy']}; thread pools: {pools}"


def machine(infos: dict[str, dict] | None = None) -> str:
    """The machine: CPU model and cores, Python, and per contender (``infos``: name → ``process_info`` of
    its worker) or else for this process, NumPy's BLAS with its threads; and the thread variables set."""
    from tinyae.app.process import physical_cores

    lines = [f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores ({physical_cores()} physical); "
             f"{platform.system()}, Python {platform.python_version()}"]
    if infos is None:
        lines.append(f"- this process: {describe(process_info('tinyae'))}")
    else:
        lines.extend(f"- {name}: {describe(info)}" for name, info in infos.items())
    variables = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    lines.append(f"- environment of this process: {variables or 'no OPENBLAS_*/OMP_*/MKL_* variables'}"
                 + ("; each worker sets OMP/MKL/OPENBLAS_NUM_THREADS to its threads (a PyTorch worker's "
                    "OPENBLAS_NUM_THREADS to 1)" if infos is not None else ""))
    return "\n".join(lines)
